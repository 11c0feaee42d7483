"""One OpenAI-compatible chat client for every backend that speaks the API (OpenAI, vLLM,
llama.cpp, TGI, Ollama), with a response cache, retries and bounded concurrency.

- Retries, preflight, circuit breaker: the `RetryPolicy` and `EndpointChecks` the client is given
  (perfrepro.generation.endpoint). A request that still fails after its retries becomes a failed
  `ChatResult` holding its error; the caller decides whether too many failed. An unreachable
  endpoint raises `EndpointError`, whose message names the URL and what to check.
- Cache: every successful response is written to the `ResponseCache` the moment it arrives; a
  cached request is never sent again.
- Secrets: the API key is only handed to the openai client. It is not part of the cache key or
  entry, and it is scrubbed from every error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from tqdm import tqdm

from perfrepro.generation.cache import ResponseCache, cache_key, request_fingerprint
from perfrepro.generation.endpoint import (CircuitBreaker, EndpointChecks, EndpointError, RetryPolicy, connection_cause,
                                           describe, retry_after, run_preflight, scrub_secret)

Message = Mapping[str, str]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class ChatRequest:
    """One chat request. `id` is the caller's name for it (a task id) and is not sent; `sample`
    numbers the answers of one task (the samples backend serves that task's sample of that number)."""

    id: str
    messages: tuple[Mapping[str, str], ...]
    sample: int = 0


@dataclass(frozen=True)
class ChatResult:
    """The answer to one `ChatRequest`: `text` when it succeeded, else `error`.

    `latency_s` is the wall time of the successful attempt when the response was first fetched
    (kept from the cache on a hit, so reruns write the same bytes); `attempts` counts HTTP
    attempts made in this run (0 on a cache hit).
    """

    id: str
    text: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False
    attempts: int = 0
    prompt_hash: str = ""
    cache_key: str = ""
    code: str | None = None  # the program itself, from a backend that answers with programs (samples): no extraction

    @property
    def ok(self) -> bool:
        return self.error is None


class ChatBackend(Protocol):
    """What the stages need from a model: a label for tables and a batch of answers."""

    model_label: str

    def complete_many(self, requests: Sequence[ChatRequest], desc: str = "requests") -> list[ChatResult]:
        ...


def prompt_hash(messages: Sequence[Message]) -> str:
    """sha256 (hex) of the messages alone, to compare prompts across models and runs."""
    blob = json.dumps([{"role": m["role"], "content": m["content"]} for m in messages],
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class _Retryable(Exception):
    def __init__(self, message: str, retry_after_s: float | None = None, connection: bool = False):
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.connection = connection  # no HTTP answer at all: counts toward the circuit breaker


class _Permanent(Exception):
    pass


@dataclass
class ClientStats:
    """Counters of one client's lifetime (thread-safe increments under `lock`)."""

    http_attempts: int = 0
    cache_hits: int = 0
    failures: int = 0
    succeeded: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    busy_s: float = 0.0  # wall time spent inside complete_many (rates are per busy second)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


class ChatClient:
    """Chat completions through the `openai` package against `base_url`.

    `endpoint` names the server for the cache key: pass a stable identity (e.g. the model file of
    a local server on a random port) rather than a URL that changes between runs. It defaults to
    `base_url`.

    `check` says, in connection errors, what the user should look at (default: "<config_key>.base_url
    and that the server is running"). `retry` says how often a failed request is sent again, and
    after how long; `checks` whether to run the preflight and when the circuit breaker trips.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        endpoint: str | None = None,
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        concurrency: int = 1,
        timeout_s: float = 120.0,
        cache: ResponseCache | None = None,
        progress: bool = True,
        config_key: str = "llm",
        check: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
        checks: EndpointChecks = EndpointChecks(),
    ):
        import openai  # imported here so that importing perfrepro.generation stays cheap

        if concurrency < 1:
            raise ValueError(f"concurrency: expected >= 1, got {concurrency}")
        self.model = model
        self.model_label = model
        self.base_url = base_url
        self.url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.config_key = config_key
        self.endpoint = endpoint or base_url or DEFAULT_BASE_URL
        self.check = check or (f"check {config_key}.base_url ({self.url}) and that the server is running "
                               f"and reachable from this machine")
        self.retry = retry
        self.checks = checks
        self.breaker = CircuitBreaker(checks.circuit_breaker, self.url, self.check)
        self._preflight_done = False
        self._marked = False
        self.decoding: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.cache = cache
        self.progress = progress
        self.stats = ClientStats()
        self._secret = api_key
        self._random = random.Random()
        # A local server needs no key, but the openai package insists on one.
        self._openai = openai.OpenAI(
            api_key=api_key or "sk-no-key-required",
            base_url=base_url,
            max_retries=0,
            timeout=timeout_s,
        )

    def __repr__(self) -> str:  # never show the key
        return f"ChatClient(model={self.model!r}, endpoint={self.endpoint!r}, concurrency={self.concurrency})"

    # -- fast failures -----------------------------------------------------------------------

    def preflight(self) -> None:
        """The endpoint check (`perfrepro.generation.endpoint.run_preflight`), once per client."""
        if self._preflight_done:
            return
        run_preflight(self._openai, url=self.url, model=self.model, timeout_s=self.checks.preflight_timeout_s,
                      secret=self._secret, check=self.check, config_key=self.config_key)
        self._preflight_done = True

    def check_endpoint(self) -> None:
        """The preflight, run early (before a stage's expensive preparation such as retrieval),
        when it is not yet known which requests the cache answers. An unreachable endpoint raises
        `EndpointError` at once, unless the cache holds answers from this endpoint and model (then
        every request may be cached: a warning, and `complete_many` checks again on a miss)."""
        if not self.checks.preflight:
            return
        try:
            self.preflight()
        except EndpointError as exc:
            marker = self._endpoint_marker()
            if marker is None or not marker.exists():
                raise
            log.warning("%s; the cache holds answers from this endpoint, so going on: a request it does not "
                        "answer will stop the run", exc)

    def _endpoint_marker(self):
        """A file in the cache saying it holds answers from (model, endpoint)."""
        if self.cache is None:
            return None
        digest = hashlib.sha256(f"{self.model}\n{self.endpoint}".encode("utf-8")).hexdigest()[:32]
        return self.cache.directory / "endpoints" / digest

    # -- one request -------------------------------------------------------------------------

    def key_for(self, messages: Sequence[Message]) -> str:
        return cache_key(request_fingerprint(self.model, self.endpoint, messages, self.decoding))

    def complete(self, request: ChatRequest) -> ChatResult:
        """Answer one request from the cache, or send it (with retries) and cache the answer."""
        key = self.key_for(request.messages)
        phash = prompt_hash(request.messages)
        if self.cache is not None:
            entry = self.cache.get(key)
            if entry is not None:
                self.stats.add(cache_hits=1, succeeded=1)
                return ChatResult(
                    id=request.id,
                    text=entry["text"],
                    prompt_tokens=int(entry.get("prompt_tokens", 0)),
                    completion_tokens=int(entry.get("completion_tokens", 0)),
                    latency_s=float(entry.get("latency_s", 0.0)),
                    cached=True,
                    attempts=0,
                    prompt_hash=phash,
                    cache_key=key,
                )
        attempts = 0
        last_error = "no attempt made"
        while True:
            if self.breaker.tripped is not None:
                raise self.breaker.tripped
            attempts += 1
            started = time.perf_counter()
            try:
                text, prompt_tokens, completion_tokens = self._send(request.messages)
            except _Retryable as exc:
                last_error = str(exc)
                self.breaker.record(exc.connection, last_error)
                if attempts > self.retry.max_retries:
                    break
                if self.breaker.stop.wait(self.retry.delay(attempts, exc.retry_after_s, self._random)):
                    raise self.breaker.tripped
                continue
            except _Permanent as exc:
                last_error = str(exc)
                self.breaker.record(False)
                break
            self.breaker.record(False)
            latency = time.perf_counter() - started
            if self.cache is not None:
                self.cache.put(key, {
                    "model": self.model,
                    "endpoint": self.endpoint,
                    "messages": [dict(m) for m in request.messages],
                    "params": self.decoding,
                    "text": text,
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "latency_s": round(latency, 4),
                })
                if not self._marked:
                    marker = self._endpoint_marker()
                    marker.parent.mkdir(parents=True, exist_ok=True)
                    marker.touch()
                    self._marked = True
            self.stats.add(succeeded=1, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
            return ChatResult(
                id=request.id, text=text, prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens, latency_s=round(latency, 4),
                attempts=attempts, prompt_hash=phash, cache_key=key,
            )
        self.stats.add(failures=1)
        error = scrub_secret(f"{last_error} (after {attempts} attempt{'s' if attempts > 1 else ''})", [self._secret])
        return ChatResult(id=request.id, text=None, error=error, attempts=attempts, prompt_hash=phash, cache_key=key)

    def _send(self, messages: Sequence[Message]) -> tuple[str, int, int]:
        """One HTTP attempt: (text, prompt tokens, completion tokens), or _Retryable/_Permanent."""
        import openai

        self.stats.add(http_attempts=1)
        try:
            response = self._openai.chat.completions.create(
                model=self.model,
                messages=[{"role": m["role"], "content": m["content"]} for m in messages],
                **{k: v for k, v in self.decoding.items() if v is not None},
            )
        except openai.APITimeoutError as exc:
            raise _Retryable(f"timeout after {self.timeout_s:g} s ({describe(exc, self._secret)})") from None
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection error to {self.url} ({connection_cause(exc, self._secret)})",
                             connection=True) from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            message = f"HTTP {status} from {self.endpoint}: {describe(exc, self._secret)}"
            if status == 429 or status >= 500 or status == 408:
                raise _Retryable(message, retry_after(exc)) from None
            raise _Permanent(message) from None
        except Exception as exc:  # an unparseable body: the server answered, but not with JSON
            raise _Permanent(f"malformed response from {self.endpoint}: {describe(exc, self._secret)}") from None
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list):
            raise _Permanent(f"malformed response from {self.endpoint}: not a chat completion object")
        if not choices:
            raise _Permanent(f"response from {self.endpoint} has no choices")
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        if text is None:
            raise _Permanent(f"response from {self.endpoint} has no message content")
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        return text, prompt_tokens, completion_tokens

    # -- many requests -----------------------------------------------------------------------

    def complete_many(self, requests: Sequence[ChatRequest], desc: str = "requests") -> list[ChatResult]:
        """Answer `requests` in order, at most `concurrency` in flight, with a progress bar.

        On Ctrl-C, queued requests are cancelled; responses already received are in the cache.
        When a request misses the cache, the endpoint is checked first (`preflight`); when the
        circuit breaker trips, `EndpointError` is raised.
        """
        if self.checks.preflight and not self._preflight_done and any(
            self.cache is None or self.key_for(r.messages) not in self.cache for r in requests
        ):
            self.preflight()
        results: list[ChatResult | None] = [None] * len(requests)
        bar = tqdm(total=len(requests), desc=desc, unit="req", file=sys.stderr,
                   disable=not self.progress, dynamic_ncols=True)
        cached = failed = 0
        started = time.perf_counter()
        executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="llm")
        try:
            pending: dict[Future, int] = {executor.submit(self.complete, r): i for i, r in enumerate(requests)}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    result = future.result()
                    results[index] = result
                    cached += result.cached
                    failed += not result.ok
                    bar.set_postfix(cached=cached, failed=failed, refresh=False)
                    bar.update(1)
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            bar.close()
            self.stats.add(busy_s=time.perf_counter() - started)
        executor.shutdown(wait=True)
        return [r for r in results if r is not None]

