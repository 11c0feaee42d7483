"""Stage `optimize`: slow programs -> faster rewrites (params: seed, llm, pie.shots, pie.prompt_style, pie.samples).

For each task in data/pie/tasks, the slow program (HumanEval canonical) retrieves `pie.shots` PIE
slow -> fast pairs (`data.pie_pairs`, nearest slow side under all-MiniLM-L6-v2, most similar
last), is put in PIE's prompt shape (`pie.prompt_style`: plain, or PIE's performance-conditioned
template at 10/10) and sent `pie.samples` times to the `llm.backend`
model. Writes data/pie/completions.jsonl (Completion records, sample-major). Responses are cached
(`llm.cache_dir`), and so are the PIE embeddings (beside it), so a rerun recomputes nothing.
`llm.backend: recorded` stops the stage before any work: recorded responses exist only for the
efficiency tasks. A failed run writes nothing.

The model-comparison rows of report_pie reuse this stage: `--prompt-style` overrides
`pie.prompt_style` (the base model's plain and conditioned rows), and `--finetuned DIR` asks the
finetune stage's model (data/finetune/model) instead, zero-shot in the template it was trained on.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from perfrepro.config import ConfigError, load_params
from perfrepro.datasets import load_opt_tasks
from perfrepro.datasets.base import DatasetError
from perfrepro.datasets.pie import load_pairs
from perfrepro.finetuning.evaluate import finetuned_llm, finetuned_requests, read_info
from perfrepro.generation.backends import BackendError, check_backend, open_backend, preflight_backend
from perfrepro.generation.cache import resolve_cache_dir
from perfrepro.generation.local_server import LocalServerError
from perfrepro.generation.runinfo import start_model_stage, summary
from perfrepro.generation.samples import samples_opener
from perfrepro.generation.generate import status_counts, too_many_failures
from perfrepro.io import atomic_outputs
from perfrepro.optimization.optimize import optimize_tasks, retrieve_pie_examples
from perfrepro.optimization.prompts import load_conditioned_template
from perfrepro.optimization.tasks import PieTaskDir
from perfrepro.records import RecordError, write_jsonl

log = logging.getLogger("optimize")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    parser.add_argument("--tasks", type=Path, default=Path("data/pie/tasks"), help="pie_tasks' output")
    parser.add_argument("--pairs", type=Path, default=None,
                        help="PIE slow -> fast pairs (default: data.pie_pairs from the params)")
    parser.add_argument("--templates", type=Path, default=Path("data/raw/pie/templates"),
                        help="PIE's prompt templates (pie.prompt_style: conditioned)")
    parser.add_argument("--out", type=Path, default=Path("data/pie/completions.jsonl"), help="completions file")
    parser.add_argument("--prompt-style", choices=("plain", "conditioned"), default=None,
                        help="override pie.prompt_style (report_pie's per-model rows)")
    parser.add_argument("--finetuned", type=Path, default=None,
                        help="generate with the fine-tuned model in this directory (the finetune stage's output)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    start_model_stage("optimize")
    args = parse_args(argv)
    started = time.perf_counter()
    backends = []
    try:
        params = load_params(args.params)
        pie = params.pie
        llm, style, finetuned = params.llm, args.prompt_style or pie.prompt_style, None
        if args.finetuned is not None:
            finetuned = read_info(args.finetuned)
            llm, style = finetuned_llm(params.llm, args.finetuned), finetuned["template"]
        # before anything expensive; never a row of errors under the live model's name
        check_backend(llm, shots=0, recorded_available=False, track="PIE track")
        preflight_backend(llm)  # a wrong llm.base_url fails here, in seconds
        tasks = PieTaskDir(args.tasks).tasks
        template = load_conditioned_template(args.templates) if style == "conditioned" else None
        shots = 0 if finetuned else pie.shots
        pairs_file = args.pairs or Path(params.data.pie_pairs)
        pairs = load_pairs(pairs_file) if shots > 0 else []
        cache_dir = resolve_cache_dir(params.llm.cache_dir).parent / "pie-embeddings"
        examples = retrieve_pie_examples(tasks, pairs, shots, str(pairs_file), str(cache_dir))
        track_tasks = lambda: load_opt_tasks(params.data.enamel_dir, include_excluded=True)  # noqa: E731 - samples' task ids
        samples = samples_opener(params.samples, track_tasks, tasks, f"optimization track ({params.data.enamel_dir})")
        completions = optimize_tasks(
            tasks, examples, llm, lambda llm: open_backend(llm, samples=samples), pie.samples, style, template,
            on_backend=backends.append,
            requests=finetuned_requests(tasks, style, template) if finetuned else None,
        )
    except (ConfigError, BackendError, LocalServerError, DatasetError, RecordError, FileNotFoundError, ValueError) as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.error("interrupted; responses received so far are cached, a rerun sends only the rest")
        return 130
    statuses = status_counts(completions)
    if backends:
        summary(backends[-1], len(completions), statuses["error"], started)
    if too_many_failures(completions, llm.max_failure_fraction):
        log.error("nothing written: a failed stage leaves no outputs (responses received are cached)")
        return 1
    with atomic_outputs(args.out) as (out,):
        write_jsonl(out, completions)
    log.info("%s: %d completions (%s)", args.out, len(completions), ", ".join(f"{k} {v}" for k, v in statuses.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
