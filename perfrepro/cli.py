"""`perfrepro` console script (also `python -m perfrepro`).

    perfrepro check                               # validate params.yaml and this machine; says what to fix
    perfrepro table                               # the study's tables across experiments
    perfrepro plots                               # every DVC plot as SVG and PNG, in plots/
    perfrepro samples import evalperf FILE -o OUT # published samples -> evalplus samples JSONL
    perfrepro --version
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml

from perfrepro import __version__
from perfrepro.report import TABLE_FORMATS, ExperimentResult, experiments_from_exp_show, study_tables

TABLE_DOC = """The study's tables across experiments.

    perfrepro table                               # all tracks, from `dvc exp show --json`, markdown
    perfrepro table --track efficiency --format console
    perfrepro table --from metrics                # only the workspace's params.yaml and metrics/*.json

`--from exp` runs `dvc exp show --json` in the current directory (the workspace, HEAD and its
experiments; `--all-commits` adds every commit); the tables are built by perfrepro.report.
"""

CHECK_DOC = """Validate a params file and this machine, before any stage runs.

Every section of the params file is checked (unknown keys anywhere, the top level included, with a
suggestion for a typo; missing and mistyped keys; value ranges; that configured data paths exist),
then what the configured backends need here: the llama.cpp build and the SmolLM2 file for
`backend: local`, valgrind for `timing.backend: deterministic`, a docker engine for gem5, the API
key for `backend: openai`, and the sandbox's isolation level. Each line says what was found and,
when something is wrong, what to do. Exit status 1 when there is an error. The `check` stage of
dvc.yaml runs the same checks on every change to params.yaml.
"""

METRICS_FILES = ("metrics/efficiency.json", "metrics/retrieval.json", "metrics/optimization.json")


class CliError(RuntimeError):
    pass


def find_dvc() -> str:
    """The dvc beside this interpreter (the project's virtualenv) when there is one, else `dvc`."""
    sibling = Path(sys.executable).parent / "dvc"
    return str(sibling) if sibling.exists() else "dvc"


def dvc_json(cmd: list[str], cwd: Path, empty: str) -> Any:
    """The parsed JSON that the dvc command `cmd` (its program first) prints in `cwd`; `empty`
    stands for no output at all. A missing dvc, a failed run or output that is not JSON is a CliError."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise CliError(f"{cmd[0]}: not found (install dvc, or run from the project's virtualenv)") from None
    if proc.returncode != 0:
        raise CliError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    try:
        return json.loads(proc.stdout or empty)
    except json.JSONDecodeError as exc:
        raise CliError(f"{' '.join(cmd)}: output is not JSON ({exc})") from None


def exp_show(cwd: Path, all_commits: bool = False, dvc: str | None = None) -> list[dict]:
    """Parsed `dvc exp show --json` run in `cwd`."""
    dvc = dvc or find_dvc()
    cmd = [dvc, "exp", "show", "--json", *(["--all-commits"] if all_commits else [])]
    payload = dvc_json(cmd, cwd, empty="[]")
    if not isinstance(payload, list):
        raise CliError(f"{' '.join(cmd)}: expected a JSON list, got {type(payload).__name__}")
    return payload


def workspace_result(root: Path, params_file: str = "params.yaml",
                     metrics_files: Sequence[str] = METRICS_FILES) -> ExperimentResult:
    """The workspace's params and metrics files as one experiment."""
    try:
        params = yaml.safe_load((root / params_file).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise CliError(f"{root / params_file}: params file not found") from None
    metrics = {}
    for name in metrics_files:
        path = root / name
        if path.exists():
            try:
                metrics[name] = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise CliError(f"{path}: not valid JSON ({exc})") from None
    if not metrics:
        raise CliError(f"{root}: none of {', '.join(metrics_files)} exists; run `dvc repro` first")
    return ExperimentResult("workspace", "workspace", params, metrics)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfrepro", description="perfrepro: retrieval-augmented, efficiency-aware code generation research "
        "(the pipeline itself runs with `dvc repro`; see README.md)",
        epilog="Run `perfrepro COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"perfrepro {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser("check", help="validate params.yaml and this machine, and say what to fix",
                           description=CHECK_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("--params", type=Path, default=Path("params.yaml"),
                       help="params file, relative to --cwd (default: params.yaml)")
    check.add_argument("--params-only", action="store_true", help="check the params file only, not this machine")
    check.add_argument("-C", "--cwd", type=Path, default=Path("."), help="project directory (default: .)")
    check.set_defaults(run=run_check)
    table = sub.add_parser("table", help="the study's tables across experiments",
                           description=TABLE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    table.add_argument("--track", choices=("efficiency", "retrieval", "optimization", "all"), default="all",
                       help="which track's table (default: all)")
    table.add_argument("--from", dest="source", choices=("exp", "metrics"), default="exp",
                       help="exp: `dvc exp show --json` (default); metrics: the workspace's metrics files")
    table.add_argument("--format", choices=tuple(TABLE_FORMATS), default="md",
                       help="md: markdown (default); console: plain text columns")
    table.add_argument("--all-commits", action="store_true", help="--from exp: every commit's experiments")
    table.add_argument("-C", "--cwd", type=Path, default=Path("."), help="project directory (default: .)")
    table.set_defaults(run=run_table)
    add_plots_parser(sub)
    add_samples_parser(sub)
    return parser


def run_check(args: argparse.Namespace) -> int:
    from perfrepro.checks import format_findings, run_checks
    from perfrepro.logs import setup_logging

    setup_logging("perfrepro check", level=logging.ERROR)  # the findings below say it all
    findings = run_checks(args.cwd / args.params, environment=not args.params_only)
    print(format_findings(findings))
    errors = sum(f.level == "error" for f in findings)
    warnings = sum(f.level == "warning" for f in findings)
    if errors:
        print(f"perfrepro check: {errors} error(s), {warnings} warning(s): fix the errors above, then rerun "
              f"`perfrepro check`", file=sys.stderr)
        return 1
    print(f"perfrepro check: ok ({warnings} warning(s))", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.run(args)


# per-task NET and PIE speedups for the paired comparisons (git-tracked)
PER_TASK_FILES = ("metrics/net_ratios.json", "metrics/optimization_tasks.json")


def read_at_rev(cwd: Path, rev: str, path: str) -> object | None:
    """A JSON file as it is in the workspace (rev "workspace") or at a commit / experiment rev
    (`git show`); None when it is not there."""
    try:
        if rev == "workspace":
            text = (cwd / path).read_text(encoding="utf-8")
        else:
            proc = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=cwd, capture_output=True, text=True)
            if proc.returncode != 0:
                return None
            text = proc.stdout
        return json.loads(text)
    except (OSError, json.JSONDecodeError):
        return None


def with_per_task(results: Sequence[ExperimentResult], cwd: Path) -> list[ExperimentResult]:
    """`results` with their per-task files read (the paired comparison needs them)."""
    return [dataclasses.replace(r, per_task={path: content for path in PER_TASK_FILES
                                             if (content := read_at_rev(cwd, r.rev, path)) is not None})
            for r in results]


def run_table(args: argparse.Namespace) -> int:
    try:
        if args.source == "exp":
            results = experiments_from_exp_show(exp_show(args.cwd, args.all_commits))
        else:
            results = [workspace_result(args.cwd)]
        results = with_per_task(results, args.cwd)
    except CliError as exc:
        print(f"perfrepro: {exc}", file=sys.stderr)
        return 1
    if not results:
        print("perfrepro: no experiment with metrics (run `dvc repro` or `dvc exp run` first)", file=sys.stderr)
        return 1
    sys.stdout.write(study_tables(results, args.track, TABLE_FORMATS[args.format]))
    return 0


# ---- perfrepro plots (the rendering is perfrepro.plots) ----

PLOTS_DOC = """Every DVC plot of the project as SVG and PNG, with no browser and no network.

    perfrepro plots                               # the workspace's plots -> plots/*.svg, plots/*.png
    perfrepro plots main workspace                # like `dvc plots diff main workspace`: one colour per revision
    perfrepro plots --format svg --out /tmp/p

The filled specs come from `dvc plots show --json` (or `dvc plots diff REV... --json`), that is from
the templates in .dvc/plots/; vl-convert renders them with the Vega-Lite version DVC's HTML page
inlines (.dvc/html/plots.html), so the files show what `dvc plots show` shows in a browser.
"""


def add_plots_parser(sub) -> None:
    plots = sub.add_parser("plots", help="render every DVC plot to SVG and PNG (no browser, no network)",
                           description=PLOTS_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    plots.add_argument("revisions", nargs="*", metavar="REV",
                       help="git revisions or experiment names to compare, as `dvc plots diff` (default: the workspace)")
    plots.add_argument("-o", "--out", type=Path, default=Path("plots"),
                       help="folder for the files, relative to --cwd (default: plots/, git-ignored)")
    plots.add_argument("--format", choices=("svg", "png", "both"), default="both",
                       help="which files to write (default: both)")
    plots.add_argument("--scale", type=float, default=2.0, help="PNG pixels per spec pixel (default: 2)")
    plots.add_argument("-C", "--cwd", type=Path, default=Path("."), help="project directory (default: .)")
    plots.set_defaults(run=run_plots)


def dvc_plots_json(cwd: Path, revisions: Sequence[str] = (), dvc: str | None = None) -> dict:
    """Parsed `dvc plots show --json` (or `dvc plots diff REV... --json`) run in `cwd`."""
    dvc = dvc or find_dvc()
    cmd = [dvc, "plots", *(["diff", *revisions] if revisions else ["show"]), "--json"]
    return dvc_json(cmd, cwd, empty="{}")


def run_plots(args: argparse.Namespace) -> int:
    from perfrepro.logs import setup_logging
    from perfrepro.plots import FORMATS, PlotsError, render, specs_from_dvc_json

    setup_logging("perfrepro plots")
    try:
        specs, problems = specs_from_dvc_json(dvc_plots_json(args.cwd, args.revisions))
        for problem in problems:
            print(f"perfrepro plots: warning: {problem}", file=sys.stderr)
        if not specs:
            raise CliError("no plot has data here (run `dvc repro` first, or name revisions that have plots)")
        written = render(specs, args.cwd / args.out, FORMATS if args.format == "both" else (args.format,), args.scale)
    except (CliError, PlotsError) as exc:
        print(f"perfrepro plots: {exc}", file=sys.stderr)
        return 1
    print("\n".join(str(path) for path in written))
    return 0


# ---- perfrepro samples import (the reading and writing is perfrepro.generation.samples) ----

SAMPLES_DOC = """Published samples of real models -> evalplus samples JSONL (one {"task_id", "solution"} per line).

    perfrepro samples import evalperf data/raw/evalperf/gpt-4o-mini-2024-07-18_openai_temp_1.0_evalperf_results.brief.json \\
        -o data/raw/evalperf/samples/gpt-4o-mini-2024-07-18.jsonl --task-prefix HumanEval/
    perfrepro samples import enamel data/raw/enamel/samples/humaneval-canonical.json -o humaneval-canonical.jsonl

evalperf: EvalPerf's `*_evalperf_results.brief.json` (`eval[task_id].profiled[i].solution`: up to 20
correct samples per task, in file order). enamel: ENAMEL's samples JSON (one list of programs per
HumanEval task, in task order). `llm.backend: samples` and the samples rows (params.yaml, `samples`)
read the result.
"""


def add_samples_parser(sub) -> None:
    samples = sub.add_parser("samples", help="samples files of real models (evalplus format)",
                             description=SAMPLES_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = samples.add_subparsers(dest="action", metavar="ACTION", required=True)
    imported = actions.add_parser("import", help="write evalplus samples JSONL from a published result file",
                                  description=SAMPLES_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    imported.add_argument("format", choices=("evalperf", "enamel"), help="what the input file is")
    imported.add_argument("source", type=Path, help="the published file")
    imported.add_argument("-o", "--out", type=Path, required=True, help="the samples JSONL to write")
    imported.add_argument("--task-prefix", default=None,
                          help="keep only task ids starting with this (e.g. HumanEval/: the tasks ENAMEL can time)")
    imported.set_defaults(run=run_samples_import)


def run_samples_import(args: argparse.Namespace) -> int:
    from perfrepro.generation.samples import SamplesError, enamel_samples, evalperf_samples, write_samples

    try:
        rows = evalperf_samples(args.source) if args.format == "evalperf" else enamel_samples(args.source)
    except SamplesError as exc:
        print(f"perfrepro samples: {exc}", file=sys.stderr)
        return 1
    rows = [row for row in rows if not args.task_prefix or row[0].startswith(args.task_prefix)]
    count = write_samples(args.out, rows)
    print(f"perfrepro samples: {count} samples of {len({task for task, _ in rows})} tasks -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
