"""The `check` stage and perfrepro.checks: every section validated (a top-level typo included), the
machine checked for what the configured backends need, a report that does not change with a
param's value; and, through real DVC in a temp git repo, that a typo stops `dvc repro` before any
other stage and that a changed param reruns `check` without rerunning stages that do not read it."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from perfrepro.checks import DATA_PATHS, as_report, check_params, check_valgrind, has_errors

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def real_params() -> dict:
    """The project's params.yaml with data paths made absolute, usable from any directory."""
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for key in DATA_PATHS:
        params["data"][key] = str(REPO / params["data"][key])
    for entry in (*params["samples"]["models"].values(), params["samples"]["backend"]):
        entry["file"] = str(REPO / entry["file"])
    return params


def write_params(folder: Path, params: dict) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def run_check_stage(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "stages" / "check.py"), "--out", "data/check.json", *args],
                          cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_top_level_typo_is_an_error_with_a_suggestion(tmp_path):
    params = real_params()
    params["shotz"] = 2
    parsed, findings = check_params(write_params(tmp_path, params))
    assert parsed is None and has_errors(findings)
    errors = [f.message.split(": ", 1)[1] for f in findings if f.level == "error"]
    assert len(errors) == 1
    assert errors[0].startswith("shotz: unknown key; did you mean shots? (expected one of seed, data, embed, ")


def test_a_missing_data_file_names_its_key(tmp_path):
    params = real_params()
    params["data"]["tasks"] = "data/raw/nowhere.jsonl.gz"
    _, findings = check_params(write_params(tmp_path, params))
    errors = [f.message for f in findings if f.level == "error"]
    assert len(errors) == 1 and errors[0].startswith("data.tasks: data/raw/nowhere.jsonl.gz does not exist")
    params = real_params()
    params["samples"]["models"]["gpt-4o-2024-08-06"]["file"] = "nowhere.jsonl"
    _, findings = check_params(write_params(tmp_path, params))
    errors = [f.message for f in findings if f.level == "error"]
    assert len(errors) == 1 and errors[0].startswith("samples.models.gpt-4o-2024-08-06.file: nowhere.jsonl does not exist")


def test_valgrind_is_an_error_only_when_the_deterministic_backend_needs_it(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert check_valgrind(required=False)[0].level == "ok"
    needed = check_valgrind(required=True)[0]
    assert needed.level == "error" and "apt-get install valgrind" in needed.message


def test_the_check_stage_refuses_a_typo_and_writes_nothing(tmp_path):
    params = real_params()
    params["shotz"] = 2
    write_params(tmp_path, params)
    result = run_check_stage(tmp_path)
    assert result.returncode == 1
    assert "check: error: params: params.yaml: shotz: unknown key; did you mean shots?" in result.stderr
    assert not (tmp_path / "data").exists()


def test_the_report_does_not_change_with_a_params_value(tmp_path):
    params = real_params()
    write_params(tmp_path, params)
    assert run_check_stage(tmp_path).returncode == 0
    first = (tmp_path / "data" / "check.json").read_bytes()
    params["shots"], params["llm"]["model"] = 1, "another-model"
    write_params(tmp_path, params)
    result = run_check_stage(tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "check.json").read_bytes() == first
    assert b'"params": "valid"' in first and b'"sandbox"' in first


def test_recorded_backend_with_shots_is_an_error_and_warns_about_the_pie_track(tmp_path):
    from perfrepro.checks import check_llm

    params = real_params()
    params["llm"]["backend"] = "recorded"
    parsed, _ = check_params(write_params(tmp_path, params))
    findings = check_llm(parsed)
    assert any(f.level == "error" and "only works with shots: 0" in f.message for f in findings)
    assert any(f.level == "warning" and "PIE track" in f.message for f in findings)


def test_as_report_keeps_machine_facts_only():
    from perfrepro.checks import Finding

    report = as_report([Finding("ok", "params", "params.yaml: every section valid"),
                        Finding("ok", "llm", "llm: backend openai, model m"),
                        Finding("warning", "sandbox", "isolation uid")])
    assert report == {"params": "valid", "machine": [{"level": "warning", "topic": "sandbox", "message": "isolation uid"}]}


# -- through DVC ---------------------------------------------------------------------------------

DVC_YAML = f"""
stages:
  check:
    cmd: {sys.executable} {REPO / 'stages' / 'check.py'} --out data/check.json
    params:
      - params.yaml:
    outs:
      - data/check.json
  uses_shots:
    cmd: {sys.executable} -c "import yaml; print(yaml.safe_load(open('params.yaml'))['shots'], file=open('shots.txt', 'w'))"
    deps:
      - data/check.json
    params:
      - shots
    outs:
      - shots.txt
  uses_seed:
    cmd: {sys.executable} -c "import yaml; print(yaml.safe_load(open('params.yaml'))['seed'], file=open('seed.txt', 'w'))"
    deps:
      - data/check.json
    params:
      - seed
    outs:
      - seed.txt
"""


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(BIN / "dvc"), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300)


def ran(proc: subprocess.CompletedProcess) -> list[str]:
    return sorted(line.split("'")[1] for line in proc.stdout.splitlines() if line.startswith("Running stage '"))


@pytest.fixture()
def dvc_repo(tmp_path):
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)
    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    assert dvc(tmp_path, "init", "-q").returncode == 0
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    write_params(tmp_path, real_params())
    first = dvc(tmp_path, "repro")
    assert first.returncode == 0, first.stderr
    assert ran(first) == ["check", "uses_seed", "uses_shots"]
    return tmp_path


def test_dvc_repro_stops_at_check_on_a_top_level_typo_and_reruns_only_what_reads_a_change(dvc_repo):
    params = real_params()
    params["shotz"] = 2  # the typo: no stage lists it, only `check` sees the whole file
    write_params(dvc_repo, params)
    failed = dvc(dvc_repo, "repro")
    assert failed.returncode != 0
    assert "shotz: unknown key; did you mean shots?" in failed.stderr + failed.stdout
    assert ran(failed) == ["check"]

    del params["shotz"]
    params["shots"] = 1
    write_params(dvc_repo, params)
    fixed = dvc(dvc_repo, "repro")
    assert fixed.returncode == 0, fixed.stderr
    assert ran(fixed) == ["check", "uses_shots"]  # check.json unchanged: uses_seed is not rerun
    assert (dvc_repo / "shots.txt").read_text().strip() == "1"


def test_the_sandbox_check_is_an_error_where_measure_would_refuse(monkeypatch):
    from perfrepro.checks import check_sandbox
    from perfrepro.execution import sandbox

    weak = dataclasses.replace(sandbox.isolation(), name="uid", note="network NOT isolated")
    monkeypatch.setattr(sandbox, "isolation", lambda: weak)
    monkeypatch.setattr(sandbox, "refusal", lambda iso, allowed: None if allowed else "sandbox refuses to run untrusted code")
    monkeypatch.setattr(sandbox, "unisolated_allowed", lambda: False)
    refused = check_sandbox()
    assert refused[0].level == "error" and refused[0].message.startswith("sandbox refuses to run untrusted code")
    monkeypatch.setattr(sandbox, "unisolated_allowed", lambda: True)
    assert check_sandbox()[0].level == "warning"
