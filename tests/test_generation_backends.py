"""Backend factory, the recorded backend, completions and negatives rows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from perfrepro.config import load_params
from perfrepro.generation.backends import RECORDED_LABEL, BackendError, RecordedBackend, check_backend, open_backend
from perfrepro.generation.client import ChatRequest, ChatResult
from perfrepro.generation.generate import failure_fraction, generate_completions
from perfrepro.generation.negatives import select_pairs, slow_variant_row
from perfrepro.records import CorpusPair, Task

REPO = Path(__file__).resolve().parents[1]
LLM = load_params(REPO / "params.yaml").llm


def task(task_id: str) -> Task:
    return Task(id=task_id, statement="Return 1.", starter_code="class Solution:\n    def one(self) -> int:\n",
                canonical_solution="", test_code="", entry_point="Solution().one", examples="", source="test")


def test_recorded_backend_refuses_shots():
    recorded = dataclasses.replace(LLM, backend="recorded")
    with pytest.raises(BackendError, match="only works with shots: 0"):
        check_backend(recorded, shots=3)


def test_recorded_backend_answers_by_task_id_and_labels_itself():
    recorded = dataclasses.replace(LLM, backend="recorded")
    responses = {"a": "```python\nclass Solution:\n    def one(self):\n        return 1\n```", "b": "No idea."}
    with open_backend(recorded, shots=0, recorded_responses=lambda: responses) as backend:
        completions = generate_completions([task("a"), task("b"), task("c")], backend)
    assert [c.model for c in completions] == [RECORDED_LABEL] * 3
    assert [c.status for c in completions] == ["ok", "no_code", "error"]
    assert completions[0].code.startswith("class Solution") and completions[1].response == "No idea."
    assert "no recorded response" in completions[2].error
    assert failure_fraction(completions) == pytest.approx(1 / 3)


def test_recorded_responses_from_the_shipped_leetcodedataset_file():
    from perfrepro.datasets.leetcodedataset import load_recorded_responses

    responses = load_recorded_responses(REPO / "data/raw/leetcodedataset/LeetCodeDataset-v0.3.1-test.jsonl.gz")
    assert len(responses) == 228
    assert sum("```python" in text for text in responses.values()) > 50


def test_openai_backend_without_its_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("PERFREPRO_TEST_KEY", raising=False)
    llm = dataclasses.replace(LLM, backend="openai", base_url=None, api_key_env="PERFREPRO_TEST_KEY")
    with pytest.raises(BackendError, match="PERFREPRO_TEST_KEY"):
        check_backend(llm)


def test_generate_keeps_retrieved_ids_and_puts_examples_in_the_prompt():
    seen: list[ChatRequest] = []

    class Echo:
        model_label = "echo"

        def complete_many(self, requests, desc="requests"):
            seen.extend(requests)
            return [ChatResult(id=r.id, text="```python\nclass Solution:\n    pass\n```", prompt_hash="h") for r in requests]

    retrieved = {"a": [("doc-1", "def fast():\n    return 1\n"), ("doc-2", "def faster():\n    return 2\n")]}
    completions = generate_completions([task("a"), task("b")], Echo(), retrieved)
    assert completions[0].retrieved_ids == ("doc-1", "doc-2") and completions[1].retrieved_ids == ()
    assert "def faster()" in seen[0].messages[1]["content"] and "Example" not in seen[1].messages[1]["content"]


PAIR = CorpusPair(id="p", problem="sum", solution="class Solution:\n    def s(self, xs):\n        return sum(xs)\n",
                  slow_solution=None, language="python", source="test")


@pytest.mark.parametrize("text, status", [
    ("```python\nclass Solution:\n    def s(self, xs):\n        t = 0\n        for x in xs:\n            t += x\n        return t\n```", "ok"),
    ("```python\nclass Solution:\n    def s(self, xs):\n        return sum(xs)\n```", "unchanged"),
    ("```python\nclass Solution:\n    def s(self, xs):\n        return (\n```", "syntax_error"),
    ("Sorry.", "no_code"),
    (None, "error"),
])
def test_slow_variant_rows(text, status):
    result = ChatResult(id="p", text=text, error=None if text is not None else "HTTP 500")
    row = slow_variant_row(PAIR, result)
    assert row["status"] == status and set(row) == {"id", "slow_solution", "status"}
    assert (row["slow_solution"] is not None) == (status == "ok")


def test_select_pairs_is_seeded_and_a_larger_limit_extends_a_smaller_one():
    pairs = [dataclasses.replace(PAIR, id=f"p{i:02d}") for i in range(30)]
    five, ten = select_pairs(pairs, 5, seed=42), select_pairs(pairs, 10, seed=42)
    assert ten[:5] == five and select_pairs(list(reversed(pairs)), 5, seed=42) == five
    assert select_pairs(pairs, 5, seed=1) != five and select_pairs(pairs, 0, seed=42) == []
