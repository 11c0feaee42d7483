"""One OpenAI-compatible chat client for every backend that speaks the API (OpenAI, vLLM,
llama.cpp, TGI, Ollama), with a response cache, retries and bounded concurrency.

- Retries: exponential backoff with jitter on 429, 5xx, timeouts and connection errors, at most
  `max_retries` times after the first attempt (the openai package's own retries are off, so the
  count is ours). A request that still fails becomes a failed `ChatResult` holding its error;
  the caller decides whether too many failed.
- Cache: every successful response is written to the `ResponseCache` the moment it arrives; a
  cached request is never sent again.
- Fast failures: before the first request that misses the cache, a preflight ``GET /models``
  with a short timeout checks that the endpoint answers (and accepts the key); during the run, a
  circuit breaker stops everything after `circuit_breaker` consecutive connection failures. Both
  raise `EndpointError`, whose message names the URL and what to check.
- Secrets: the API key is only handed to the openai client. It is not part of the cache key or
  entry, and it is scrubbed from every error message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from tqdm import tqdm

from perfrepro.generation.cache import ResponseCache, cache_key, request_fingerprint

Message = Mapping[str, str]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# Where an API key could hide in an error text even when it is not ours verbatim.
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\"]+")
_OPENAI_KEY = re.compile(r"sk-[A-Za-z0-9_\-]{8,}")
# openai sometimes echoes a key prefix/suffix in 401 messages ("Incorrect API key provided: sk-ab***yz").
_KEY_HINT = re.compile(r"(?i)(api key provided:\s*)\S+")


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


def scrub_secret(text: str, secrets: Sequence[str | None] = ()) -> str:
    """`text` with every secret and anything shaped like a bearer token or OpenAI key masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _BEARER.sub(r"\1***", text)
    text = _KEY_HINT.sub(r"\1***", text)
    return _OPENAI_KEY.sub("sk-***", text)


class BackendError(ValueError):
    """A backend that cannot serve this configuration; the message says what to change."""


