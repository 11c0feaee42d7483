"""`perfrepro table`: the study's tables across experiments, from `dvc exp show --json` or the
workspace's metrics files. The exp-show fixture is real `dvc exp show --json` output of the tiny
e2e pipeline (tests/test_e2e.py): the workspace, the commit and experiments with shots 0, 1 and 3,
one of them under timing.backend=deterministic (trimmed to the keys the tables read)."""

from __future__ import annotations

import argparse
import json
import os
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
REPO = Path(__file__).resolve().parents[1]
DVC_ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}
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
    assert [name for name, _ in rows] == ["rag1_and_m [exp-a, exp-c]", "rag1_and_m [exp-b]"]


def test_rows_from_different_code_sources_never_merge():
    """Equal metrics (all 0: nothing passed) from the live model and from the recorded responses
    stay two rows, each named by where its code came from."""
    def result(name, backend):
        params = {"shots": 0, "llm": {"model": "smollm2", "backend": backend}, "timing": {"backend": "wall"}}
        return ExperimentResult(name, name, params, {"metrics/efficiency.json": {"efficiency": {"pass1": 0.0}}})
    rows = efficiency_experiment_rows([result("live", "local"), result("replay", "recorded")])
    assert sorted(name for name, _ in rows) == ["leetcodedataset-response", "smollm2"]


def test_recorded_backend_rows_are_labelled():
    params = {"shots": 0, "llm": {"model": "m", "backend": "recorded"}, "timing": {"backend": "wall"}}
    rows = efficiency_experiment_rows([ExperimentResult("x", "x", params, {"metrics/efficiency.json": {"efficiency": {}}})])
    assert rows[0][0] == "leetcodedataset-response"  # where the code came from, not the live model's name


