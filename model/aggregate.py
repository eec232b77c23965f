"""Soft aggregation of independent per-object probabilities (STCN / SimVOS)."""
from __future__ import annotations

import torch


def aggregate_logits(object_probs: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Per-object sigmoid probabilities -> logits over background + objects.

    object_probs: [..., K, ...] with the objects along ``dim``.
    Returns [..., K+1, ...]: background = prod(1 - p_k) first, clamped to [1e-7, 1-1e-7], logit.
    """
    background = torch.prod(1 - object_probs, dim=dim, keepdim=True)
    probs = torch.cat([background, object_probs], dim=dim).clamp(1e-7, 1 - 1e-7)
    return torch.log(probs / (1 - probs))


def aggregate(object_probs: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Per-object probabilities [.., K, ..] -> probabilities [.., K+1, ..] summing to 1 over ``dim``."""
    return torch.softmax(aggregate_logits(object_probs, dim), dim=dim)
