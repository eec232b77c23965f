"""Named model presets.

A preset fixes the ViT size; the way reference and query are joined (``layer_index``, token
refinement, local windows) comes from the published flags and is applied on top with
:func:`config_from_flags`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from util.errors import InputError


TRAIN_IMG_SIZE = 384  # the published square training crop; pos_embed_new holds its (384/16)^2 grid


class ConfigError(InputError, ValueError):
    """Flags that do not describe a valid network (named in the message)."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides the shapes of a SimVOS network.

    Attributes:
        backbone_type: preset name (``vit_tiny``, ``vit_small``, ``vit_base``, ``vit_large``).
        embed_dim, depth, num_heads, patch_size, mlp_ratio: the plain ViT.
        decoder_channels: (stride-16/8 width, stride-4 width) of the FPN heads and STCN decoder;
            the published networks use (512, 256).
        layer_index: 0 = joint space-time attention over all blocks (SimVOS-B/L); L > 0 = each
            frame passes blocks[0:L] on its own, blocks[L:] are joint (SimVOS-BS uses 4). The
            default, 4, is the published scripts' ``--layer_index`` default.
        use_token_learner: summarise each reference frame into prototypes (needs layer_index > 0).
        num_bases_foreground, num_bases_background: prototypes per reference frame.
        use_local_window: window attention in the within-frame blocks.
        train_img_size: square training size; ``pos_embed_new`` holds a (size/patch)^2 grid.
    """

    backbone_type: str
    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int = 16
    mlp_ratio: float = 4.0
    decoder_channels: tuple[int, int] = (512, 256)
    layer_index: int = 4
    use_token_learner: bool = False
    num_bases_foreground: int = 384
    num_bases_background: int = 384
    use_local_window: bool = False
    train_img_size: int = TRAIN_IMG_SIZE

    @property
    def train_grid(self) -> int:
        return self.train_img_size // self.patch_size

    @property
    def prototypes_per_frame(self) -> int:
        return self.num_bases_foreground + self.num_bases_background

    def validate(self) -> "ModelConfig":
        if not 0 <= self.layer_index < self.depth:
            raise ConfigError(f"--layer_index must be in [0, {self.depth - 1}] for {self.backbone_type}, got {self.layer_index}")
        if self.use_token_learner and self.layer_index == 0:
            raise ConfigError("--use_token_learner needs --layer_index > 0 (SimVOS-BS uses --layer_index 4)")
        if self.use_local_window and self.layer_index == 0:
            raise ConfigError("--use_local_window needs --layer_index > 0: windows apply to the within-frame blocks")
        if self.train_img_size % self.patch_size:
            raise ConfigError(f"image size {self.train_img_size} is not a multiple of the patch size {self.patch_size}")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        return self


PRESETS: dict[str, ModelConfig] = {
    # Small sizes (timm's ViT-Ti/S dims) for CPU tests, the demo and small GPUs; decoder narrowed.
    "vit_tiny": ModelConfig("vit_tiny", embed_dim=192, depth=12, num_heads=3, decoder_channels=(128, 64)),
    "vit_small": ModelConfig("vit_small", embed_dim=384, depth=12, num_heads=6, decoder_channels=(256, 128)),
    # Published sizes.
    "vit_base": ModelConfig("vit_base", embed_dim=768, depth=12, num_heads=12),
    "vit_large": ModelConfig("vit_large", embed_dim=1024, depth=24, num_heads=16),
}


def config_from_flags(backbone_type: str = "vit_base", **flags) -> ModelConfig:
    """Builds a validated config from the published command-line flags.

    SimVOS-B: ``vit_base, layer_index=0``; SimVOS-BS: ``vit_base, layer_index=4,
    use_token_learner=True``; SimVOS-L: ``vit_large, layer_index=0``. ``flags`` are
    :class:`ModelConfig` fields (layer_index, use_token_learner, num_bases_foreground, ...,
    train_img_size, or e.g. ``depth`` for tiny test networks); a field not given keeps its default.
    """
    if backbone_type not in PRESETS:
        raise ConfigError(f"unknown --backbone_type {backbone_type!r}; choose one of {', '.join(PRESETS)}")
    unknown = sorted(set(flags) - {f.name for f in dataclasses.fields(ModelConfig)})
    if unknown:
        raise TypeError(f"config_from_flags: unknown model flags {', '.join(unknown)}")
    return dataclasses.replace(PRESETS[backbone_type], **flags).validate()
