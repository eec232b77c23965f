"""Multi-scale heads on the stride-16 query tokens and the STCN-style decoder."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)


class ResBlock(nn.Module):
    """x' + conv(relu(conv(relu(x)))), x' = x or conv3x3(x) (``downsample``) when widths differ."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out)
        self.conv2 = _conv3x3(c_out, c_out)
        self.downsample = _conv3x3(c_in, c_out) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.conv2(F.relu(self.conv1(F.relu(x))))
        return (x if self.downsample is None else self.downsample(x)) + r


class UpsampleBlock(nn.Module):
    """conv3x3(skip) + bilinear x2 upsample(up), then a ResBlock."""

    def __init__(self, skip_c: int, up_c: int, out_c: int):
        super().__init__()
        self.skip_conv = _conv3x3(skip_c, up_c)
        self.out_conv = ResBlock(up_c, out_c)

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        x = self.skip_conv(skip) + F.interpolate(up, scale_factor=2, mode="bilinear", align_corners=False)
        return self.out_conv(x)


class STCNDecoder(nn.Module):
    """(m16 [B, C, h, w], m8 [B, c8, 2h, 2w], m4 [B, c4, 4h, 4w]) -> logits [B, 1, 16h, 16w]."""

    def __init__(self, vit_dim: int, c8: int = 512, c4: int = 256):
        super().__init__()
        self.compress = ResBlock(vit_dim, c8)
        self.up_16_8 = UpsampleBlock(c8, c8, c4)
        self.up_8_4 = UpsampleBlock(c4, c4, c4)
        self.pred = _conv3x3(c4, 1)

    def forward(self, m16: torch.Tensor, m8: torch.Tensor, m4: torch.Tensor) -> torch.Tensor:
        x = self.compress(m16)
        x = self.up_16_8(m8, x)
        x = self.up_8_4(m4, x)
        x = self.pred(F.relu(x))
        return F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of [B, C, H, W] (parameter prefix ``ln``)."""

    def __init__(self, dim: int):
        super().__init__()
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def build_fpn_heads(vit_dim: int, c8: int = 512, c4: int = 256) -> tuple[nn.Sequential, nn.Sequential]:
    """(fpn1: m16 -> m4 with c4 channels, fpn2: m16 -> m8 with c8 channels), published layout."""
    fpn1 = nn.Sequential(
        nn.ConvTranspose2d(vit_dim, vit_dim, kernel_size=2, stride=2),
        ChannelLayerNorm(vit_dim),
        nn.GELU(),
        nn.ConvTranspose2d(vit_dim, c4, kernel_size=2, stride=2),
    )
    fpn2 = nn.Sequential(nn.ConvTranspose2d(vit_dim, c8, kernel_size=2, stride=2))
    return fpn1, fpn2
