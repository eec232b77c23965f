"""Bootstrapped cross-entropy and IoU for logging (the bootstrap schedule: training/schedule.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bootstrapped_ce(logits: torch.Tensor, target: torch.Tensor, p: float) -> torch.Tensor:
    """Mean of the top ``p`` fraction of per-pixel cross-entropies (plain mean when p == 1).

    logits [B, C, H, W], target [B, H, W] long.
    """
    if p >= 1.0:
        return F.cross_entropy(logits, target)
    raw = F.cross_entropy(logits, target, reduction="none").flatten()
    return torch.topk(raw, int(raw.numel() * p), sorted=False).values.mean()


def pair_loss(logits: torch.Tensor, class_map: torch.Tensor, selector: torch.Tensor, p: float) -> torch.Tensor:
    """Per-sample bootstrapped CE over (bg, t1, t2), averaged over the batch; samples without a
    second target use the first two channels only. logits [B, 3, H, W]."""
    total = logits.new_zeros(())
    for i in range(logits.shape[0]):
        channels = 3 if selector[i, 1] > 0.5 else 2
        total = total + bootstrapped_ce(logits[i:i + 1, :channels], class_map[i:i + 1], p)
    return total / logits.shape[0]


def iou(pred: torch.Tensor, target: torch.Tensor) -> float:
    """IoU of two boolean tensors (1 when both are empty)."""
    union = (pred | target).sum().item()
    return (pred & target).sum().item() / union if union else 1.0
