"""A fake OpenAI-compatible chat server on loopback for the generation tests.

`FakeOpenAI` answers POST /v1/chat/completions from a script: `script(n, body)` returns a `Reply`
for the n-th request (0-based). It records every request body and Authorization header and the
highest number of requests in flight at once.
"""

from __future__ import annotations

import json
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
    def __init__(self, script: Callable[[int, dict], Reply] | None = None):
        self.script = script or (lambda n, body: Reply())
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
                self._send(200, json.dumps({"object": "list", "data": [{"id": "fake-model"}]}).encode(), {})

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
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

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
