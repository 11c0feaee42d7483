"""Clean recovery through real DVC in a temp git repo: the real generate stage against a fake
OpenAI-compatible server succeeds and is committed; pointed at a closed loopback port it fails
and leaves no output; with params.yaml restored, `dvc checkout` and `dvc repro` work without
--force and rerun nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fake_openai_server import FakeOpenAI, refused_url

from perfrepro.records import write_jsonl
from test_generation_stage import tiny_tasks

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET = "sk-recovery-test-0123456789"

DVC_YAML = f"""
stages:
  generate:
    cmd: {sys.executable} {REPO / 'stages' / 'generate.py'} --tasks tasks.jsonl --index no-index --adapters no-adapters --out data/completions.jsonl
    deps:
      - tasks.jsonl
    params:
      - shots
      - llm
    outs:
      - data/completions.jsonl
"""


def test_a_failed_generate_leaves_nothing_and_checkout_then_repro_recover_without_force(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1", "OPENAI_API_KEY": SECRET,
           "PERFREPRO_LLM_CACHE": str(tmp_path / "llm-cache"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    repo = tmp_path / "repo"
    repo.mkdir()

    def sh(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(args), cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        if ok:
            assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
        return proc

    dvc = str(BIN / "dvc")
    sh("git", "init", "-q")
    sh("git", "config", "user.email", "t@example.com")
    sh("git", "config", "user.name", "t")
    sh(dvc, "init", "-q")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    write_jsonl(repo / "tasks.jsonl", tiny_tasks(3))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["shots"] = 0
    with FakeOpenAI() as server:
        params["llm"].update(backend="openai", base_url=server.base_url, model="fake-model", max_retries=3)
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
        sh(dvc, "repro")
        good = (repo / "data" / "completions.jsonl").read_bytes()
        sh("git", "add", "-A")
        sh("git", "commit", "-q", "-m", "good run")

        # Fail on purpose: a wrong base_url.
        with refused_url() as wrong:
            params["llm"]["base_url"] = wrong
            (repo / "params.yaml").write_text(yaml.safe_dump(params))
            failed = sh(dvc, "repro", ok=False)
        assert failed.returncode != 0
        assert f"cannot reach the LLM endpoint {wrong}" in failed.stderr + failed.stdout
        assert not (repo / "data" / "completions.jsonl").exists()  # no half-made output to refuse
        assert [p.name for p in (repo / "data").iterdir() if p.name != ".gitignore"] == []

        # Recover: restore params, then checkout and repro, no --force anywhere.
        sh("git", "checkout", "--", "params.yaml")
        checkout = sh(dvc, "checkout")
        assert "unsaved" not in checkout.stderr + checkout.stdout
        assert (repo / "data" / "completions.jsonl").read_bytes() == good
        repro = sh(dvc, "repro")
        assert "Running stage" not in repro.stdout
        assert sh(dvc, "status", "--json").stdout.strip() in ("{}", "")
        assert server.count == 3  # the good run's three requests; nothing resent
