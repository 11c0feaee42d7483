"""Stage `optimize`: slow programs -> faster rewrites (params: seed, llm, pie.shots, pie.prompt_style, pie.samples).

For each task in data/pie/tasks, the slow program (HumanEval canonical) retrieves `pie.shots` PIE
slow -> fast pairs (data/raw/pie/py_reference.jsonl, nearest slow side under all-MiniLM-L6-v2,
most similar last), is put in PIE's prompt shape (`pie.prompt_style`: plain, or PIE's
performance-conditioned template at 10/10) and sent `pie.samples` times to the `llm.backend`
model. Writes data/pie/completions.jsonl (Completion records, sample-major). Responses are cached
(`llm.cache_dir`), and so are the PIE embeddings (beside it), so a rerun recomputes nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from perfrepro.config import ConfigError, load_params
from perfrepro.datasets.base import DatasetError
from perfrepro.datasets.pie import load_pairs
from perfrepro.generation.backends import RECORDED_LABEL, BackendError, check_backend, open_backend
from perfrepro.generation.cache import resolve_cache_dir
from perfrepro.generation.local_server import LocalServerError
from perfrepro.generation.runinfo import interrupt_on_sigterm, summary
from perfrepro.generation.generate import status_counts, too_many_failures
from perfrepro.optimization.optimize import optimize_tasks, retrieve_pie_examples
from perfrepro.optimization.prompts import load_conditioned_template
from perfrepro.optimization.tasks import PieTaskDir
from perfrepro.records import Completion, RecordError, write_jsonl

log = logging.getLogger("optimize")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--tasks", type=Path, default=Path("data/pie/tasks"))
    parser.add_argument("--pie-dir", type=Path, default=Path("data/raw/pie"))
    parser.add_argument("--out", type=Path, default=Path("data/pie/completions.jsonl"))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    interrupt_on_sigterm()
    args = parse_args(argv)
    started = time.perf_counter()
    backends = []
    try:
        params = load_params(args.params)
        pie = params.pie
        check_backend(params.llm, shots=0)  # before anything expensive
        if params.llm.backend == "recorded":
            # The recorded responses answer the efficiency tasks only; so that an experiment with
            # `-S llm.backend=recorded` still completes, every PIE task gets an explicit failure.
            log.warning("llm.backend recorded has no responses for the PIE track: every task is recorded as failed")
            write_jsonl(args.out, [
                Completion(task_id=task.id, sample=0, model=RECORDED_LABEL, status="error", code=None,
                           response=None, error="llm.backend recorded has no responses for the PIE track")
                for task in PieTaskDir(args.tasks).tasks
            ])
            return 0
        tasks = PieTaskDir(args.tasks).tasks
        template = load_conditioned_template(args.pie_dir / "templates") if pie.prompt_style == "conditioned" else None
        pairs_file = args.pie_dir / "py_reference.jsonl"
        pairs = load_pairs(pairs_file) if pie.shots > 0 else []
        cache_dir = resolve_cache_dir(params.llm.cache_dir).parent / "pie-embeddings"
        examples = retrieve_pie_examples(tasks, pairs, pie.shots, str(pairs_file), str(cache_dir))
        completions = optimize_tasks(
            tasks, examples, params.llm, lambda llm: open_backend(llm), pie.samples, pie.prompt_style, template,
            on_backend=backends.append,
        )
    except (ConfigError, BackendError, LocalServerError, DatasetError, RecordError, FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; responses received so far are cached, a rerun sends only the rest")
        return 130
    write_jsonl(args.out, completions)
    statuses = status_counts(completions)
    log.info("%s: %d completions (%s)", args.out, len(completions), ", ".join(f"{k} {v}" for k, v in statuses.items()))
    if backends:
        summary(backends[-1], len(completions), statuses["error"], started)
    if too_many_failures(completions, params.llm.max_failure_fraction):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
