"""The generate stage as a subprocess against a fake OpenAI-compatible server: killed midway and
rerun, it sends only the missing requests; the API key never reaches disk; too many failures,
a wrong base_url (a closed loopback port) and a server that stops answering exit non-zero and
write nothing, while the cache keeps what was received."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from fake_openai_server import FakeOpenAI, Reply, refused_url

from perfrepro.records import Completion, Task, read_jsonl, write_jsonl

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-stage-test-SECRET-9876543210"


def tiny_tasks(n: int) -> list[Task]:
    return [
        Task(id=f"task-{i}", statement=f"Return the number {i}.",
             starter_code="class Solution:\n    def answer(self) -> int:\n        ",
             canonical_solution=f"class Solution:\n    def answer(self) -> int:\n        return {i}\n",
             test_code=f"def check(candidate):\n    assert candidate() == {i}\n",
             entry_point="Solution().answer", examples=f"assert Solution().answer() == {i}", source="test")
        for i in range(n)
    ]


def setup_workspace(tmp_path: Path, base_url: str, n_tasks: int, **llm_overrides) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["shots"] = 0
    params["llm"].update({"backend": "openai", "base_url": base_url, "model": "fake-model", "max_retries": 0,
                          "concurrency": 1, "timeout_s": 10.0, **llm_overrides})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    write_jsonl(tmp_path / "tasks.jsonl", tiny_tasks(n_tasks))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PERFREPRO_LLM_CACHE": str(tmp_path / "cache"),
           "OPENAI_API_KEY": SECRET, "PYTHONUNBUFFERED": "1"}
    return env


def command(tmp_path: Path) -> list[str]:
    return [sys.executable, str(REPO / "stages" / "generate.py"), "--params", str(tmp_path / "params.yaml"),
            "--tasks", str(tmp_path / "tasks.jsonl"), "--index", str(tmp_path / "no-index"),
            "--adapters", str(tmp_path / "no-adapters"), "--out", str(tmp_path / "out" / "completions.jsonl")]


def default_sigint() -> None:
    """In the child: SIGINT's default, whatever the parent shell did (a background `&` ignores it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def held_after(served: int, release: threading.Event):
    """A server script that answers the first `served` requests and holds the next until `release`:
    the stage is then exactly inside request `served` + 1, whatever the machine's speed."""
    def script(i, body):
        if i >= served:
            release.wait(60)
        return Reply()
    return script


