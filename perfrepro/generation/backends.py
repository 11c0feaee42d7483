"""LLM backends behind one interface (`ChatBackend`), chosen by ``llm.backend``.

- ``local``: starts the llama.cpp server on SmolLM2-135M-Instruct and talks to it through the
  same `ChatClient` as OpenAI;
- ``openai``: `ChatClient` against ``llm.base_url`` (None: api.openai.com) with the key from the
  environment variable named by ``llm.api_key_env``;
- ``recorded``: the responses LeetCodeDataset ships in its ``response`` field (real model output,
  zero-shot only), labelled "recorded-responses";
- ``samples``: the samples file ``samples.backend.file`` (a folder: its ``<llm.model>.jsonl``; evalplus
  format, e.g. EvalPerf's published solutions; perfrepro.generation.samples), labelled
  "<model> (<samples.backend.source>)".
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Callable, Iterator, Mapping, Sequence

from perfrepro.config import LLMConfig
from perfrepro.generation.cache import ResponseCache
from perfrepro.generation.client import ChatBackend, ChatClient, ChatRequest, ChatResult, prompt_hash
from perfrepro.generation.endpoint import BackendError, RetryPolicy

log = logging.getLogger(__name__)

RECORDED_LABEL = "recorded-responses"
RECORDED_ONLY_EFFICIENCY = (
    "recorded responses exist only for the efficiency tasks (LeetCodeDataset's `response` field)"
)


class RecordedBackend:
    """Answers each request with the response recorded for its id (the task id)."""

    model_label = RECORDED_LABEL

    def __init__(self, responses: Mapping[str, str], source: str = "recorded responses"):
        self.responses = dict(responses)
        self.source = source

    def complete_many(self, requests: Sequence[ChatRequest], desc: str = "requests") -> list[ChatResult]:
        results = []
        for request in requests:
            text = self.responses.get(request.id)
            error = None if text is not None else f"no recorded response for {request.id!r} in {self.source}"
            results.append(ChatResult(id=request.id, text=text, error=error, cached=True,
                                      prompt_hash=prompt_hash(request.messages)))
        return results


def api_key_from_env(llm: LLMConfig, required: bool) -> str | None:
    """The key in ``$<llm.api_key_env>``; a clear error (naming the variable, never a value) when
    it is required and missing."""
    key = os.environ.get(llm.api_key_env) or None
    if required and key is None:
        raise BackendError(
            f"llm.backend: openai needs an API key in the environment variable {llm.api_key_env} "
            f"(llm.api_key_env); it is not set"
        )
    return key


def _client(llm: LLMConfig, *, base_url: str | None, endpoint: str | None, api_key: str | None,
            cache: ResponseCache | None, key: str = "llm", **overrides) -> ChatClient:
    return ChatClient(
        model=llm.model, base_url=base_url, api_key=api_key, endpoint=endpoint,
        temperature=llm.temperature, max_tokens=llm.max_tokens, seed=llm.seed,
        concurrency=llm.concurrency, timeout_s=llm.timeout_s, retry=RetryPolicy(max_retries=llm.max_retries),
        cache=cache, config_key=key, **overrides,
    )


def check_backend(llm: LLMConfig, *, shots: int = 0, key: str = "llm", recorded_available: bool = True,
                  track: str = "efficiency") -> None:
    """Fail early, before any expensive work, when `llm` cannot run as configured.

    `recorded_available` False (the PIE track, the negatives) refuses ``backend: recorded`` with a
    message that says where recorded responses exist."""
    if llm.backend == "recorded" and not recorded_available:
        raise BackendError(
            f"{key}.backend: recorded cannot serve the {track}: {RECORDED_ONLY_EFFICIENCY}. "
            f"Run the efficiency track alone (`dvc exp run -S {key}.backend=recorded -S shots=0 report`) "
            f"or use {key}.backend: local or openai"
        )
    if llm.backend == "recorded" and shots != 0:
        raise BackendError(
            f"{key}.backend: recorded replays LeetCodeDataset's zero-shot responses, so it only works "
            f"with shots: 0 (got shots: {shots}); run e.g. `dvc exp run -S {key}.backend=recorded -S shots=0`"
        )
    if llm.backend == "samples" and shots != 0:
        raise BackendError(
            f"{key}.backend: samples replays programs written without our retrieved examples, so it only works "
            f"with shots: 0 (got shots: {shots}); run e.g. `dvc exp run -S {key}.backend=samples -S shots=0`"
        )
    if llm.backend == "openai":
        api_key_from_env(llm, required=llm.base_url is None)
    if llm.backend == "local":
        from perfrepro.generation.local_server import LocalServerError, find_smollm2_gguf, llama_cpp_available

        if not llama_cpp_available():
            raise LocalServerError(
                f"{key}.backend: local needs llama-cpp-python[server] (pip install -e '.[local]'); "
                f"or use {key}.backend: openai / recorded"
            )
        find_smollm2_gguf()


def preflight_backend(llm: LLMConfig, *, cache: ResponseCache | None = None, key: str = "llm") -> None:
    """Check a remote endpoint (``backend: openai``) before a stage's expensive preparation, so a
    wrong ``base_url`` fails in seconds (`ChatClient.check_endpoint`). The local server is ours and
    started on demand, and the recorded backend has no endpoint: nothing to do for them."""
    if llm.backend != "openai":
        return
    cache = cache if cache is not None else ResponseCache.from_config(llm.cache_dir)
    api_key = api_key_from_env(llm, required=llm.base_url is None)
    _client(llm, base_url=llm.base_url, endpoint=None, api_key=api_key, cache=cache, progress=False,
            key=key).check_endpoint()


@contextlib.contextmanager
def open_backend(
    llm: LLMConfig,
    *,
    shots: int = 0,
    recorded_responses: Callable[[], Mapping[str, str]] | None = None,
    samples: Callable[[str], ChatBackend] | None = None,
    cache: ResponseCache | None = None,
    progress: bool = True,
    key: str = "llm",
) -> Iterator[ChatBackend]:
    """The backend `llm` asks for, ready to use for the duration of the block.

    `recorded_responses` loads task id -> response for the recorded backend; `samples(model)` opens
    the samples backend of that model (perfrepro.generation.samples.samples_opener). `cache`
    defaults to ``ResponseCache.from_config(llm.cache_dir)`` (``$PERFREPRO_LLM_CACHE`` overrides it).
    """
    check_backend(llm, shots=shots, key=key)
    if llm.backend == "recorded":
        if recorded_responses is None:
            raise BackendError(f"{key}.backend: recorded: {RECORDED_ONLY_EFFICIENCY}; use {key}.backend: local or openai here")
        yield RecordedBackend(recorded_responses())
        return
    if llm.backend == "samples":
        if samples is None:
            raise BackendError(f"{key}.backend: samples serves the efficiency and optimization tracks only "
                               f"(llm.backend); use {key}.backend: local or openai here")
        yield samples(llm.model)
        return
    cache = cache if cache is not None else ResponseCache.from_config(llm.cache_dir)
    log.info("LLM response cache: %s", cache.directory)
    if llm.backend == "transformers":  # in process, e.g. the fine-tuned model (perfrepro/generation/transformers_backend.py)
        from perfrepro.generation.transformers_backend import TransformersBackend

        yield TransformersBackend(llm, cache, progress=progress)
        return
    if llm.backend == "openai":
        api_key = api_key_from_env(llm, required=llm.base_url is None)
        yield _client(llm, base_url=llm.base_url, endpoint=None, api_key=api_key, cache=cache, progress=progress,
                      key=key)
        return
    with contextlib.ExitStack() as stack:
        yield LocalServerBackend(llm, cache, stack, progress=progress, key=key)


class LocalServerBackend:
    """`ChatClient` against a llama.cpp server that is started only when a request misses the
    cache (a rerun with everything cached starts no server), and stopped with `stack`."""

    def __init__(self, llm: LLMConfig, cache: ResponseCache, stack: contextlib.ExitStack, progress: bool = True,
                 key: str = "llm"):
        from perfrepro.generation.local_server import endpoint_identity, find_smollm2_gguf

        self.llm = llm
        self.cache = cache
        self.stack = stack
        self.progress = progress
        self.key = key
        self.model_path = find_smollm2_gguf()
        self.model_label = llm.model
        self.endpoint = endpoint_identity(self.model_path)
        # Until the server runs, a client whose every request must be a cache hit.
        self.client = _client(llm, base_url="http://127.0.0.1:9/v1", endpoint=self.endpoint, api_key=None,
                              cache=cache, progress=progress)
        self.server_url: str | None = None

    def start(self) -> str:
        from perfrepro.generation.local_server import local_llama_server

        if self.server_url is None:
            self.server_url = self.stack.enter_context(
                local_llama_server(self.model_path, model_alias=self.llm.model, seed=self.llm.seed)
            )
            stats = self.client.stats
            self.client = _client(
                self.llm, base_url=self.server_url, endpoint=self.endpoint, api_key=None, cache=self.cache,
                progress=self.progress, key=self.key,
                check=f"the local llama.cpp server that {self.key}.backend: local started at {self.server_url} "
                      f"stopped answering (out of memory? see its log)",
            )
            self.client.stats = stats
        return self.server_url

    def complete_many(self, requests: Sequence[ChatRequest], desc: str = "requests") -> list[ChatResult]:
        if any(self.client.key_for(r.messages) not in self.cache for r in requests):
            self.start()
        return self.client.complete_many(requests, desc=desc)

    @property
    def stats(self):
        return self.client.stats
