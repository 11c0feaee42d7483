"""`dvc repro prepare` in a fresh copy of the repo; a second `dvc repro` reruns nothing.

The test's dvc.yaml is the real `prepare` stage, extracted from the repo's dvc.yaml, so the test
follows the real definition (its cmd, deps, params and outs).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from perfrepro.config import load_params
from perfrepro.records import CorpusPair, OptTask, Task, read_jsonl

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def copy_into(relative: str, root: Path) -> None:
    source, target = REPO / relative, root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)


def test_dvc_repro_prepare_then_nothing_to_rerun(tmp_path):
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["prepare"]
    root = tmp_path / "repo"
    root.mkdir()
    # prepare alone: without the check stage before it (tests/test_check.py runs that one)
    stage["deps"] = [dep for dep in stage["deps"] if dep != "data/check.json"]
    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))["data"]
    resolved = [re.sub(r"\$\{data\.(\w+)\}", lambda m: data[m.group(1)], dep) for dep in stage["deps"]]
    for relative in {*resolved, "perfrepro", "params.yaml", ".dvcignore"}:
        copy_into(relative, root)
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"prepare": stage}}, sort_keys=False), encoding="utf-8")

    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the stage's `python` is the venv's
        "PYTHONPATH": str(root),  # the stage imports the copied perfrepro
        "HF_HUB_OFFLINE": "1",
    }
    dvc = str(BIN / "dvc")
    run(["git", "init", "-q"], root, env)
    run([dvc, "init", "-q"], root, env)
    run([dvc, "config", "core.analytics", "false"], root, env)
    shutil.copy2(REPO / ".dvcignore", root / ".dvcignore")  # dvc init wrote its own

    first = run([dvc, "repro", "prepare"], root, env)
    assert "Running stage 'prepare'" in first.stdout

    params = load_params(root / "params.yaml")
    prepared = root / "data" / "prepared"
    train = read_jsonl(prepared / "corpus_train.jsonl", CorpusPair)
    test = read_jsonl(prepared / "corpus_test.jsonl", CorpusPair)
    tasks = read_jsonl(prepared / "tasks.jsonl", Task)
    opt_tasks = read_jsonl(prepared / "opt_tasks.jsonl", OptTask)
    assert len(train) + len(test) == 1890
    assert len(test) == round(1890 * params.data.test_fraction)
    assert {p.id for p in train}.isdisjoint({p.id for p in test})
    assert len(tasks) == (params.data.limit_tasks or 228)
    assert len(opt_tasks) == 142
    assert (root / "dvc.lock").is_file()
    outputs = {path.name: path.read_bytes() for path in prepared.glob("*.jsonl")}

    second = run([dvc, "repro"], root, env)
    assert "Running stage" not in second.stdout
    assert "didn't change" in second.stdout or "up to date" in second.stdout
    status = run([dvc, "status"], root, env)
    assert "up to date" in status.stdout
    assert {path.name: path.read_bytes() for path in prepared.glob("*.jsonl")} == outputs

    # Forced rerun: same params -> same bytes.
    run([dvc, "repro", "--force", "prepare"], root, env)
    assert {path.name: path.read_bytes() for path in prepared.glob("*.jsonl")} == outputs
