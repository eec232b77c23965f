"""Bootstrapped cross-entropy, the soft Dice term of fine-tuning, and IoU for logging (the bootstrap
schedule: training/schedule.py)."""
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


def soft_dice(logits: torch.Tensor, class_map: torch.Tensor, channels: int) -> torch.Tensor:
    """Mean over the targets 1..channels-1 of 1 - soft Dice between their softmax probability and
    their mask (smoothed by 1, so an empty target predicted empty costs nothing). It weighs a
    target by its area, not its pixels: small objects are not traded for background.
    logits [1, C, H, W], class_map [1, H, W]."""
    probs = torch.softmax(logits[:, :channels].float(), dim=1)[0, 1:].flatten(1)        # [channels-1, HW]
    truth = torch.stack([(class_map[0] == k).flatten() for k in range(1, channels)]).float()
    dice = (2 * (probs * truth).sum(1) + 1) / (probs.sum(1) + truth.sum(1) + 1)
    return (1 - dice).mean()


def pair_loss(logits: torch.Tensor, class_map: torch.Tensor, selector: torch.Tensor, p: float,
              dice_weight: float = 0.0) -> torch.Tensor:
    """Per-sample bootstrapped CE over (bg, t1, t2) (plus ``dice_weight`` x :func:`soft_dice`),
    averaged over the batch; samples without a second target use the first two channels only.
    logits [B, 3, H, W]."""
    total = logits.new_zeros(())
    for i in range(logits.shape[0]):
        channels = 3 if selector[i, 1] > 0.5 else 2
        total = total + bootstrapped_ce(logits[i:i + 1, :channels], class_map[i:i + 1], p)
        if dice_weight:
            total = total + dice_weight * soft_dice(logits[i:i + 1], class_map[i:i + 1], channels)
    return total / logits.shape[0]


def iou(pred: torch.Tensor, target: torch.Tensor) -> float:
    """IoU of two boolean tensors (1 when both are empty)."""
    union = (pred | target).sum().item()
    return (pred & target).sum().item() / union if union else 1.0
