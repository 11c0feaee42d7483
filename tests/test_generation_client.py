"""ChatClient against a fake OpenAI-compatible server: retries, timeouts, malformed answers,
the response cache, the concurrency bound and the API key's absence from disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAI, Reply, chat_completion

from perfrepro.generation.cache import CACHE_ENV_VAR, ResponseCache, resolve_cache_dir
from perfrepro.generation.client import ChatClient, ChatRequest, scrub_secret

SECRET = "sk-test-DO-NOT-LEAK-0123456789abcdef"


def requests(n: int) -> list[ChatRequest]:
    return [
        ChatRequest(id=f"task-{i}", messages=({"role": "system", "content": "You are a code developer."},
                                              {"role": "user", "content": f"write program number {i}"}))
        for i in range(n)
    ]


def client(server: FakeOpenAI, cache_dir: Path | None = None, **overrides) -> ChatClient:
    options = dict(model="fake-model", base_url=server.base_url, api_key=SECRET, temperature=0.0,
                   max_tokens=32, seed=1, concurrency=1, timeout_s=5.0, max_retries=2,
                   cache=ResponseCache(cache_dir) if cache_dir else None,
                   backoff_base_s=0.01, backoff_max_s=0.05, progress=False)
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
    with FakeOpenAI() as server:
        base_url = server.base_url
    c = ChatClient(model="m", base_url=base_url, api_key=SECRET, max_retries=1, backoff_base_s=0.01,
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
    assert len(files) == 3
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
