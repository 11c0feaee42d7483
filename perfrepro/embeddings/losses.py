"""Adapter losses. `query` is adapter(problem embedding); documents are base solution embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mse_loss(query: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """The study's "no negatives" loss: mean squared error between adapter(query) and the solution."""
    return F.mse_loss(query, positive)


def triplet_loss(query: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """The study's "negatives" loss: TripletMarginLoss(margin, p=2) on (adapter(query), solution, negative)."""
    return F.triplet_margin_loss(query, positive, negative, margin=margin, p=2)


def infonce_loss(
    query: torch.Tensor,
    positive: torch.Tensor,
    temperature: float,
    extra_negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multiple-negatives ranking (InfoNCE): each query must pick its own solution among the batch's
    solutions (plus `extra_negatives`, e.g. mined hard negatives), by cosine / temperature."""
    q = F.normalize(query, dim=-1)
    docs = positive if extra_negatives is None else torch.cat([positive, extra_negatives], dim=0)
    logits = q @ F.normalize(docs, dim=-1).T / temperature
    labels = torch.arange(len(query), device=query.device)
    return F.cross_entropy(logits, labels)
