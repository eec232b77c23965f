"""Token refinement (SimVOS-BS): prototype weights and the two token learners.

A reference frame's within-frame features ``[B, h, w, C]`` are summarised, per object, into
``N_fg`` foreground and ``N_bg`` background prototypes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def prototype_weights(object_masks: torch.Tensor, grid_hw: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground / background weight maps of every object on the token grid.

    object_masks: [B, K, H, W], all objects of a frame, one-hot or soft, in [0, 1].
    Returns (w_fg, w_bg), each [B, K, h, w]:
      bg = 1 exactly where 1 - sum_k m_k == 1 (in float32), else 0;
      probs = bilinear resize of [bg, m_1..m_K] to (h, w); hard = one-hot argmax over K+1;
      w_fg = m_k * hard_k;  w_bg = (1 - m_k) * (1 - hard_k).
    """
    masks = object_masks.float()
    background = (1 - masks.sum(dim=1, keepdim=True) == 1).float()
    probs = F.interpolate(torch.cat([background, masks], dim=1), size=grid_hw, mode="bilinear", align_corners=False)
    hard = F.one_hot(probs.argmax(dim=1), probs.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)[:, 1:]
    objects = probs[:, 1:]
    return objects * hard, (1 - objects) * (1 - hard)


def _widened(x: torch.Tensor) -> torch.Tensor:
    """At least fp32: under autocast the layer norms here then work on fp32, as outside it."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


class TokenLearner(nn.Module):
    """Weighted-softmax pooling of a frame's tokens into ``num_tokens`` prototypes."""

    def __init__(self, dim: int, num_tokens: int):
        super().__init__()
        self.num_tokens = num_tokens
        self.input_norm = nn.LayerNorm(dim + 1)
        self.patch_to_cluster_atten = nn.Sequential(
            nn.Conv2d(dim + 1, dim // 4, kernel_size=3, padding=1, bias=False), nn.GELU())
        self.patch_to_cluster_linear = nn.Linear(dim // 4, num_tokens)
        self.norm = nn.LayerNorm(dim)

    def attention(self, features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """features [B, h, w, C], weight [B, 1, h, w] -> attention [B, N, h*w].

        Rows are softmaxes over the positions whose weight is non-zero; a weight map that is
        zero everywhere gives all-zero rows.
        """
        b, h, w, _ = features.shape
        x = self.input_norm(_widened(torch.cat([features, weight.permute(0, 2, 3, 1).to(features.dtype)], dim=-1)))
        x = self.patch_to_cluster_atten(x.permute(0, 3, 1, 2))
        logits = self.patch_to_cluster_linear(x.flatten(2).transpose(1, 2)).transpose(1, 2)
        logits = logits.masked_fill(weight.flatten(2) == 0, float("-inf"))
        return torch.nan_to_num(torch.softmax(logits, dim=-1), nan=0.0)

    def forward(self, features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """features [B, h, w, C], weight [B, 1, h, w] -> prototypes [B, N, C]."""
        attn = self.attention(features, weight)
        return self.norm(_widened(attn.to(features.dtype) @ features.flatten(1, 2)))
