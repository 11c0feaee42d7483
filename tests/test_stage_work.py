"""The work that moved out of the stage scripts into the library, called directly: a variant's
settings from the command line, an OpenAI job's loss curve and metrics, measure's reference row,
and the hybrid retriever's checks."""

from __future__ import annotations

import json

import pytest

from perfrepro.config import HybridConfig
from perfrepro.embeddings.variants import variant_settings
from perfrepro.finetuning.train import FinetuneSetupError, finetune_metrics, openai_api_key, openai_curve
from perfrepro.generation.recorded import reference_completions, reference_summary
from perfrepro.records import Completion
from perfrepro.retrieval.build import build_hybrid_retriever
from perfrepro.retrieval.retrievers import RetrievalInputError
from perfrepro.stage import is_bad_input


def test_variant_settings_convert_numbers_and_words():
    assert variant_settings(["--epochs", "2", "--lr", "3e-05", "--loss", "mse", "--temperature", "null",
                             "--warmup-steps", "1"]) == {"epochs": 2, "lr": 3e-05, "loss": "mse", "temperature": None,
                                                         "warmup_steps": 1}
    with pytest.raises(ValueError, match="'--key value' pairs, got '--epochs --lr'"):
        variant_settings(["--epochs", "--lr", "0.1"])


def test_openai_curve_and_metrics():
    events = [{"data": {"step": 2, "train_loss": 0.5, "valid_loss": 0.7}}, {"data": {"step": 1, "train_loss": 0.9}},
              {"message": "no data"}, {"data": {"step": 3, "train_loss": "n/a"}}]
    assert openai_curve(events) == [{"step": 1, "split": "train", "loss": 0.9}, {"step": 2, "split": "train", "loss": 0.5},
                                    {"step": 2, "split": "val", "loss": 0.7}]
    info = {"train_records_used": 5, "train_wall_s": 1.5, "first_loss": {"train": 2.0}, "last_loss": {"train": 1.0}}
    assert list(finetune_metrics(info, 3).items()) == [
        ("finetune.train_records_used", 5), ("finetune.self_play_records_added", 3), ("finetune.train_wall_s", 1.5),
        ("finetune.first_train_loss", 2.0), ("finetune.last_train_loss", 1.0)]
    assert finetune_metrics({"train_records_used": 5}, 0) == {"finetune.train_records_used": 5,
                                                              "finetune.self_play_records_added": 0}


def test_a_missing_api_key_is_bad_input(monkeypatch):
    monkeypatch.delenv("PERFREPRO_TEST_NO_KEY", raising=False)
    with pytest.raises(FinetuneSetupError, match="PERFREPRO_TEST_NO_KEY .*nothing was uploaded") as error:
        openai_api_key("PERFREPRO_TEST_NO_KEY")
    assert is_bad_input(error.value)


def test_no_reference_row_says_why():
    assert reference_completions([], "recorded", "leetcodedataset", "x.jsonl")[1].startswith("llm.backend is recorded")
    assert reference_completions([], "openai", "effibench", "x.jsonl") == ([], "data.tasks_source is effibench: no recorded responses")
    assert reference_summary([], "why", "x.jsonl") == {"source": None, "why_none": "why"}
    refs = [Completion("t", 0, "m", "ok", "code", "r"), Completion("u", 0, "m", "no_code", None, "r")]
    assert json.dumps(reference_summary(refs, None, "x.jsonl")) == (
        '{"source": "leetcodedataset-response", "file": "x.jsonl", "completions": 2, "with_code": 1}')


def test_hybrid_names_a_missing_component(tmp_path):
    (tmp_path / "bm25").mkdir()
    with pytest.raises(RetrievalInputError, match=r"retrievers.hybrid: .*dense_x not found \(dense: 'dense_x'"):
        build_hybrid_retriever(HybridConfig(dense="dense_x", rrf_k=60, depth=100), tmp_path, tmp_path / "hybrid")
    assert not (tmp_path / "hybrid").exists()