def test_efficiency_table_has_the_study_columns_in_order(exp_show):
    text = study_tables(experiments_from_exp_show(exp_show), "efficiency", "github")
    header = next(line for line in text.splitlines() if line.startswith("| Model"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    assert cells == ["Model", "ET", "NET", "NET 95% CI", "Max_NET", "NET>5", "MU", "NMU", "NMU 95% CI", "Max_NMU",
                     "NMU>5", "TMU", "NTMU", "NTMU 95% CI", "Max_TMU", "TMU>5", "pass1"]
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


def git_dvc_repo(path: Path) -> None:
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.com"],
                ["git", "config", "user.name", "t"], [cli.find_dvc(), "init", "-q"]):
        subprocess.run(cmd, cwd=path, check=True, capture_output=True, env=DVC_ENV)


def write_result(path: Path, result: ExperimentResult) -> None:
    (path / "params.yaml").write_text(yaml.safe_dump(dict(result.params)))
    (path / "metrics").mkdir(exist_ok=True)
    for name, data in result.metrics.items():
        (path / name).write_text(json.dumps(data))


@pytest.mark.slow
def test_cli_from_exp_runs_real_dvc_exp_show(capsys, exp_show, tmp_path):
    # A real DVC repo whose commit holds the fixture's workspace, plus one experiment saved with
    # `dvc exp save` (shots 1 and another NET): `perfrepro table` reads both through `dvc exp show`.
    git_dvc_repo(tmp_path)
    workspace = experiments_from_exp_show(exp_show)[0]
    (tmp_path / "dvc.yaml").write_text("params:\n  - params.yaml\nmetrics:\n"
                                       + "".join(f"  - {name}\n" for name in workspace.metrics))
    params = json.loads(json.dumps(dict(workspace.params)))
    params["shots"] = 3
    write_result(tmp_path, ExperimentResult("w", "w", params, workspace.metrics))
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-q", "-m", "base"], cwd=tmp_path, check=True, capture_output=True)
    params["shots"] = 1
    metrics = json.loads(json.dumps(workspace.metrics))
    metrics["metrics/efficiency.json"]["efficiency"]["NET"] = 7.25
    write_result(tmp_path, ExperimentResult("w", "w", params, metrics))
    saved = subprocess.run([cli.find_dvc(), "exp", "save", "-n", "shots1"], cwd=tmp_path, capture_output=True,
                           text=True, env=DVC_ENV)
    assert saved.returncode == 0, saved.stderr

    assert cli.main(["table", "--format", "console", "-C", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for title in ("## Efficiency", "## Retrieval", "## Optimization (PIE)"):
        assert title in out
    assert f"rag1_and_{MODEL}" in out and f"rag3_and_{MODEL}" in out and "7.25" in out
    assert "-----" in out and "| Model" not in out


@pytest.mark.slow
def test_cli_reports_a_failing_dvc(capsys, tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)  # a git repo, but no `dvc init`
    assert cli.main(["table", "-C", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("perfrepro: ") and "exp show --json exited" in err and "DVC repository" in err


def test_dvc_json_names_a_missing_program_a_failed_run_and_output_that_is_not_json(tmp_path):
    assert cli.dvc_json([sys.executable, "-c", "print('{\"a\": 1}')"], tmp_path, empty="{}") == {"a": 1}
    assert cli.dvc_json([sys.executable, "-c", "pass"], tmp_path, empty="[]") == []  # no output at all
    with pytest.raises(cli.CliError, match=r"no-such-dvc: not found \(install dvc"):
        cli.dvc_json([str(tmp_path / "no-such-dvc"), "exp", "show"], tmp_path, empty="[]")
    with pytest.raises(cli.CliError, match=r"exited 3: broken$"):
        cli.dvc_json([sys.executable, "-c", "import sys; print('broken', file=sys.stderr); sys.exit(3)"], tmp_path, empty="[]")
    with pytest.raises(cli.CliError, match="output is not JSON"):
        cli.dvc_json([sys.executable, "-c", "print('not json')"], tmp_path, empty="[]")


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
@pytest.mark.slow
def test_console_script_help():
    exe = shutil.which("perfrepro", path=str(Path(sys.executable).parent))
    proc = subprocess.run([exe, "table", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--track" in proc.stdout
    version = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("perfrepro ")
    bare = subprocess.run([exe], capture_output=True, text=True)
    assert bare.returncode == 0 and bare.stdout.startswith("usage: perfrepro")


# -- entry points, help, check ------------------------------------------------------------------


def run_module(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perfrepro", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)


@pytest.mark.slow
def test_python_m_perfrepro_version_and_bare_help():
    from perfrepro import __version__

    version = run_module("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"perfrepro {__version__}"
    bare = run_module()
    assert bare.returncode == 0 and bare.stdout.startswith("usage: perfrepro")
    assert "check" in bare.stdout and "table" in bare.stdout and "--version" in bare.stdout


def test_every_option_of_every_command_has_help():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parsers = {"perfrepro": parser, **subparsers.choices}
    missing = [f"{name} {'/'.join(action.option_strings)}" for name, p in parsers.items() for action in p._actions
               if action.option_strings and not action.help]
    assert missing == []
    assert {c.dest for c in subparsers._choices_actions} == set(subparsers.choices)  # each command has help
    assert all(c.help for c in subparsers._choices_actions)


def test_perfrepro_check_names_a_top_level_typo_and_what_to_do(tmp_path, capsys):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key in ("corpus", "tasks", "enamel_dir", "humanevalplus", "pie_pairs"):
        params["data"][key] = str(REPO / params["data"][key])
    for entry in (*params["samples"]["models"].values(), params["samples"]["backend"]):
        entry["file"] = str(REPO / entry["file"])
    params["shotz"] = 2
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["check", "--params-only", "-C", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "error" in captured.out and "shotz: unknown key; did you mean shots?" in captured.out
    assert "1 error(s)" in captured.err and "fix the errors above" in captured.err

    del params["shotz"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert cli.main(["check", "-C", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for topic in ("params", "sandbox", "valgrind", "llama.cpp"):
        assert f" {topic} " in out


def test_perfrepro_check_without_a_params_file_says_where_it_looked(tmp_path, capsys):
    assert cli.main(["check", "--params-only", "-C", str(tmp_path)]) == 1
    assert "params file not found" in capsys.readouterr().out
