"""How fast a wrong `llm.base_url` fails (issue #20's goal: <= 10 s), measured on the real
generate stage (numbers, not assertions).

The project's params.yaml (shots as configured, the retrieval that precedes generation included)
with `llm.backend: openai` and `llm.base_url` at a closed loopback port; the 10 tasks of the
prepare stage. Each repeat is a fresh process, as DVC runs it; `--dvc` also times `dvc repro` of
that stage in a temp git+dvc repo (DVC's own start-up included). Prints the seconds, the exit
status and the stage's error line.

Usage: python benchmarks/fail_fast.py [--repeats 3] [--dvc]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATA_KEYS = ("corpus", "tasks", "enamel_dir", "humanevalplus", "pie_pairs")


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def wrong_params(work: Path) -> tuple[Path, str]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for key in DATA_KEYS:
        params["data"][key] = str(ROOT / params["data"][key])
    url = closed_port_url()
    params["llm"].update(backend="openai", base_url=url)
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path, url


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, int, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    errors = [line for line in (proc.stderr + proc.stdout).splitlines() if "error" in line.lower()]
    return seconds, proc.returncode, errors[0] if errors else "(no error line)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="fresh-process runs (default 3)")
    parser.add_argument("--dvc", action="store_true", help="also time `dvc repro` of the stage in a temp repo")
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "sk-benchmark-not-a-key",
           "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    with tempfile.TemporaryDirectory(prefix="perfrepro-failfast-") as tmp:
        work = Path(tmp)
        env["PERFREPRO_LLM_CACHE"] = str(work / "llm-cache")
        params, url = wrong_params(work)
        subprocess.run([sys.executable, str(ROOT / "stages" / "prepare.py"), "--params", str(params),
                        "--out", str(work / "prepared")], env=env, check=True, capture_output=True)
        shots = yaml.safe_load(params.read_text())["shots"]
        print(f"generate stage, llm.base_url {url} (closed), shots {shots}, load {os.getloadavg()[0]:.1f}")
        stage = [sys.executable, str(ROOT / "stages" / "generate.py"), "--params", str(params),
                 "--tasks", str(work / "prepared" / "tasks.jsonl"), "--index", str(work / "no-index"),
                 "--adapters", str(work / "no-adapters"), "--out", str(work / "out" / "completions.jsonl")]
        runs = [timed(stage, ROOT, env) for _ in range(args.repeats)]
        for seconds, code, line in runs:
            print(f"  {seconds:5.2f} s  exit {code}  {line}")
        print(f"  median {statistics.median(s for s, _, _ in runs):.2f} s (goal <= 10 s); "
              f"output written: {(work / 'out').exists()}")
        if args.dvc:
            repo = work / "repo"
            repo.mkdir()
            for cmd in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
                subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
            (repo / "params.yaml").write_text(params.read_text())
            (repo / "dvc.yaml").write_text(
                "stages:\n  generate:\n"
                f"    cmd: {' '.join(stage[:2])} --tasks {work / 'prepared' / 'tasks.jsonl'} "
                f"--index {ROOT / 'data' / 'index'} --adapters {ROOT / 'data' / 'adapters'} "
                "--out data/completions.jsonl\n"
                "    params:\n      - shots\n      - llm\n    outs:\n      - data/completions.jsonl\n")
            seconds, code, line = timed([str(BIN / "dvc"), "repro"], repo, env)
            print(f"dvc repro: {seconds:5.2f} s  exit {code}  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
