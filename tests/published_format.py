"""Random checkpoints in the published formats (docs/method.md, section 6), written from the documented key
list independently of model/, so that loading is checked against the format, not against itself."""
from __future__ import annotations

import torch


def _backbone(dim: int, depth: int, in_grid: int) -> dict[str, tuple]:
    shapes = {"cls_token": (1, 1, dim), "pos_embed": (1, 1 + in_grid * in_grid, dim),
              "patch_embed.proj.weight": (dim, 3, 16, 16), "patch_embed.proj.bias": (dim,),
              "norm.weight": (dim,), "norm.bias": (dim,)}
    for i in range(depth):
        p = f"blocks.{i}."
        shapes.update({p + "norm1.weight": (dim,), p + "norm1.bias": (dim,),
                       p + "attn.qkv.weight": (3 * dim, dim), p + "attn.qkv.bias": (3 * dim,),
                       p + "attn.proj.weight": (dim, dim), p + "attn.proj.bias": (dim,),
                       p + "norm2.weight": (dim,), p + "norm2.bias": (dim,),
                       p + "mlp.fc1.weight": (4 * dim, dim), p + "mlp.fc1.bias": (4 * dim,),
                       p + "mlp.fc2.weight": (dim, 4 * dim), p + "mlp.fc2.bias": (dim,)})
    return shapes


def _resblock(prefix: str, c_in: int, c_out: int) -> dict[str, tuple]:
    shapes = {prefix + "conv1.weight": (c_out, c_in, 3, 3), prefix + "conv1.bias": (c_out,),
              prefix + "conv2.weight": (c_out, c_out, 3, 3), prefix + "conv2.bias": (c_out,)}
    if c_in != c_out:
        shapes.update({prefix + "downsample.weight": (c_out, c_in, 3, 3), prefix + "downsample.bias": (c_out,)})
    return shapes


def _token_learner(prefix: str, dim: int, n: int) -> dict[str, tuple]:
    return {prefix + "norm.weight": (dim,), prefix + "norm.bias": (dim,),
            prefix + "input_norm.weight": (dim + 1,), prefix + "input_norm.bias": (dim + 1,),
            prefix + "patch_to_cluster_atten.0.weight": (dim // 4, dim + 1, 3, 3),
            prefix + "patch_to_cluster_linear.weight": (n, dim // 4), prefix + "patch_to_cluster_linear.bias": (n,)}


def simvos_shapes(dim: int, depth: int, grid: int = 24, c8: int = 512, c4: int = 256,
                  n_fg: int | None = None, n_bg: int | None = None) -> dict[str, tuple]:
    shapes = _backbone(dim, depth, 14)
    shapes.update({"pos_embed_new": (1, 1 + grid * grid, dim), "fc_norm.weight": (dim,), "fc_norm.bias": (dim,),
                   "head.weight": (1000, dim), "head.bias": (1000,),
                   "mask_patch_embed.proj.weight": (dim, 1, 16, 16), "mask_patch_embed.proj.bias": (dim,),
                   "fpn1.0.weight": (dim, dim, 2, 2), "fpn1.0.bias": (dim,),
                   "fpn1.1.ln.weight": (dim,), "fpn1.1.ln.bias": (dim,),
                   "fpn1.3.weight": (dim, c4, 2, 2), "fpn1.3.bias": (c4,),
                   "fpn2.0.weight": (dim, c8, 2, 2), "fpn2.0.bias": (c8,),
                   "stcn_decoder.up_16_8.skip_conv.weight": (c8, c8, 3, 3), "stcn_decoder.up_16_8.skip_conv.bias": (c8,),
                   "stcn_decoder.up_8_4.skip_conv.weight": (c4, c4, 3, 3), "stcn_decoder.up_8_4.skip_conv.bias": (c4,),
                   "stcn_decoder.pred.weight": (1, c4, 3, 3), "stcn_decoder.pred.bias": (1,)})
    shapes.update(_resblock("stcn_decoder.compress.", dim, c8))
    shapes.update(_resblock("stcn_decoder.up_16_8.out_conv.", c8, c4))
    shapes.update(_resblock("stcn_decoder.up_8_4.out_conv.", c4, c4))
    if n_fg is not None:
        shapes.update(_token_learner("tlearner.", dim, n_fg))
        shapes.update(_token_learner("tlearner_back.", dim, n_bg))
    return shapes


def mae_shapes(dim: int, depth: int, decoder_dim: int = 32) -> dict[str, tuple]:
    shapes = _backbone(dim, depth, 14)
    shapes.update({"mask_token": (1, 1, decoder_dim), "decoder_pos_embed": (1, 197, decoder_dim),
                   "decoder_embed.weight": (decoder_dim, dim), "decoder_embed.bias": (decoder_dim,),
                   "decoder_blocks.0.norm1.weight": (decoder_dim,), "decoder_norm.weight": (decoder_dim,),
                   "decoder_pred.weight": (768, decoder_dim), "decoder_pred.bias": (768,)})
    return shapes


def random_state(shapes: dict[str, tuple], seed: int = 0, prefix: str = "") -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {prefix + k: torch.randn(s, generator=gen) * 0.05 for k, s in shapes.items()}
