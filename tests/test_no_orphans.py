"""A killed measuring stage leaves nothing behind: not its sandboxed runs, not valgrind, not their
run directories.

The real `measure` stage runs the deterministic backend (valgrind) on a completion that never
ends; once valgrind is running under it, the stage gets SIGTERM or SIGINT (Ctrl-C) and every
process of its tree must be gone within seconds, and no `perfrepro-*` directory may be left in
its temp dir (a temp dir of the test's own: `$TMPDIR`). The looping program is harmless.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from perfrepro.records import Completion, Task, read_jsonl, write_jsonl

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "efficiency_tasks.jsonl"
LOOP_FOREVER = "class Solution:\n    def canAliceWin(self, n):\n        while True:\n            pass\n"


def _default_sigint() -> None:
    # a suite started in the background inherits SIGINT ignored; Ctrl-C must reach the stage
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _valgrind_under(stage: psutil.Process, deadline_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        tree = stage.children(recursive=True)
        for process in tree:
            try:
                # the tool itself (valgrind execs callgrind-amd64-linux, ...), not a wrapper whose
                # argv names valgrind: the sandbox's keeper starts it only once the run dir is set up
                if process.name().startswith(("memcheck", "callgrind", "massif")):
                    return tree
            except psutil.Error:  # gone or a zombie between listing and reading
                continue
        time.sleep(0.2)
    pytest.fail("valgrind never started under the measure stage")


def _alive(processes: list[psutil.Process]) -> list[tuple[int, str]]:
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append((process.pid, process.name()))
        except psutil.Error:
            continue
    return alive


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_killing_a_measuring_stage_leaves_no_process_of_its_tree(tmp_path, how):
    task = next(t for t in read_jsonl(FIXTURE, Task) if t.id == "stone-removal-game")
    write_jsonl(tmp_path / "tasks.jsonl", [task])
    write_jsonl(tmp_path / "completions.jsonl", [Completion(task.id, 0, "test", "ok", LOOP_FOREVER, LOOP_FOREVER)])
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["timing"].update(backend="deterministic", repeats=1, timeout_s=120.0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    temp_dir = tmp_path / "tmp"
    temp_dir.mkdir()
    os.chmod(temp_dir, 0o755)  # as /tmp is for the sandbox's run dirs: nobody traverses it
    stage = subprocess.Popen(
        [sys.executable, str(ROOT / "stages" / "measure.py"), "--params", str(tmp_path / "params.yaml"),
         "--tasks", str(tmp_path / "tasks.jsonl"), "--completions", str(tmp_path / "completions.jsonl"),
         "--out", str(tmp_path / "timings")],
        cwd=ROOT, env={**os.environ, "TMPDIR": str(temp_dir)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=_default_sigint)
    try:
        tree = _valgrind_under(psutil.Process(stage.pid), deadline_s=90)
        assert [p.name for p in temp_dir.iterdir()] == [], "the run dir is on the host while its program runs"
        stage.send_signal(how)
        stage.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(tree):
            time.sleep(0.1)
        left = _alive(tree)
        assert left == [], f"processes outlived the stage: {left}"
        assert [p.name for p in temp_dir.glob("perfrepro-*")] == []
        assert not (tmp_path / "timings" / "measurements.jsonl").exists()
    finally:
        if stage.poll() is None:
            stage.kill()
            stage.wait()