def run_and_kill_after(tmp_path, env, server, served: int, sig: int, release: threading.Event) -> subprocess.Popen:
    process = subprocess.Popen(command(tmp_path), cwd=tmp_path, env=env, preexec_fn=default_sigint,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while server.count <= served and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert server.count == served + 1, f"the stage sent {server.count} requests, expected {served + 1}"
    process.send_signal(sig)
    if sig != signal.SIGKILL:
        time.sleep(0.3)  # the stage is waiting for the held answer when the signal lands
    release.set()
    process.wait(timeout=30)
    return process


def prompts(bodies) -> list[str]:
    return [body["messages"][-1]["content"] for body in bodies]


def test_killed_midway_then_rerun_sends_only_the_missing_requests(tmp_path):
    n = 8
    release = threading.Event()
    with FakeOpenAI(held_after(3, release)) as server:
        env = setup_workspace(tmp_path, server.base_url, n)
        killed = run_and_kill_after(tmp_path, env, server, served=3, sig=signal.SIGKILL, release=release)
        assert killed.returncode == -signal.SIGKILL
        assert not (tmp_path / "out" / "completions.jsonl").exists()
        first = prompts(server.requests)
        assert len(first) == 4  # 3 answered, the 4th held when the stage died
        cached = len(list((tmp_path / "cache").glob("??/*.json")))
        assert cached == 3

        rerun = subprocess.run(command(tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        second = prompts(server.requests[len(first):])
        output = (tmp_path / "out" / "completions.jsonl").read_bytes()

        # A third run sends nothing and writes the same bytes.
        third = subprocess.run(command(tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert third.returncode == 0, third.stderr
        assert server.count == len(first) + len(second)
        assert (tmp_path / "out" / "completions.jsonl").read_bytes() == output
        assert "8 requests, 8 from the cache (100%), 0 HTTP attempts, 0 failed" in third.stderr
    # Only what was not cached went out, and together the runs asked every task.
    assert len(second) == n - cached
    assert len(set(first) | set(second)) == n
    completions = read_jsonl(tmp_path / "out" / "completions.jsonl", Completion)
    assert [c.task_id for c in completions] == [f"task-{i}" for i in range(n)]
    assert all(c.status == "ok" and "class Solution" in c.code for c in completions)
    assert all(len(c.prompt_hash) == 64 and c.completion_tokens == 7 for c in completions)


def test_ctrl_c_exits_130_and_keeps_what_was_received(tmp_path):
    n = 6
    release = threading.Event()
    with FakeOpenAI(held_after(2, release)) as server:
        env = setup_workspace(tmp_path, server.base_url, n)
        interrupted = run_and_kill_after(tmp_path, env, server, served=2, sig=signal.SIGINT, release=release)
        assert interrupted.returncode == 130, interrupted.stderr.read().decode()
        sent = server.count
        assert sent == 3  # nothing new went out after Ctrl-C
        cached = len(list((tmp_path / "cache").glob("??/*.json")))
        assert cached == sent  # the request in flight at Ctrl-C was finished and cached too
        rerun = subprocess.run(command(tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert server.count == n


def test_api_key_never_reaches_disk_and_failures_over_threshold_exit_1(tmp_path):
    # Every other request fails for good with a 400 that echoes the key.
    def script(i, body):
        if i % 2:
            return Reply(status=400, body={"error": {"message": f"rejected for key {SECRET}"}})
        return Reply()

    with FakeOpenAI(script) as server:
        env = setup_workspace(tmp_path, server.base_url, 4, max_failure_fraction=0.25)
        result = subprocess.run(command(tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "50% of requests failed" in result.stderr and "HTTP 400" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert not (tmp_path / "out" / "completions.jsonl").exists()  # a failed stage leaves no outputs
    assert "nothing written" in result.stderr
    assert len(list((tmp_path / "cache").glob("??/*.json"))) == 2  # the two answers are kept
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_failures_under_threshold_exit_0(tmp_path):
    script = lambda i, body: Reply(status=400, body={"error": {"message": "no"}}) if i == 0 else Reply()
    with FakeOpenAI(script) as server:
        env = setup_workspace(tmp_path, server.base_url, 4, max_failure_fraction=0.5)
        result = subprocess.run(command(tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "out" / "completions.jsonl").read_text().splitlines()]
    assert [row["status"] for row in rows] == ["error", "ok", "ok", "ok"]


def test_recorded_backend_with_shots_is_refused_before_any_work(tmp_path):
    env = setup_workspace(tmp_path, "http://127.0.0.1:9/v1", 2)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["shots"] = 3
    params["llm"]["backend"] = "recorded"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = subprocess.run(command(tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "only works with shots: 0" in result.stderr


def test_same_answers_give_the_same_bytes_on_another_machine(tmp_path):
    # A teammate without our LLM cache (or DVC remote) asks again and gets the same answers, more
    # slowly: completions.jsonl must not change, or DVC would rerun every stage after generate.
    outputs = []
    for delay_s, cache in ((0.0, "cache-here"), (0.2, "cache-there")):
        with FakeOpenAI(lambda i, body: Reply(delay_s=delay_s)) as server:
            env = {**setup_workspace(tmp_path, server.base_url, 3), "PERFREPRO_LLM_CACHE": str(tmp_path / cache)}
            result = subprocess.run(command(tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            assert server.count == 3  # a cold cache: every request went out
        outputs.append((tmp_path / "out" / "completions.jsonl").read_bytes())
    assert outputs[0] == outputs[1]


def test_a_wrong_base_url_fails_before_retrieval_naming_it(tmp_path):
    with refused_url() as url:
        env = setup_workspace(tmp_path, url, 10, max_retries=3)
        params = yaml.safe_load((tmp_path / "params.yaml").read_text())
        params["shots"] = 1  # retrieval would load the encoder and fail on the missing index: it never runs
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        result = subprocess.run(command(tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("generate: error: ")]
    assert len(lines) == 1, result.stderr
    assert f"cannot reach the LLM endpoint {url}" in lines[0] and "check llm.base_url" in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_server_that_stops_answering_trips_the_breaker_and_keeps_the_answers(tmp_path):
    n = 10
    with FakeOpenAI(lambda i, body: Reply() if i < 3 else Reply(drop=True)) as server:
        env = setup_workspace(tmp_path, server.base_url, n, max_retries=1, max_failure_fraction=1.0)
        result = subprocess.run(command(tmp_path), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        sent = server.count
    assert result.returncode == 1
    assert f"stopped after 4 consecutive connection failures to {server.base_url}" in result.stderr
    assert sent == 3 + 4  # three answers, then 4 failed attempts (two requests of 2): no more
    assert not (tmp_path / "out" / "completions.jsonl").exists()
    assert len(list((tmp_path / "cache").glob("??/*.json"))) == 3


def test_recorded_backend_on_the_pie_track_stops_before_any_work(tmp_path):
    env = setup_workspace(tmp_path, "http://127.0.0.1:9/v1", 1)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["llm"]["backend"] = "recorded"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "pie" / "completions.jsonl"
    result = subprocess.run([sys.executable, str(REPO / "stages" / "optimize.py"), "--params", str(tmp_path / "params.yaml"),
                             "--tasks", str(tmp_path / "no-pie-tasks"), "--templates", str(REPO / "data/raw/pie/templates"),
                             "--out", str(out)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "recorded responses exist only for the efficiency tasks" in result.stderr
    assert "no-pie-tasks" not in result.stderr  # refused before reading the tasks
    assert not out.parent.exists()  # never a row of errors under a model's name


def test_optimize_tasks_refuses_the_recorded_backend():
    import pytest

    from perfrepro.config import load_params
    from perfrepro.generation.backends import BackendError
    from perfrepro.optimization.optimize import optimize_tasks

    llm = dataclasses.replace(load_params(REPO / "params.yaml").llm, backend="recorded")
    opened = []
    with pytest.raises(BackendError, match="recorded responses exist only for the efficiency tasks"):
        optimize_tasks([], {}, llm, lambda config: opened.append(config))
    assert opened == []