class EndpointError(BackendError):
    """The endpoint cannot be reached (preflight, or the circuit breaker tripped); the message
    names the URL and what to check. Responses received before it are in the cache."""


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
    and that the server is running"). `preflight_timeout_s` bounds each of the two preflight
    attempts; `circuit_breaker` is the number of consecutive connection failures (no HTTP answer:
    refused, reset, unknown host) that ends the run, 0 = never.
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
        max_retries: int = 3,
        cache: ResponseCache | None = None,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 30.0,
        progress: bool = True,
        config_key: str = "llm",
        check: str | None = None,
        preflight: bool = True,
        preflight_timeout_s: float = 3.0,
        circuit_breaker: int = 4,
    ):
        import openai  # imported here so that importing perfrepro.generation stays cheap

        if concurrency < 1:
            raise ValueError(f"concurrency: expected >= 1, got {concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries: expected >= 0, got {max_retries}")
        self.model = model
        self.model_label = model
        self.base_url = base_url
        self.url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.config_key = config_key
        self.endpoint = endpoint or base_url or DEFAULT_BASE_URL
        self.check = check or (f"check {config_key}.base_url ({self.url}) and that the server is running "
                               f"and reachable from this machine")
        self.preflight_enabled = preflight
        self.preflight_timeout_s = preflight_timeout_s
        self.circuit_breaker = circuit_breaker
        self._preflight_done = False
        self._marked = False
        self._consecutive_connection_failures = 0
        self._breaker_lock = threading.Lock()
        self._tripped: EndpointError | None = None
        self._stop = threading.Event()  # set when the breaker trips: wakes every backoff sleep
        self.decoding: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.cache = cache
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
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
        """GET <url>/models (two attempts of `preflight_timeout_s`): raise `EndpointError` when the
        endpoint does not answer, or rejects the key; warn when it answers but has no such route
        or does not list the model. Runs once per client."""
        import openai

        if self._preflight_done:
            return
        probe = self._openai.with_options(timeout=self.preflight_timeout_s, max_retries=0)
        started = time.perf_counter()
        error: str | None = None
        for attempt in range(2):
            try:
                response = probe.models.with_raw_response.list()
            except openai.APITimeoutError:
                error = f"no answer within {self.preflight_timeout_s:g} s"
            except openai.APIConnectionError as exc:
                error = _connection_cause(exc, self._secret)
            except openai.APIStatusError as exc:
                self._preflight_status(exc.status_code, _describe(exc, self._secret))
                return
            else:
                self._preflight_done = True
                self._check_listed_model(response)
                return
            if attempt == 0:
                time.sleep(0.5)
        raise EndpointError(
            f"cannot reach the LLM endpoint {self.url}: GET {self.url}/models failed twice in "
            f"{time.perf_counter() - started:.1f} s ({error}); {self.check}"
        )

    def check_endpoint(self) -> None:
        """The preflight, run early (before a stage's expensive preparation such as retrieval),
        when it is not yet known which requests the cache answers. An unreachable endpoint raises
        `EndpointError` at once, unless the cache holds answers from this endpoint and model (then
        every request may be cached: a warning, and `complete_many` checks again on a miss)."""
        if not self.preflight_enabled:
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

    def _preflight_status(self, status: int, detail: str) -> None:
        if status in (401, 403):
            raise EndpointError(
                f"the LLM endpoint {self.url} rejected the API key (HTTP {status} on GET /models: {detail}); "
                f"check the key in the environment variable that {self.config_key}.api_key_env names"
            )
        self._preflight_done = True
        if status == 404:
            log.warning("%s/models answered HTTP 404: the server is up but has no /models route "
                        "(is /v1 missing from the base_url?); trying the requests anyway", self.url)
        else:
            log.warning("%s/models answered HTTP %d (%s); trying the requests anyway", self.url, status, detail)

    def _check_listed_model(self, response: Any) -> None:
        try:
            listed = [m.get("id") for m in json.loads(response.text).get("data", [])]
        except (ValueError, AttributeError, TypeError):
            return  # an answer that is not an OpenAI model list: reachable is all we wanted
        if listed and self.model not in listed:
            shown = ", ".join(map(str, listed[:5])) + (", ..." if len(listed) > 5 else "")
            log.warning("%s does not list the model %r (it lists %s); the requests may fail", self.url, self.model, shown)

    def _record_connection(self, failed: bool, cause: str = "") -> None:
        """Count consecutive connection failures; trip the breaker at `circuit_breaker`."""
        with self._breaker_lock:
            if not failed:
                self._consecutive_connection_failures = 0
                return
            self._consecutive_connection_failures += 1
            count = self._consecutive_connection_failures
            if self.circuit_breaker and count >= self.circuit_breaker and self._tripped is None:
                self._tripped = EndpointError(
                    f"stopped after {count} consecutive connection failures to {self.url} (last: {cause}); "
                    f"{self.check}. Responses received so far are cached: a rerun sends only the rest"
                )
                self._stop.set()
            if self._tripped is not None:
                raise self._tripped

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
            if self._tripped is not None:
                raise self._tripped
            attempts += 1
            started = time.perf_counter()
            try:
                text, prompt_tokens, completion_tokens = self._send(request.messages)
            except _Retryable as exc:
                last_error = str(exc)
                self._record_connection(exc.connection, last_error)
                if attempts > self.max_retries:
                    break
                if self._stop.wait(self._backoff(attempts, exc.retry_after_s)):
                    raise self._tripped
                continue
            except _Permanent as exc:
                last_error = str(exc)
                self._record_connection(False)
                break
            self._record_connection(False)
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

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        """Exponential backoff with equal jitter; a server's Retry-After wins when it is longer."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        delay = ceiling / 2 + self._random.uniform(0, ceiling / 2)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.backoff_max_s))
        return delay

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
            raise _Retryable(f"timeout after {self.timeout_s:g} s ({_describe(exc, self._secret)})") from None
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection error to {self.url} ({_connection_cause(exc, self._secret)})",
                             connection=True) from None
        except openai.APIStatusError as exc:
            status = exc.status_code
            message = f"HTTP {status} from {self.endpoint}: {_describe(exc, self._secret)}"
            if status == 429 or status >= 500 or status == 408:
                raise _Retryable(message, _retry_after(exc)) from None
            raise _Permanent(message) from None
        except Exception as exc:  # an unparseable body: the server answered, but not with JSON
            raise _Permanent(f"malformed response from {self.endpoint}: {_describe(exc, self._secret)}") from None
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
        if self.preflight_enabled and not self._preflight_done and any(
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


def _connection_cause(exc: BaseException, secret: str | None) -> str:
    """The innermost cause of an openai connection error ("[Errno 111] Connection refused"), which
    the openai package hides behind "Connection error."."""
    inner: BaseException = exc
    seen = {id(inner)}
    while (nxt := inner.__cause__ or inner.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        inner = nxt
    text = str(inner).strip() or type(inner).__name__
    return scrub_secret(text[:300], [secret])


def _describe(exc: BaseException, secret: str | None) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return scrub_secret(text[:500], [secret])


def _retry_after(exc: Any) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None
