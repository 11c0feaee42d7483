"""The stage harness (perfrepro.stage): bad input exits 1 with its message and no traceback,
Ctrl-C and SIGTERM exit 130, other errors keep their traceback, paths are required flags."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from perfrepro.config import ConfigError
from perfrepro.execution.sandbox import SandboxUnavailable
from perfrepro.records import RecordError
from perfrepro.stage import INTERRUPTED, is_bad_input, run_stage, stage, with_run_info

REPO = Path(__file__).resolve().parents[1]


def test_bad_input_exits_1_with_the_message_and_no_traceback(capsys):
    def work():
        raise ConfigError("params.yaml: shots: expected int, got 'two'")

    assert run_stage("demo", work) == 1
    err = capsys.readouterr().err
    assert "demo: error: params.yaml: shots: expected int, got 'two'" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("exc", [RecordError("x.jsonl, line 3: field 'id' is missing"),
                                 FileNotFoundError("no such file: x.jsonl"),
                                 SandboxUnavailable("no isolation on this machine")])
def test_what_counts_as_bad_input(exc):
    assert is_bad_input(exc)
    assert run_stage("demo", lambda: (_ for _ in ()).throw(exc)) == 1


def test_a_builtin_error_is_bad_input_only_where_the_stage_says_so():
    def work():
        raise ValueError("bad value")

    assert not is_bad_input(ValueError("bad value"))
    with pytest.raises(ValueError, match="bad value"):
        run_stage("demo", work)
    assert run_stage("demo", work, also=(ValueError,)) == 1


def test_a_bug_keeps_its_traceback():
    with pytest.raises(KeyError):
        run_stage("demo", lambda: {}["missing"])


def test_ctrl_c_exits_130_with_the_stage_message(capsys):
    def work():
        raise KeyboardInterrupt

    assert run_stage("demo", work, interrupted="interrupted; a rerun does the rest") == INTERRUPTED == 130
    assert "demo: error: interrupted; a rerun does the rest" in capsys.readouterr().err


def test_the_return_code_and_the_sigterm_handler_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    assert run_stage("demo", lambda: None) == 0
    assert run_stage("demo", lambda: 3) == 3
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_model_stage_keeps_the_hub_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    run_stage("demo", lambda: None)
    assert "HF_HUB_OFFLINE" not in os.environ
    run_stage("demo", lambda: None, model=True)
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_the_decorator_makes_paths_required_flags(tmp_path, capsys):
    seen = {}

    @stage("demo", "tasks", "out-dir", options=lambda p: p.add_argument("--k", type=int, default=1))
    def main(args):
        seen.update(vars(args))
        return 0

    assert main(["--tasks", "t.jsonl", "--out-dir", str(tmp_path), "--k", "2"]) == 0
    assert seen == {"params": Path("params.yaml"), "tasks": Path("t.jsonl"), "out_dir": tmp_path, "k": 2}
    with pytest.raises(SystemExit) as exit_info:
        main(["--tasks", "t.jsonl"])
    assert exit_info.value.code == 2
    assert "the following arguments are required: --out-dir" in capsys.readouterr().err


def test_run_info_comes_last():
    metrics = with_run_info({"b": 1, "a": 2})
    assert list(metrics) == ["b", "a", "run_info"]
    assert isinstance(metrics["run_info"], dict) and metrics["run_info"]


def test_sigterm_to_a_real_stage_process_exits_130(tmp_path):
    ready = tmp_path / "ready"
    script = tmp_path / "sleeper.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from perfrepro.stage import run_stage

        def work():
            Path({str(ready)!r}).write_text("ok")
            time.sleep(60)

        sys.exit(run_stage("sleeper", work, interrupted="stopped by a signal"))
    """), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "the stage never started its work"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 130
        assert "sleeper: error: stopped by a signal" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
