"""Plain-ViT pieces with the parameter names that MAE and SimVOS checkpoints use.

Tokens are ``[B, N, C]``; a frame's tokens are its ``h x w`` patch grid in row-major order.
Blocks can compute only the last ``num_query`` rows (``query_rows``): in the last joint block
the memory rows are never read again, so skipping them is exact.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.layers import DropPath, Mlp


class Attention(nn.Module):
    """Multi-head self-attention (``qkv`` / ``proj`` as in timm and MAE) through SDPA."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, N, C] -> [B, heads, N, head_dim]"""
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, query_rows: int | None = None) -> torch.Tensor:
        """x: [B, N, C] -> [B, N, C], or [B, query_rows, C] for the last ``query_rows`` rows only."""
        b, n, c = x.shape
        if query_rows is None:
            q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        else:
            w_q, w_kv = self.qkv.weight.split([c, 2 * c])
            b_q, b_kv = self.qkv.bias.split([c, 2 * c])
            q = self._heads(F.linear(x[:, -query_rows:], w_q, b_q))
            k, v = F.linear(x, w_kv, b_kv).view(b, n, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, -1, c))


class Block(nn.Module):
    """Pre-norm transformer block (timm / MAE layout: norm1, attn, norm2, mlp)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, query_rows: int | None = None) -> torch.Tensor:
        """x: [B, N, C] -> [B, N, C] (or [B, query_rows, C])."""
        shortcut = x if query_rows is None else x[:, -query_rows:]
        x = shortcut + self.drop_path(self.attn(self.norm1(x), query_rows))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Splits a token grid into square windows, zero-padding bottom/right.

    x: [B, h, w, C] -> ([B * nWin, window * window, C], (padded h, padded w)).
    """
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c), (hp, wp)


def window_unpartition(windows: torch.Tensor, window: int, padded_hw: tuple[int, int], hw: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`window_partition`: [B * nWin, window * window, C] -> [B, h, w, C]."""
    hp, wp = padded_hw
    h, w = hw
    c = windows.shape[-1]
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.view(b, hp // window, wp // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, hp, wp, c)[:, :h, :w]


def resample_grid_pos_embed(pos_embed: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Resamples a square position embedding with one class row to another grid.

    pos_embed: [1, 1 + g*g, C] -> [1, 1 + h*w, C] (class row first and unchanged), bicubic,
    align_corners=False, no antialiasing (as the published code). Same grid: returned as is.
    """
    g = int(round((pos_embed.shape[1] - 1) ** 0.5))
    if (g, g) == tuple(grid_hw):
        return pos_embed
    dim = pos_embed.shape[-1]
    grid = pos_embed[:, 1:].float().reshape(1, g, g, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(grid_hw), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :1], grid], dim=1)


def sincos_pos_embed(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2D sine-cosine embedding (as MAE's) with a zero class row: [1, 1 + grid*grid, dim]."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    coords = torch.arange(grid, dtype=torch.float64)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    parts = []
    for pos in (xs.flatten(), ys.flatten()):
        angles = pos[:, None] * omega[None]
        parts += [angles.sin(), angles.cos()]
    emb = torch.cat(parts, dim=1)
    emb = torch.nn.functional.pad(emb, (0, dim - emb.shape[1]))
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), emb]).unsqueeze(0).float()


def local_window_size(grid_hw: tuple[int, int]) -> int:
    """Side of the square attention windows of ``--use_local_window`` (docs/method.md, section 3):
    half the token grid's height, ``h // 2`` (the published rule: 2 window rows; the width is
    split into as many windows of that side as it takes, zero-padded)."""
    return grid_hw[0] // 2


def explicit_attention_block(block: Block, x: torch.Tensor) -> torch.Tensor:
    """``block`` on x [B, N, C] with the attention arithmetic of the published code (timm 0.3's:
    the [N, N] score matrix materialised, softmax, then the values; every row computed) instead of
    SDPA. The restated published loops (evaluation/published_loop.py, training/published_step.py)
    use it, so that they cost what the published code costs."""
    attn = block.attn
    b, n, c = x.shape
    q, k, v = attn.qkv(block.norm1(x)).view(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    scores = (q @ k.transpose(-2, -1)) * attn.head_dim ** -0.5
    out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
    x = x + block.drop_path(attn.proj(out))
    return x + block.drop_path(block.mlp(block.norm2(x)))
