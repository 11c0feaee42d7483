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

import logging
import sys
import time
from pathlib import Path

from perfrepro.config import load_params
from perfrepro.datasets import load_opt_tasks
from perfrepro.finetuning.evaluate import finetuned_llm, finetuned_requests, read_info
from perfrepro.generation.backends import check_backend, open_backend, preflight_backend
from perfrepro.generation.cache import resolve_cache_dir
from perfrepro.generation.runinfo import CACHED_ON_INTERRUPT, write_completions
from perfrepro.generation.samples import samples_opener
from perfrepro.optimization.optimize import optimize_tasks, pie_examples
from perfrepro.optimization.prompts import load_conditioned_template
from perfrepro.optimization.tasks import PieTaskDir
from perfrepro.stage import stage

log = logging.getLogger("optimize")


def overrides(parser) -> None:
    parser.add_argument("--pairs", type=Path, default=None, help="PIE slow -> fast pairs (read when pie.shots > 0)")
    parser.add_argument("--prompt-style", choices=("plain", "conditioned"), default=None,
                        help="override pie.prompt_style (report_pie's per-model rows)")
    parser.add_argument("--finetuned", type=Path, default=None,
                        help="generate with the fine-tuned model in this directory (the finetune stage's output)")


@stage("optimize", "tasks", "templates", "out", options=overrides, model=True, also=(ValueError,),
       interrupted=CACHED_ON_INTERRUPT)
def main(args) -> int:
    started = time.perf_counter()
    backends = []
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
    examples = pie_examples(tasks, args.pairs, shots, resolve_cache_dir(params.llm.cache_dir))
    track_tasks = lambda: load_opt_tasks(params.data.enamel_dir, include_excluded=True)  # noqa: E731 - samples' task ids
    samples = samples_opener(params.samples, track_tasks, tasks, f"optimization track ({params.data.enamel_dir})")
    completions = optimize_tasks(
        tasks, examples, llm, lambda llm: open_backend(llm, samples=samples), pie.samples, style, template,
        on_backend=backends.append, requests=finetuned_requests(tasks, style, template) if finetuned else None,
    )
    return write_completions(args.out, completions, backends[-1] if backends else None, llm.max_failure_fraction,
                             started)


if __name__ == "__main__":
    sys.exit(main())
