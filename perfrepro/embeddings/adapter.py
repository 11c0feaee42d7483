"""The query-side linear adapter (384 -> 384), as in the study: documents keep base embeddings.

On disk an adapter is three files sharing a stem: `<stem>.weight.npy`, `<stem>.bias.npy` and
`<stem>.json` (its hyperparameters and training log). `.npy` bytes depend only on the values,
so the same params give the same files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from perfrepro.io import write_json

PROTOCOLS = ("heldout", "study")


class LinearAdapter(nn.Module):
    """y = W x + b on query embeddings; identity initialisation so training starts at the base model."""

    def __init__(self, dim: int = 384, init: str = "identity", hyperparameters: dict[str, Any] | None = None):
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(dim, dim)
        self.hyperparameters: dict[str, Any] = dict(hyperparameters or {})
        if init == "identity":
            with torch.no_grad():
                self.linear.weight.copy_(torch.eye(dim))
                self.linear.bias.zero_()
        elif init != "random":
            raise ValueError(f"LinearAdapter init: expected 'identity' or 'random', got {init!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    @torch.no_grad()
    def apply(self, embeddings: np.ndarray) -> np.ndarray:  # type: ignore[override]
        """Adapt query embeddings: (n, dim) or (dim,) float -> same shape, float32, L2-normalised.

        (Only directions matter in cosine space; unit rows make a dot product the cosine.)
        """
        array = np.asarray(embeddings, dtype=np.float32)
        single = array.ndim == 1
        batch = torch.from_numpy(np.ascontiguousarray(array.reshape(1, -1) if single else array))
        out = self.linear(batch).numpy()
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        out = out.astype(np.float32)
        return out[0] if single else out

    def save(self, stem: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write `<stem>.weight.npy`, `<stem>.bias.npy`, `<stem>.json`; returns the json path."""
        stem = _stem(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        np.save(f"{stem}.weight.npy", self.linear.weight.detach().numpy().astype(np.float32))
        np.save(f"{stem}.bias.npy", self.linear.bias.detach().numpy().astype(np.float32))
        meta = {"dim": self.dim, "hyperparameters": self.hyperparameters}
        meta.update(extra or {})
        return write_json(f"{stem}.json", meta)

    @classmethod
    def load(cls, path: str | Path) -> "LinearAdapter":
        """Load from a stem (`.../heldout`) or any of its three files."""
        stem = _stem(path)
        meta_path = Path(f"{stem}.json")
        if not meta_path.exists():
            raise FileNotFoundError(f"adapter {stem}: {meta_path} not found (run the train_adapter stage)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        weight = np.load(f"{stem}.weight.npy")
        bias = np.load(f"{stem}.bias.npy")
        adapter = cls(int(meta["dim"]), init="identity", hyperparameters=meta.get("hyperparameters"))
        if weight.shape != (adapter.dim, adapter.dim) or bias.shape != (adapter.dim,):
            raise ValueError(f"adapter {stem}: weight {weight.shape} / bias {bias.shape} do not match dim {adapter.dim}")
        with torch.no_grad():
            adapter.linear.weight.copy_(torch.from_numpy(weight))
            adapter.linear.bias.copy_(torch.from_numpy(bias))
        adapter.eval()
        return adapter


def _stem(path: str | Path) -> Path:
    path = Path(path)
    name = path.name
    for suffix in (".weight.npy", ".bias.npy", ".json"):
        if name.endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path


def adapter_stem(adapters_dir: str | Path, variant: str, protocol: str = "heldout") -> Path:
    """Where the train_adapter stage writes a variant trained under `protocol`."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return Path(adapters_dir) / variant / protocol


def load_variant(adapters_dir: str | Path, variant: str, protocol: str = "heldout") -> LinearAdapter:
    """Load the adapter of `variant` trained under `protocol` (heldout: train split only;
    study: every row, as the study's notebooks did)."""
    stem = adapter_stem(adapters_dir, variant, protocol)
    if not Path(f"{stem}.json").exists():
        available = sorted(p.name for p in Path(adapters_dir).iterdir()) if Path(adapters_dir).is_dir() else []
        raise FileNotFoundError(
            f"adapter variant {variant!r} ({protocol}) not found at {stem}.json; "
            f"available variants in {adapters_dir}: {', '.join(available) or 'none'}"
        )
    return LinearAdapter.load(stem)
