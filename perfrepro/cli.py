"""`perfrepro` console script: the study's tables across experiments.

    perfrepro table                               # all tracks, from `dvc exp show --json`, markdown
    perfrepro table --track efficiency --format console
    perfrepro table --from metrics                # only the workspace's params.yaml and metrics/*.json

`--from exp` runs `dvc exp show --json` in the current directory (the workspace, HEAD and its
experiments; `--all-commits` adds every commit); the tables are built by perfrepro.report.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import yaml

from perfrepro.report import TABLE_FORMATS, ExperimentResult, experiments_from_exp_show, study_tables

METRICS_FILES = ("metrics/efficiency.json", "metrics/retrieval.json", "metrics/optimization.json")


class CliError(RuntimeError):
    pass


def find_dvc() -> str:
    """The dvc beside this interpreter (the project's virtualenv) when there is one, else `dvc`."""
    sibling = Path(sys.executable).parent / "dvc"
    return str(sibling) if sibling.exists() else "dvc"


def exp_show(cwd: Path, all_commits: bool = False, dvc: str | None = None) -> list[dict]:
    """Parsed `dvc exp show --json` run in `cwd`."""
    dvc = dvc or find_dvc()
    cmd = [dvc, "exp", "show", "--json", *(["--all-commits"] if all_commits else [])]
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise CliError(f"{dvc}: not found (install dvc, or run from the project's virtualenv)") from None
    if proc.returncode != 0:
        raise CliError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    try:
        payload = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise CliError(f"{' '.join(cmd)}: output is not JSON ({exc})") from None
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
    parser = argparse.ArgumentParser(prog="perfrepro", description="perfrepro: the study's tables across experiments")
    sub = parser.add_subparsers(dest="command", required=True)
    table = sub.add_parser("table", help="the study's tables across experiments",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    table.add_argument("--track", choices=("efficiency", "retrieval", "optimization", "all"), default="all")
    table.add_argument("--from", dest="source", choices=("exp", "metrics"), default="exp",
                       help="exp: `dvc exp show --json` (default); metrics: the workspace's metrics files")
    table.add_argument("--format", choices=tuple(TABLE_FORMATS), default="md")
    table.add_argument("--all-commits", action="store_true", help="--from exp: every commit's experiments")
    table.add_argument("-C", "--cwd", type=Path, default=Path("."), help="project directory (default: .)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.source == "exp":
            results = experiments_from_exp_show(exp_show(args.cwd, args.all_commits))
        else:
            results = [workspace_result(args.cwd)]
    except CliError as exc:
        print(f"perfrepro: {exc}", file=sys.stderr)
        return 1
    if not results:
        print("perfrepro: no experiment with metrics (run `dvc repro` or `dvc exp run` first)", file=sys.stderr)
        return 1
    sys.stdout.write(study_tables(results, args.track, TABLE_FORMATS[args.format]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
