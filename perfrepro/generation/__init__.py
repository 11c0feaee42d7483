"""Generation track: prompts, OpenAI-compatible client, response cache, local model server, code extraction.

Public API (import from the submodules):

- ``client``: ``ChatRequest(id, messages)``, ``ChatResult`` (text | error, tokens, latency_s, cached,
  attempts, prompt_hash, cache_key), ``ChatClient(model=, base_url=, api_key=, endpoint=, temperature=,
  max_tokens=, seed=, concurrency=, timeout_s=, cache=, retry=, checks=)`` with ``.complete(request)`` and
  ``.complete_many(requests, desc=)``; the ``ChatBackend`` protocol (``model_label``, ``complete_many``).
- ``endpoint``: ``RetryPolicy(max_retries, backoff_base_s, backoff_max_s)``, ``EndpointChecks(preflight,
  preflight_timeout_s, circuit_breaker)``, the ``CircuitBreaker``, ``BackendError`` / ``EndpointError``.
- ``cache``: ``ResponseCache(directory)`` / ``ResponseCache.from_config(llm.cache_dir)``
  (``$PERFREPRO_LLM_CACHE`` overrides the location).
- ``backends``: ``open_backend(llm_config, shots=, recorded_responses=, samples=, cache=)`` context manager,
  keyed by ``llm.backend`` (local | openai | recorded | transformers | samples); ``check_backend`` fails early.
- ``samples``: evalplus samples JSONL (``read_samples``, ``write_samples``), the ``SamplesBackend``, and the
  importers of EvalPerf's and ENAMEL's published files (``evalperf_samples``, ``enamel_samples``).
- ``local_server``: ``local_llama_server(model_path=None, ...)`` context manager yielding a base URL;
  ``find_smollm2_gguf()``.
- ``extract``: ``extract_code(response, entry_point)`` -> code | None.
- ``prompts``: ``generation_messages(task, examples)``, ``negative_messages(solution)``,
  ``load_template(name)``, ``package_template(package, name)`` (any room's templates),
  ``render(template, **values)``.
"""
