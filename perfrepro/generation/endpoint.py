"""What keeps a chat client from hanging on a bad endpoint, each a small object the client is given:

- `RetryPolicy`: exponential backoff with equal jitter on 429, 5xx, timeouts and connection errors,
  at most `max_retries` times after the first attempt (the openai package's own retries are off,
  so the count is ours); a server's Retry-After wins when it is longer.
- `EndpointChecks`: the preflight (``GET /models`` with a short timeout before the first request
  that misses the cache: does the endpoint answer, does it accept the key?) and the threshold of
  the `CircuitBreaker`, which stops everything after that many consecutive connection failures.
  Both raise `EndpointError`, whose message names the URL and what to check.
- Secrets: every error text goes through `scrub_secret`.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

log = logging.getLogger(__name__)

# Where an API key could hide in an error text even when it is not ours verbatim.
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\"]+")
_OPENAI_KEY = re.compile(r"sk-[A-Za-z0-9_\-]{8,}")
# openai sometimes echoes a key prefix/suffix in 401 messages ("Incorrect API key provided: sk-ab***yz").
_KEY_HINT = re.compile(r"(?i)(api key provided:\s*)\S+")


class BackendError(ValueError):
    """A backend that cannot serve this configuration; the message says what to change."""


class EndpointError(BackendError):
    """The endpoint cannot be reached (preflight, or the circuit breaker tripped); the message
    names the URL and what to check. Responses received before it are in the cache."""


def scrub_secret(text: str, secrets: Sequence[str | None] = ()) -> str:
    """`text` with every secret and anything shaped like a bearer token or OpenAI key masked."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _BEARER.sub(r"\1***", text)
    text = _KEY_HINT.sub(r"\1***", text)
    return _OPENAI_KEY.sub("sk-***", text)


def connection_cause(exc: BaseException, secret: str | None) -> str:
    """The innermost cause of an openai connection error ("[Errno 111] Connection refused"), which
    the openai package hides behind "Connection error."."""
    inner: BaseException = exc
    seen = {id(inner)}
    while (nxt := inner.__cause__ or inner.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        inner = nxt
    text = str(inner).strip() or type(inner).__name__
    return scrub_secret(text[:300], [secret])


def describe(exc: BaseException, secret: str | None) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return scrub_secret(text[:500], [secret])


def retry_after(exc: Any) -> float | None:
    """A server's Retry-After header (s), when it sent one."""
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before sending a failed request again."""

    max_retries: int = 3  # attempts after the first
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries: expected >= 0, got {self.max_retries}")

    def delay(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1, 2, ...): exponential backoff
        with equal jitter; a server's Retry-After wins when it is longer."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.backoff_max_s))
        return delay


@dataclass(frozen=True)
class EndpointChecks:
    """`preflight`: GET <url>/models (two attempts of `preflight_timeout_s`) before the first
    request that misses the cache; `circuit_breaker`: the consecutive connection failures (no HTTP
    answer: refused, reset, unknown host) that end the run, 0 = never."""

    preflight: bool = True
    preflight_timeout_s: float = 3.0
    circuit_breaker: int = 4


class CircuitBreaker:
    """Counts consecutive connection failures across threads; at `threshold` it trips: `tripped`
    holds the `EndpointError` every later call raises, and `stop` wakes every backoff sleep."""

    def __init__(self, threshold: int, url: str, check: str):
        self.threshold = threshold
        self.url = url
        self.check = check
        self.tripped: EndpointError | None = None
        self.stop = threading.Event()
        self._failures = 0
        self._lock = threading.Lock()

    def record(self, failed: bool, cause: str = "") -> None:
        """Count a connection failure (or reset the count on any HTTP answer); raise once tripped."""
        with self._lock:
            if not failed:
                self._failures = 0
                return
            self._failures += 1
            count = self._failures
            if self.threshold and count >= self.threshold and self.tripped is None:
                self.tripped = EndpointError(
                    f"stopped after {count} consecutive connection failures to {self.url} (last: {cause}); "
                    f"{self.check}. Responses received so far are cached: a rerun sends only the rest"
                )
                self.stop.set()
            if self.tripped is not None:
                raise self.tripped


def run_preflight(openai_client: Any, *, url: str, model: str, timeout_s: float, secret: str | None, check: str,
                  config_key: str) -> None:
    """GET <url>/models (two attempts of `timeout_s`) through `openai_client`: raise `EndpointError`
    when the endpoint does not answer, or rejects the key; warn when it answers but has no such
    route or does not list `model`."""
    import openai

    probe = openai_client.with_options(timeout=timeout_s, max_retries=0)
    started = time.perf_counter()
    error: str | None = None
    for attempt in range(2):
        try:
            response = probe.models.with_raw_response.list()
        except openai.APITimeoutError:
            error = f"no answer within {timeout_s:g} s"
        except openai.APIConnectionError as exc:
            error = connection_cause(exc, secret)
        except openai.APIStatusError as exc:
            _preflight_status(exc.status_code, describe(exc, secret), url, config_key)
            return
        else:
            _check_listed_model(response, url, model)
            return
        if attempt == 0:
            time.sleep(0.5)
    raise EndpointError(
        f"cannot reach the LLM endpoint {url}: GET {url}/models failed twice in "
        f"{time.perf_counter() - started:.1f} s ({error}); {check}"
    )


def _preflight_status(status: int, detail: str, url: str, config_key: str) -> None:
    if status in (401, 403):
        raise EndpointError(
            f"the LLM endpoint {url} rejected the API key (HTTP {status} on GET /models: {detail}); "
            f"check the key in the environment variable that {config_key}.api_key_env names"
        )
    if status == 404:
        log.warning("%s/models answered HTTP 404: the server is up but has no /models route "
                    "(is /v1 missing from the base_url?); trying the requests anyway", url)
    else:
        log.warning("%s/models answered HTTP %d (%s); trying the requests anyway", url, status, detail)


def _check_listed_model(response: Any, url: str, model: str) -> None:
    try:
        listed = [m.get("id") for m in json.loads(response.text).get("data", [])]
    except (ValueError, AttributeError, TypeError):
        return  # an answer that is not an OpenAI model list: reachable is all we wanted
    if listed and model not in listed:
        shown = ", ".join(map(str, listed[:5])) + (", ..." if len(listed) > 5 else "")
        log.warning("%s does not list the model %r (it lists %s); the requests may fail", url, model, shown)
