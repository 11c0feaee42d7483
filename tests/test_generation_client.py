"""ChatClient against a fake OpenAI-compatible server: retries, timeouts, malformed answers,
the response cache, the concurrency bound, the API key's absence from disk, the preflight and the
circuit breaker (connection failures: a closed loopback port, or a server that hangs up)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAI, Reply, chat_completion, refused_url

from perfrepro.generation.cache import CACHE_ENV_VAR, ResponseCache, resolve_cache_dir
from perfrepro.generation.client import ChatClient, ChatRequest
from perfrepro.generation.endpoint import (BackendError, CircuitBreaker, EndpointChecks, EndpointError, RetryPolicy,
                                           scrub_secret)

SECRET = "sk-test-DO-NOT-LEAK-0123456789abcdef"


def requests(n: int) -> list[ChatRequest]:
    return [
        ChatRequest(id=f"task-{i}", messages=({"role": "system", "content": "You are a code developer."},
                                              {"role": "user", "content": f"write program number {i}"}))
        for i in range(n)
    ]


def client(server: FakeOpenAI, cache_dir: Path | None = None, max_retries: int = 2, backoff_base_s: float = 0.01,
           backoff_max_s: float = 0.05, circuit_breaker: int = 4, **overrides) -> ChatClient:
    options = dict(model="fake-model", base_url=server.base_url, api_key=SECRET, temperature=0.0,
                   max_tokens=32, seed=1, concurrency=1, timeout_s=5.0,
                   cache=ResponseCache(cache_dir) if cache_dir else None, progress=False,
                   retry=RetryPolicy(max_retries, backoff_base_s, backoff_max_s),
                   checks=EndpointChecks(circuit_breaker=circuit_breaker))
    options.update(overrides)
    return ChatClient(**options)


def test_retries_a_429_then_succeeds(tmp_path):
    script = lambda n, body: Reply(status=429, body={"error": {"message": "slow down"}}) if n == 0 else Reply()
    with FakeOpenAI(script) as server:
        result = client(server, tmp_path).complete(requests(1)[0])
    assert result.ok and "class Solution" in result.text
    assert result.attempts == 2 and server.count == 2
    assert (result.prompt_tokens, result.completion_tokens) == (11, 7)
    assert server.authorization[0] == f"Bearer {SECRET}"  # the key is used, just never stored


def test_gives_up_after_max_retries_on_5xx_and_records_the_error(tmp_path):
    script = lambda n, body: Reply(status=503, body={"error": {"message": "overloaded"}})
    with FakeOpenAI(script) as server:
        c = client(server, tmp_path, max_retries=2)
        result = c.complete(requests(1)[0])
    assert not result.ok and result.text is None
    assert server.count == 3  # 1 attempt + 2 retries
    assert "HTTP 503" in result.error and "after 3 attempts" in result.error
    assert len(ResponseCache(tmp_path)) == 0  # failures are not cached, a rerun tries again


def test_a_timeout_is_retried(tmp_path):
    script = lambda n, body: Reply(delay_s=3.0) if n == 0 else Reply()
    with FakeOpenAI(script) as server:
        result = client(server, tmp_path, timeout_s=0.5).complete(requests(1)[0])
    assert result.ok and result.attempts == 2


def test_connection_refused_is_a_failed_result_not_an_exception(tmp_path):
    with refused_url() as base_url:
        c = ChatClient(model="m", base_url=base_url, api_key=SECRET, retry=RetryPolicy(1, backoff_base_s=0.01),
                       timeout_s=2.0, cache=ResponseCache(tmp_path), progress=False)
        result = c.complete(requests(1)[0])
    assert not result.ok and "connection error" in result.error and result.attempts == 2


def test_malformed_json_is_a_failure_without_retry(tmp_path):
    script = lambda n, body: Reply(body=b'{"choices": [ this is not json')
    with FakeOpenAI(script) as server:
        result = client(server, tmp_path).complete(requests(1)[0])
        assert server.count == 1
    assert not result.ok and "malformed response" in result.error


def test_empty_choices_is_a_failure(tmp_path):
    body = {**chat_completion("x"), "choices": []}
    with FakeOpenAI(lambda n, b: Reply(body=body)) as server:
        result = client(server, tmp_path).complete(requests(1)[0])
    assert not result.ok and "no choices" in result.error


def test_a_second_run_is_served_from_the_cache_with_zero_requests(tmp_path):
    with FakeOpenAI() as server:
        first = client(server, tmp_path).complete_many(requests(4))
        assert server.count == 4
        second_client = client(server, tmp_path)
        second = second_client.complete_many(requests(4))
        assert server.count == 4  # nothing sent
    assert [r.text for r in first] == [r.text for r in second]
    assert all(r.cached for r in second) and not any(r.cached for r in first)
    assert [r.latency_s for r in first] == [r.latency_s for r in second]  # same bytes on rerun
    assert second_client.stats.cache_hits == 4 and second_client.stats.http_attempts == 0


def test_cache_key_covers_model_endpoint_and_decoding(tmp_path):
    with FakeOpenAI() as server:
        base = client(server, tmp_path)
        messages = requests(1)[0].messages
        keys = {
            base.key_for(messages),
            client(server, tmp_path, model="other").key_for(messages),
            client(server, tmp_path, temperature=0.7).key_for(messages),
            client(server, tmp_path, max_tokens=64).key_for(messages),
            client(server, tmp_path, endpoint="elsewhere").key_for(messages),
        }
        assert len(keys) == 5
        # the key is not part of the identity: a new key reuses the cache
        assert client(server, tmp_path, api_key="sk-another-key-000000").key_for(messages) == base.key_for(messages)


def test_concurrency_is_bounded(tmp_path):
    with FakeOpenAI(lambda n, body: Reply(delay_s=0.2)) as server:
        results = client(server, tmp_path, concurrency=2).complete_many(requests(6))
    assert all(r.ok for r in results)
    assert [r.id for r in results] == [f"task-{i}" for i in range(6)]  # input order kept
    assert server.max_in_flight == 2


def test_the_api_key_never_reaches_disk_or_errors(tmp_path):
    # The server echoes the key back in a 401, as some proxies do.
    script = lambda n, body: (Reply(status=401, body={"error": {"message": f"bad key {SECRET}"}}) if n == 0 else Reply())
    with FakeOpenAI(script) as server:
        c = client(server, tmp_path)
        failed = c.complete(requests(1)[0])
        ok = c.complete_many(requests(3))
    assert not failed.ok and SECRET not in failed.error and "***" in failed.error
    assert all(r.ok for r in ok)
    assert SECRET not in repr(c)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 4  # three answers and the (empty) marker of the endpoint they came from
    for path in files:
        assert SECRET not in path.read_text(encoding="utf-8")
        assert "sk-test" not in path.read_text(encoding="utf-8")


def test_cache_entry_is_readable_json_with_the_request(tmp_path):
    with FakeOpenAI() as server:
        result = client(server, tmp_path).complete(requests(1)[0])
    entry = json.loads(ResponseCache(tmp_path).path(result.cache_key).read_text())
    assert entry["model"] == "fake-model" and entry["text"] == result.text
    assert entry["params"] == {"max_tokens": 32, "seed": 1, "temperature": 0.0}


def test_a_torn_cache_file_is_a_miss(tmp_path):
    cache = ResponseCache(tmp_path)
    path = cache.path("ab" + "0" * 62)
    path.parent.mkdir(parents=True)
    path.write_text('{"key": "ab00')
    assert cache.get("ab" + "0" * 62) is None


def test_cache_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    assert resolve_cache_dir("~/x") == Path.home() / "x"
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    assert resolve_cache_dir("~/x") == tmp_path


def test_scrub_secret_masks_keys_and_bearer_tokens():
    text = f"Authorization: Bearer abc.def key={SECRET} Incorrect API key provided: sk-ab***yz."
    cleaned = scrub_secret(text, [SECRET])
    assert SECRET not in cleaned and "abc.def" not in cleaned and "sk-ab" not in cleaned


# -- fast failures: preflight and circuit breaker ----------------------------------------------


def test_preflight_on_a_closed_port_raises_naming_the_url_and_sends_nothing(tmp_path):
    with refused_url() as url:
        c = ChatClient(model="m", base_url=url, api_key=SECRET, retry=RetryPolicy(3), cache=ResponseCache(tmp_path),
                       progress=False, config_key="llm")
        with pytest.raises(EndpointError) as info:
            c.complete_many(requests(5))
    message = str(info.value)
    assert f"cannot reach the LLM endpoint {url}" in message and f"GET {url}/models" in message
    assert "Connection refused" in message and "check llm.base_url" in message
    assert c.stats.http_attempts == 0  # no chat request was tried
    assert isinstance(info.value, BackendError)  # stages catch it with the other configuration errors


def test_preflight_is_skipped_when_every_request_is_cached(tmp_path):
    with FakeOpenAI() as server:
        client(server, tmp_path).complete_many(requests(3))
        gets = server.gets
        port = server.port
    assert gets == 1  # one preflight for the whole batch
    with refused_url(port) as base_url:  # the server is gone: only the cache answers
        offline = ChatClient(model="fake-model", base_url=base_url, api_key=SECRET, temperature=0.0, max_tokens=32,
                             seed=1, cache=ResponseCache(tmp_path), progress=False)
        results = offline.complete_many(requests(3))
    assert all(r.ok and r.cached for r in results)


def test_check_endpoint_fails_at_once_unless_the_cache_holds_answers_of_that_endpoint(tmp_path, caplog):
    with FakeOpenAI() as server:
        client(server, tmp_path).complete_many(requests(2))
        port = server.port
    # the server is gone; the cache holds answers from it: warn and go on, the cache answers
    with refused_url(port) as base_url:
        cached = ChatClient(model="fake-model", base_url=base_url, api_key=SECRET, temperature=0.0, max_tokens=32,
                            seed=1, cache=ResponseCache(tmp_path), progress=False)
        cached.check_endpoint()
        assert "the cache holds answers from this endpoint" in caplog.text
        assert all(r.cached for r in cached.complete_many(requests(2)))
        with pytest.raises(EndpointError, match="cannot reach the LLM endpoint"):  # a miss needs the server
            cached.complete_many(requests(3))
        # another model at that URL has nothing cached: fail at once
        other = ChatClient(model="other-model", base_url=base_url, api_key=SECRET, cache=ResponseCache(tmp_path),
                           progress=False)
        with pytest.raises(EndpointError, match=f"cannot reach the LLM endpoint {base_url}"):
            other.check_endpoint()


def test_preflight_runs_once_per_client(tmp_path):
    with FakeOpenAI() as server:
        c = client(server)
        c.complete_many(requests(2))
        c.complete_many(requests(3))
    assert server.gets == 1 and server.count == 5


def test_preflight_rejects_a_bad_key_without_sending_requests(tmp_path):
    denied = lambda: Reply(status=401, body={"error": {"message": f"invalid key {SECRET}"}})
    with FakeOpenAI(models=denied) as server:
        with pytest.raises(EndpointError, match=r"rejected the API key \(HTTP 401") as info:
            client(server, tmp_path).complete_many(requests(2))
        assert server.count == 0
    assert SECRET not in str(info.value)


def test_preflight_404_and_an_unlisted_model_warn_and_go_on(tmp_path, caplog):
    with FakeOpenAI(models=lambda: Reply(status=404, body={"error": "no route"})) as server:
        results = client(server).complete_many(requests(2))
    assert all(r.ok for r in results)
    assert "answered HTTP 404" in caplog.text and "is /v1 missing" in caplog.text
    caplog.clear()
    with FakeOpenAI(models=lambda: Reply(body={"data": [{"id": "other-model"}]})) as server:
        assert all(r.ok for r in client(server).complete_many(requests(1)))
    assert "does not list the model 'fake-model'" in caplog.text and "other-model" in caplog.text


def test_circuit_breaker_stops_after_consecutive_connection_failures(tmp_path):
    # The server answers the preflight, then drops every chat request without an answer.
    with FakeOpenAI(lambda n, body: Reply() if n < 2 else Reply(drop=True)) as server:
        c = client(server, tmp_path, max_retries=1, circuit_breaker=3)
        with pytest.raises(EndpointError) as info:
            c.complete_many(requests(6))
        sent = server.count
    message = str(info.value)
    assert message.startswith(f"stopped after 3 consecutive connection failures to {server.base_url}")
    assert "check llm.base_url" in message and "cached" in message
    # two answered, then request 3 (2 attempts) and request 4 (1 attempt): the breaker trips at 3
    assert sent == 5 and c.stats.http_attempts == 5
    assert len(ResponseCache(tmp_path)) == 2  # what was received is kept


def test_circuit_breaker_with_concurrent_requests_stops_every_worker(tmp_path):
    with FakeOpenAI(lambda n, body: Reply(drop=True)) as server:
        c = client(server, tmp_path, max_retries=5, concurrency=3, circuit_breaker=4,
                    backoff_base_s=0.5, backoff_max_s=2.0)
        with pytest.raises(EndpointError, match="consecutive connection failures"):
            c.complete_many(requests(12))
        # the workers sleeping in backoff woke up and stopped: far fewer than 12 x 6 attempts
        assert server.count < 12


def test_connection_failures_between_answers_do_not_trip_the_breaker(tmp_path):
    # drop, drop, answer, drop, drop, answer...: never 3 in a row
    with FakeOpenAI(lambda n, body: Reply() if n % 3 == 2 else Reply(drop=True)) as server:
        results = client(server, tmp_path, max_retries=2, circuit_breaker=3).complete_many(requests(3))
    assert all(r.ok for r in results) and server.count == 9


def test_a_connection_error_names_the_url(tmp_path):
    with FakeOpenAI(lambda n, body: Reply(drop=True)) as server:
        result = client(server, tmp_path, max_retries=0).complete(requests(1)[0])
    assert not result.ok and f"connection error to {server.base_url}" in result.error


# -- the retry policy and the circuit breaker on their own -------------------------------------


def test_retry_delay_doubles_with_equal_jitter_and_honours_a_longer_retry_after():
    policy = RetryPolicy(max_retries=5, backoff_base_s=1.0, backoff_max_s=6.0)
    rng = random.Random(0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 6.0), (5, 6.0)):  # capped at backoff_max_s
        assert ceiling / 2 <= policy.delay(attempt, None, rng) <= ceiling
    assert policy.delay(1, 5.0, rng) == 5.0  # the server's Retry-After is longer than the backoff
    assert policy.delay(1, 60.0, rng) == 6.0  # ... but never beyond backoff_max_s
    with pytest.raises(ValueError, match="max_retries: expected >= 0, got -1"):
        RetryPolicy(max_retries=-1)


def test_circuit_breaker_trips_on_consecutive_failures_only():
    breaker = CircuitBreaker(2, "http://127.0.0.1:9/v1", "check llm.base_url")
    breaker.record(True, "refused")
    breaker.record(False)  # an HTTP answer in between: the count starts again
    breaker.record(True, "refused")
    assert breaker.tripped is None and not breaker.stop.is_set()
    with pytest.raises(EndpointError, match="stopped after 2 consecutive connection failures to http://127.0.0.1:9/v1"):
        breaker.record(True, "reset")
    assert breaker.stop.is_set()
    with pytest.raises(EndpointError) as again:  # once tripped, every later failure raises the same error
        breaker.record(True, "refused")
    assert again.value is breaker.tripped
    never = CircuitBreaker(0, "u", "c")
    for _ in range(10):
        never.record(True)
    assert never.tripped is None
