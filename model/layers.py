"""The ViT building blocks the network shares with timm and MAE, under their parameter names
(``proj``, ``fc1``/``fc2``), written here so that loading the network does not import timm (and,
through it, torchvision and torch._dynamo: seconds at every start of a script)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PatchEmbed(nn.Module):
    """Non-overlapping patches to tokens: [B, C, H, W] -> [B, (H/p)*(W/p), dim] (row-major patches).
    H and W are multiples of ``patch_size`` (the callers pad)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    """The transformer's feed-forward part: [..., dim] -> fc1 -> GELU (erf) -> fc2 -> [..., dim]."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: in training, each sample's residual branch is zeroed with probability
    ``rate`` and the kept ones scaled by 1 / (1 - rate); the identity in evaluation."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

