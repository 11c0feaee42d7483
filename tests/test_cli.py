"""`perfrepro table`: the study's tables across experiments, from `dvc exp show --json` or the
workspace's metrics files. The exp-show fixture is real `dvc exp show --json` output of the tiny
e2e pipeline (tests/test_e2e.py): the workspace, the commit and experiments with shots 0, 1 and 3,
one of them under timing.backend=deterministic (trimmed to the keys the tables read)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from perfrepro import cli
from perfrepro.report import (
    ExperimentResult,
    efficiency_experiment_rows,
    experiments_from_exp_show,
    optimization_experiment_rows,
    retrieval_display_names,
    retrieval_rows,
    study_tables,
)

FIXTURES = Path(__file__).parent / "fixtures"
MODEL = "smollm2-135m-instruct"


@pytest.fixture()
def exp_show():
    return json.loads((FIXTURES / "exp_show.json").read_text(encoding="utf-8"))


def test_experiments_from_exp_show_reads_workspace_commit_and_experiments(exp_show):
    results = experiments_from_exp_show(exp_show)
    names = [r.name for r in results]
    assert names[0] == "workspace"
    assert len(results) >= 4
    for result in results:
        assert "metrics/efficiency.json" in result.metrics
        assert "shots" in result.params


def test_queued_and_failed_entries_are_left_out(exp_show):
    payload = json.loads(json.dumps(exp_show))
    rev = payload[1]["experiments"][0]["revs"][0]
    rev["data"]["status"] = "Queued"
    payload[1]["experiments"].append({"revs": [{"rev": "abc", "name": "broken", "error": {"msg": "failed"},
                                                "data": {"metrics": {}}}]})
    names = [r.name for r in experiments_from_exp_show(payload)]
    assert rev["name"] not in names and "broken" not in names


def test_efficiency_rows_are_named_like_the_study_and_sorted_by_model_then_shots(exp_show):
    rows = efficiency_experiment_rows(experiments_from_exp_show(exp_show))
    names = [name for name, _ in rows]
    assert names[:3] == [MODEL, f"rag1_and_{MODEL}", f"rag3_and_{MODEL}"]
    assert f"rag3_and_{MODEL} [timing: deterministic]" in names
    assert len(names) == len(set(names))  # workspace == commit: one row


def test_same_name_with_different_metrics_gets_the_experiment_name():
    params = {"shots": 1, "llm": {"model": "m", "backend": "local"}, "timing": {"backend": "wall"}}
    results = [ExperimentResult(name, name, params, {"metrics/efficiency.json": {"efficiency": {"NET": net}}})
               for name, net in (("exp-a", 1.0), ("exp-b", 2.0), ("exp-c", 1.0))]
    rows = efficiency_experiment_rows(results)
    assert [name for name, _ in rows] == ["rag1_and_m [exp-a]", "rag1_and_m [exp-b]"]


def test_recorded_backend_rows_are_labelled():
    params = {"shots": 0, "llm": {"model": "m", "backend": "recorded"}, "timing": {"backend": "wall"}}
    rows = efficiency_experiment_rows([ExperimentResult("x", "x", params, {"metrics/efficiency.json": {"efficiency": {}}})])
    assert rows[0][0] == "m (recorded responses)"


def test_efficiency_table_has_the_study_columns_in_order(exp_show):
    text = study_tables(experiments_from_exp_show(exp_show), "efficiency", "github")
    header = next(line for line in text.splitlines() if line.startswith("| Model"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells == ["Model", "ET", "NET", "Max_NET", "NET>5", "MU", "NMU", "Max_NMU", "NMU>5", "TMU", "NTMU",
                     "Max_TMU", "TMU>5", "pass1"]
    assert "## Retrieval" not in text


def test_retrieval_display_names_follow_params_order_and_protocol():
    params = {"adapters": {"a_0.1": {}, "b": {}}, "retrieval": {"protocol": "heldout"}}
    keys = ["a_0_1", "a_0_1__study", "b", "b__study", "base_all-MiniLM-L6-v2", "mystery"]
    assert retrieval_display_names(params, keys) == [
        ("base_all-MiniLM-L6-v2", "base all-MiniLM-L6-v2"), ("a_0_1", "a_0.1"), ("b", "b"),
        ("a_0_1__study", "a_0.1 [study protocol]"), ("b__study", "b [study protocol]"), ("mystery", "mystery"),
    ]
    study = retrieval_display_names({**params, "retrieval": {"protocol": "study"}}, keys)
    assert study[1] == ("a_0_1__study", "a_0.1 [study protocol]")


def test_retrieval_rows_are_base_plus_every_adapter_per_k(exp_show):
    result = experiments_from_exp_show(exp_show)[0]
    models = result.metrics["metrics/retrieval.json"]["retrieval"]
    rows = retrieval_rows(result.params, models)
    ks = sorted(result.params["retrieval"]["ks"])
    assert len(rows) == len(models) * len(ks)
    assert [row[1] for row in rows] == [k for k in ks for _ in models]
    assert rows[0][0] == "base all-MiniLM-L6-v2"
    for variant in result.params["adapters"]:
        assert variant in {row[0] for row in rows}


def test_one_retrieval_table_when_experiments_share_retrieval(exp_show):
    text = study_tables(experiments_from_exp_show(exp_show), "retrieval", "github")
    assert text.count("| Model Type") == 1 and "Experiments:" not in text


def test_optimization_rows(exp_show):
    rows = optimization_experiment_rows(experiments_from_exp_show(exp_show))
    names = [name for name, _ in rows]
    assert names[0].startswith(f"generated ({MODEL}, ")
    assert names[1:3] == ["human reference (ENAMEL, ceiling)", "slow (HumanEval canonical)"]
    assert names[-1] == "slow (HumanEval canonical) [timing: deterministic]"


def test_cli_from_exp_runs_dvc_exp_show(monkeypatch, capsys, exp_show, tmp_path):
    calls = []

    def fake_run(cmd, cwd, capture_output, text):
        calls.append((cmd, cwd))
        return subprocess.CompletedProcess(cmd, 0, json.dumps(exp_show), "")

    monkeypatch.setattr(cli.subprocess, "run", fake_run)
    assert cli.main(["table", "--format", "console", "-C", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert [(Path(cmd[0]).name, cmd[1:], cwd) for cmd, cwd in calls] == [("dvc", ["exp", "show", "--json"], tmp_path)]
    for title in ("## Efficiency", "## Retrieval", "## Optimization (PIE)"):
        assert title in out
    assert f"rag1_and_{MODEL}" in out and "-----" in out and "| Model" not in out


def test_cli_reports_a_failing_dvc(monkeypatch, capsys):
    monkeypatch.setattr(cli.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "ERROR: not a dvc repository"))
    assert cli.main(["table"]) == 1
    assert "not a dvc repository" in capsys.readouterr().err


def test_cli_from_metrics_reads_the_workspace(tmp_path, capsys, exp_show):
    workspace = experiments_from_exp_show(exp_show)[0]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(dict(workspace.params)))
    (tmp_path / "metrics").mkdir()
    for name, data in workspace.metrics.items():
        (tmp_path / name).write_text(json.dumps(data))
    assert cli.main(["table", "--from", "metrics", "--track", "efficiency", "-C", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"| rag3_and_{MODEL}" in out


def test_cli_from_metrics_without_metrics_fails_clearly(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text("shots: 1\n")
    assert cli.main(["table", "--from", "metrics", "-C", str(tmp_path)]) == 1
    assert "dvc repro" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("perfrepro", path=str(Path(sys.executable).parent)) is None,
                    reason="console script not installed")
def test_console_script_help():
    exe = shutil.which("perfrepro", path=str(Path(sys.executable).parent))
    proc = subprocess.run([exe, "table", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--track" in proc.stdout
