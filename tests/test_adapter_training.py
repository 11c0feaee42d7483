"""LinearAdapter training on tiny synthetic embeddings: determinism, loss decrease, save/load, negatives."""

import numpy as np
import pytest
import torch

from perfrepro.config import AdapterConfig
from perfrepro.embeddings.adapter import LinearAdapter, load_variant
from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.embeddings.training import (
    NoTrainingDataError, linear_warmup_decay, mine_hard_negatives, train_adapter, train_variant, training_data,
)

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

DIM = 16


def config(**overrides):
    values = dict(epochs=4, batch_size=8, lr=0.01, warmup_steps=3, max_grad_norm=1.0, margin=0.5,
                  loss="mse", negatives="none", temperature=0.1)
    values.update(overrides)
    return AdapterConfig(**values)


def tiny_set(n=24, slow=()):
    rng = np.random.default_rng(0)
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)
    solutions = unit(rng.normal(size=(n, DIM)))
    rotation = np.linalg.qr(rng.normal(size=(DIM, DIM)))[0]
    problems = unit(solutions @ rotation + 0.3 * rng.normal(size=(n, DIM)))
    ids = [f"p{i:02d}" for i in range(n)]
    splits = ["test" if i % 4 == 0 else "train" for i in range(n)]
    slow_ids = [ids[i] for i in slow]
    slow_emb = unit(solutions[list(slow)] + 0.5 * rng.normal(size=(len(slow), DIM))) if slow else np.zeros((0, DIM), np.float32)
    docs = [{"id": i, "solution": f"s{i}", "split": s, "source": "t", "language": "python"} for i, s in zip(ids, splits)]
    return EmbeddingSet(ids, splits, problems, solutions, slow_ids, slow_emb, docs)


@pytest.mark.parametrize("loss,negatives", [("mse", "none"), ("triplet", "hard"), ("infonce", "none")])
def test_same_seed_gives_bit_identical_weights(loss, negatives):
    data = tiny_set()
    a, _ = train_variant(data, config(loss=loss, negatives=negatives), "heldout", seed=7, show_progress=False)
    b, _ = train_variant(data, config(loss=loss, negatives=negatives), "heldout", seed=7, show_progress=False)
    assert torch.equal(a.linear.weight, b.linear.weight) and torch.equal(a.linear.bias, b.linear.bias)
    c, _ = train_variant(data, config(loss=loss, negatives=negatives), "heldout", seed=8, show_progress=False)
    assert not torch.equal(a.linear.weight, c.linear.weight)


def test_training_reduces_loss_for_each_loss():
    data = tiny_set()
    for loss, negatives in [("mse", "none"), ("triplet", "hard"), ("infonce", "none")]:
        _, log = train_variant(data, config(loss=loss, negatives=negatives, epochs=15), "heldout", 0, show_progress=False)
        assert log["loss_per_epoch"][-1] < log["loss_per_epoch"][0], (loss, log["loss_per_epoch"])


def test_protocols_select_rows():
    data = tiny_set()
    assert len(training_data(data, config(), "heldout").ids) == 18
    assert len(training_data(data, config(), "study").ids) == 24
    assert all(data.splits[data.ids.index(i)] == "train" for i in training_data(data, config(), "heldout").ids)


def test_slow_negatives_count_and_clear_error_without_any():
    with_slow = training_data(tiny_set(slow=(1, 2, 4)), config(loss="triplet", negatives="slow"), "heldout")
    assert with_slow.ids == ["p01", "p02"] and "2 slow-variant triplets" in with_slow.description
    with pytest.raises(NoTrainingDataError, match="slow variants"):
        training_data(tiny_set(), config(loss="triplet", negatives="slow"), "heldout")


def test_hard_negative_is_nearest_wrong_solution():
    q = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], dtype=np.float32)
    s = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]], dtype=np.float32)
    assert list(mine_hard_negatives(q, s, ["a", "b", "c"])) == [2, 2, 0]


def test_schedule_warms_up_then_decays_to_zero():
    assert [linear_warmup_decay(s, 2, 6) for s in range(7)] == [0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0]


def test_adapter_identity_init_save_load(tmp_path):
    adapter = LinearAdapter(DIM, hyperparameters={"lr": 0.1})
    x = np.eye(DIM, dtype=np.float32)[:3] * 2
    assert np.allclose(adapter.apply(x), x / 2)
    trained, _ = train_adapter(tiny_set().problems, tiny_set().solutions, config(), 0, show_progress=False)
    trained.save(tmp_path / "v" / "heldout")
    loaded = load_variant(tmp_path, "v", "heldout")
    assert torch.equal(loaded.linear.weight, trained.linear.weight)
    assert loaded.hyperparameters["loss"] == "mse"
    assert np.array_equal(loaded.apply(x), trained.apply(x))
    with pytest.raises(FileNotFoundError, match="available variants"):
        load_variant(tmp_path, "missing")


def test_train_adapter_stage_writes_identical_bytes_twice(tmp_path):
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "stages"))
    try:
        import train_adapter as stage
    finally:
        sys.path.pop(0)
    tiny_set().save(tmp_path / "emb")
    flags = "--epochs 2 --batch_size 8 --lr 3e-05 --warmup_steps 1 --max_grad_norm 1.0 --margin 0.05 --loss triplet --negatives hard".split()
    for out in ("a", "b"):
        assert stage.main(["--variant", "v", "--embeddings", str(tmp_path / "emb"), "--out-dir", str(tmp_path / out),
                           "--params", str(root / "params.yaml"), *flags]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert {str(f) for f in files} >= {"v/heldout.weight.npy", "v/study.json", "v/summary.json"}
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
