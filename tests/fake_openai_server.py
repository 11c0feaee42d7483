"""A fake OpenAI-compatible chat server on loopback for the generation tests.

`FakeOpenAI` answers POST /v1/chat/completions from a script: `script(n, body)` returns a `Reply`
for the n-th request (0-based). It records every request body and Authorization header and the
highest number of requests in flight at once. GET /v1/models answers `models()` (default: a list
holding "fake-model"), counted in `gets`. `Reply(drop=True)` closes the connection without an
answer (the client sees a connection error).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Reply:
    status: int = 200
    body: object = None  # dict -> JSON; bytes -> sent as is; None -> a chat completion echoing the prompt
    delay_s: float = 0.0
    headers: dict = field(default_factory=dict)
    drop: bool = False  # close the connection without answering


def chat_completion(text: str, prompt_tokens: int = 11, completion_tokens: int = 7) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def solution_answer(body: dict) -> str:
    """A deterministic answer that defines class Solution and names the prompt it answers."""
    last = body["messages"][-1]["content"]
    return f"Sure.\n```python\nclass Solution:\n    def answer(self):\n        return {len(last)}\n```\n"


class FakeOpenAI:
    def __init__(self, script: Callable[[int, dict], Reply] | None = None, models: Callable[[], Reply] | None = None):
        self.script = script or (lambda n, body: Reply())
        self.models = models or (lambda: Reply(body={"object": "list", "data": [{"id": "fake-model"}]}))
        self.gets = 0
        self.requests: list[dict] = []
        self.authorization: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, payload: bytes, headers: dict) -> None:
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                with fake.lock:
                    fake.gets += 1
                reply = fake.models()
                if reply.drop:
                    self.close_connection = True
                    return
                body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self._send(reply.status, body, dict(reply.headers))

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with fake.lock:
                    n = len(fake.requests)
                    fake.requests.append(body)
                    fake.authorization.append(self.headers.get("Authorization"))
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    reply = fake.script(n, body)
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    if reply.drop:
                        self.close_connection = True
                        return
                    if reply.body is None:
                        payload = json.dumps(chat_completion(solution_answer(body))).encode()
                    elif isinstance(reply.body, bytes):
                        payload = reply.body
                    else:
                        payload = json.dumps(reply.body).encode()
                    self._send(reply.status, payload, dict(reply.headers))
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def refused_url(port: int = 0):
    """A loopback URL whose connections are refused for as long as the block runs.

    The port is held by a bound socket that never listens: nothing else (another pytest-xdist
    worker's server, say) can take it meanwhile, so "nothing answers there" cannot turn false.
    `port`: one a stopped FakeOpenAI used, to keep its URL refused; 0 = any free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the old server's TIME_WAIT
        sock.bind(("127.0.0.1", port))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


# ---- fine-tuning endpoints (/v1/files, /v1/fine_tuning/jobs) ----

def fine_tuning_job(job_id: str, body: dict, status: str, fine_tuned_model: str | None = None,
                    error: dict | None = None) -> dict:
    return {
        "id": job_id, "object": "fine_tuning.job", "created_at": 1700000000, "finished_at": None,
        "model": body.get("model"), "fine_tuned_model": fine_tuned_model, "organization_id": "org-fake",
        "result_files": [], "status": status, "training_file": body.get("training_file"),
        "validation_file": body.get("validation_file"), "hyperparameters": body.get("hyperparameters") or {},
        "trained_tokens": 1234 if status == "succeeded" else None, "seed": body.get("seed", 0), "error": error,
    }


class FakeFineTuning:
    """A fake of OpenAI's fine-tuning API on loopback.

    POST /v1/files stores the upload (`uploads`: filename, purpose, bytes); POST /v1/fine_tuning/jobs
    creates a job (`created`: request bodies); GET /v1/fine_tuning/jobs/<id> walks the job through
    `statuses` (one per poll, the last one repeats); `poll_reply(n)` may answer the n-th poll instead
    (e.g. a 429); `final_error` is the error of a job that ends "failed". GET .../events lists events.
    """

    def __init__(self, statuses=("queued", "running", "succeeded"), poll_reply=None, final_error=None,
                 fine_tuned_model: str = "ft:gpt-4o-mini-2024-07-18:fake::abc123"):
        self.statuses = list(statuses)
        self.poll_reply = poll_reply or (lambda n: None)
        self.final_error = final_error
        self.fine_tuned_model = fine_tuned_model
        self.uploads: list[dict] = []
        self.created: list[dict] = []
        self.polls = 0
        self.event_requests = 0
        self.authorization: list[str | None] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, body, headers: dict | None = None) -> None:
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake.lock:
                    fake.authorization.append(self.headers.get("Authorization"))
                if self.path.rstrip("/").endswith("/files"):
                    filename = re.search(rb'filename="([^"]+)"', raw)
                    purpose = re.search(rb'name="purpose"\r\n\r\n([^\r]+)', raw)
                    with fake.lock:
                        file_id = f"file-{len(fake.uploads)}"
                        fake.uploads.append({"id": file_id, "filename": filename.group(1).decode() if filename else None,
                                             "purpose": purpose.group(1).decode() if purpose else None, "bytes": raw})
                    self._send(200, {"id": file_id, "object": "file", "bytes": len(raw), "created_at": 1700000000,
                                     "filename": filename.group(1).decode() if filename else "", "purpose": "fine-tune",
                                     "status": "processed"})
                elif self.path.rstrip("/").endswith("/fine_tuning/jobs"):
                    body = json.loads(raw or b"{}")
                    with fake.lock:
                        job_id = f"ftjob-{len(fake.created)}"
                        fake.created.append(body)
                    self._send(200, fine_tuning_job(job_id, body, "validating_files"))
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_GET(self):
                match = re.search(r"/fine_tuning/jobs/([^/?]+)(/events)?", self.path)
                if not match:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                job_id, events = match.group(1), match.group(2)
                index = int(job_id.split("-")[-1])
                body = fake.created[index] if index < len(fake.created) else {}
                if events:
                    with fake.lock:
                        fake.event_requests += 1
                    data = [{"id": f"ftevent-{i}", "object": "fine_tuning.job.event", "created_at": 1700000000 + i,
                             "level": "info", "message": message, "type": "message"}
                            for i, message in enumerate(["Job started", "Step 1/3: training loss=1.5", "Job finished"])]
                    self._send(200, {"object": "list", "data": data, "has_more": False})
                    return
                with fake.lock:
                    n = fake.polls
                    fake.polls += 1
                reply = fake.poll_reply(n)
                if reply is not None:
                    self._send(reply.status, reply.body if reply.body is not None else {"error": {"message": "slow down"}},
                               dict(reply.headers))
                    return
                served = sum(1 for k in range(n) if fake.poll_reply(k) is None)
                status = fake.statuses[min(served, len(fake.statuses) - 1)]
                model = fake.fine_tuned_model if status == "succeeded" else None
                error = fake.final_error if status == "failed" else None
                self._send(200, fine_tuning_job(job_id, body, status, model, error))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> "FakeFineTuning":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
