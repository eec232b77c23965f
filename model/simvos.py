"""SimVOS: one ViT over reference frames (with mask embeddings) and the query frame.

Stages (no string-dispatched forward):
  encode_memory(frames, object_masks)  -> memory   [B, K, M, C]  (tokens or prototypes)
  encode_query(frames)                 -> query    [B, N, C]     (within-frame stage done once)
  joint(memory, query, grid)           -> m16      [B, K, C, h, w]  (channels-last strides)
  decode(m16)                          -> logits   [B', 1, H, W]
Objects are a batch dimension (K); they never interact before soft aggregation.
Frames are ImageNet-normalised [B, 3, H, W] with H, W multiples of 16; masks are in [0, 1].
"""
from __future__ import annotations

from functools import partial

import torch
from torch import nn

from model.decoder import STCNDecoder, build_fpn_heads
from model.layers import PatchEmbed
from model.presets import ModelConfig
from model.token_refine import TokenLearner, prototype_weights
from model.vit import Block, explicit_attention_block, local_window_size, resample_grid_pos_embed, sincos_pos_embed, window_partition, window_unpartition
from util.errors import InputError

class SimVOS(nn.Module):
    """The SimVOS network (docs/method.md, sections 1-3): a plain ViT with a second patch embedding
    for masks (``mask_patch_embed``), optional token learners (SimVOS-BS) and an STCN-style decoder.

    Holds weights and no per-video state (that is inference_core's). The stages are separate
    methods (encode_memory, encode_query, joint, decode, segment); ``forward`` is the training
    entry. Built from a :class:`model.presets.ModelConfig`; parameter names are the published ones.
    """

    def __init__(self, config: ModelConfig, drop_path_rate: float = 0.0):
        super().__init__()
        c = config.validate()
        self.config = c
        dim, c8, c4 = c.embed_dim, *c.decoder_channels
        self.patch_embed = PatchEmbed(c.patch_size, 3, dim)
        self.mask_patch_embed = PatchEmbed(c.patch_size, 1, dim)
        # Frozen (S/16)^2 grid + class row, resampled to each frame's grid at run time.
        self.register_buffer("pos_embed_new", sincos_pos_embed(dim, c.train_grid))
        self._position_cache: dict[tuple, torch.Tensor] = {}
        rates = torch.linspace(0, drop_path_rate, c.depth).tolist()
        self.blocks = nn.ModuleList(Block(dim, c.num_heads, c.mlp_ratio, rate) for rate in rates)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fpn1, self.fpn2 = build_fpn_heads(dim, c8, c4)
        self.stcn_decoder = STCNDecoder(dim, c8, c4)
        if c.use_token_learner:
            self.tlearner = TokenLearner(dim, c.num_bases_foreground)
            self.tlearner_back = TokenLearner(dim, c.num_bases_background)
        self.apply(self._init_linear)

    @staticmethod
    def _init_linear(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ embeddings
    def grid_size(self, frames: torch.Tensor) -> tuple[int, int]:
        """Token grid (h, w) of frames [..., H, W]; H and W must be multiples of the patch size."""
        p = self.config.patch_size
        height, width = frames.shape[-2:]
        if height % p or width % p:
            raise ValueError(f"frame size {height}x{width} is not a multiple of {p}: pad frames first")
        return height // p, width // p

    def position_embedding(self, grid_hw: tuple[int, int]) -> torch.Tensor:
        """[1, h*w, C]: ``pos_embed_new`` resampled to the grid, class row dropped.

        Kept per grid between frames (the buffer is frozen; loading weights into it changes its
        version counter, a move its device, and either starts a new entry)."""
        buffer = self.pos_embed_new
        if torch.compiler.is_compiling():
            return resample_grid_pos_embed(buffer, grid_hw)[:, 1:]
        key = (tuple(grid_hw), buffer.device, buffer.dtype, buffer._version)
        cached = self._position_cache.get(key)
        if cached is None:
            if len(self._position_cache) >= 16:
                self._position_cache.clear()
            cached = self._position_cache[key] = resample_grid_pos_embed(buffer, grid_hw)[:, 1:]
        return cached

    def embed(self, frames: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """frames [B, 3, H, W] (+ masks [B, K, H, W]) -> tokens [B, N, C] (or [B, K, N, C] with masks)."""
        tokens = self.patch_embed(frames) + self.position_embedding(self.grid_size(frames))
        if masks is None:
            return tokens
        b, k = masks.shape[:2]
        mask_tokens = self.mask_patch_embed(masks.reshape(b * k, 1, *masks.shape[-2:]).to(frames.dtype))
        return tokens.unsqueeze(1) + mask_tokens.view(b, k, *mask_tokens.shape[1:])

    def within_frame(self, tokens: torch.Tensor, grid_hw: tuple[int, int], explicit_attention: bool = False) -> torch.Tensor:
        """blocks[0:L] on each frame alone (windowed if configured): [B, N, C] -> [B, N, C].
        explicit_attention: the published arithmetic (model.vit.explicit_attention_block), for the
        restated published loops that the tests and benchmarks compare with."""
        blocks = [partial(explicit_attention_block, blk) if explicit_attention else blk
                  for blk in self.blocks[: self.config.layer_index]]
        if not self.config.use_local_window:
            for blk in blocks:
                tokens = blk(tokens)
            return tokens
        h, w = grid_hw
        window = local_window_size(grid_hw)
        if window < 1:
            raise InputError(f"frame of {h}x{w} tokens is too small for --use_local_window (needs at least 2 token rows)")
        x, padded = window_partition(tokens.view(-1, h, w, tokens.shape[-1]), window)
        for blk in blocks:
            x = blk(x)
        return window_unpartition(x, window, padded, grid_hw).reshape(tokens.shape)

    # ------------------------------------------------------------------ stages
    def encode_query(self, frames: torch.Tensor) -> torch.Tensor:
        """Query frames [B, 3, H, W] -> tokens [B, N, C] after the within-frame stage (if any)."""
        return self.within_frame(self.embed(frames), self.grid_size(frames))

    def encode_memory(self, frames: torch.Tensor, object_masks: torch.Tensor) -> torch.Tensor:
        """A reference frame and each object's mask -> that frame's memory for each object.

        frames [B, 3, H, W]; object_masks [B, K, H, W] in [0, 1] (one-hot or soft), all objects
        of the frame together: the prototype weights of one object depend on the others.
        Returns [B, K, M, C] with M = h*w tokens, or N_fg + N_bg prototypes (token learner).
        """
        grid = self.grid_size(frames)
        tokens = self.embed(frames, object_masks)
        if self.config.layer_index == 0:
            return tokens
        b, k, n, c = tokens.shape
        tokens = self.within_frame(tokens.reshape(b * k, n, c), grid)
        if not self.config.use_token_learner:
            return tokens.view(b, k, n, c)
        w_fg, w_bg = prototype_weights(object_masks, grid)
        features = tokens.view(b * k, *grid, c)
        fg = self.tlearner(features, w_fg.reshape(b * k, 1, *grid))
        bg = self.tlearner_back(features, w_bg.reshape(b * k, 1, *grid))
        return torch.cat([fg, bg], dim=1).view(b, k, -1, c)

    def joint(self, memory: torch.Tensor, query: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        """memory [B, K, M, C] + query [B, N, C] -> m16 [B, K, C, h, w].

        blocks[L:] over [memory; query]; the last block computes the query rows only.
        """
        b, k, _, c = memory.shape
        n = query.shape[1]
        # The residual stream keeps the wider dtype: under autocast, prototypes may come out in bf16/fp16
        # while the query tokens are fp32; only the matmuls inside the blocks run in low precision.
        dtype = torch.promote_types(memory.dtype, query.dtype)
        x = torch.cat([memory.to(dtype), query.unsqueeze(1).expand(b, k, n, c).to(dtype)], dim=2).flatten(0, 1)
        blocks = self.blocks[self.config.layer_index:]
        for blk in blocks[:-1]:
            x = blk(x)
        x = self.norm(blocks[-1](x, query_rows=n))
        # Row-major tokens are channels-last pixels: a view, no copy (the decoder's convolutions
        # run channels-last, the layout oneDNN and cuDNN prefer).
        return x.view(b, k, *grid_hw, c).permute(0, 1, 4, 2, 3)

    def decode(self, m16: torch.Tensor) -> torch.Tensor:
        """m16 [B, C, h, w] -> per-object logits [B, 1, 16h, 16w]."""
        return self.stcn_decoder(m16, self.fpn2(m16), self.fpn1(m16))

    def segment(self, memory: torch.Tensor, query: torch.Tensor, grid_hw: tuple[int, int],
                present: torch.Tensor | None = None) -> torch.Tensor:
        """memory [B, K, M, C], query [B, N, C] -> logits [B, K, H, W].

        present [B, K] (bool, optional, on any device): objects to compute; the others' logits are 0 (when none is
        present all are computed, so that every parameter takes part, as DDP needs). Objects never
        interact before aggregation, so the computed ones are exactly those of the full call.
        """
        b, k = memory.shape[:2]
        if present is None or present.all() or not present.any():
            logits = self.decode(self.joint(memory, query, grid_hw).flatten(0, 1))
            return logits.view(b, k, *logits.shape[-2:])
        rows, objects = present.nonzero(as_tuple=True)                          # P present (b, k) pairs
        if rows.device != memory.device:  # a host mask (the trainer's): indices uploaded without a sync
            index = torch.stack([rows, objects])
            rows, objects = (index.pin_memory() if memory.is_cuda else index).to(memory.device, non_blocking=True)
        logits = self.decode(self.joint(memory[rows, objects].unsqueeze(1), query[rows], grid_hw)[:, 0])[:, 0]
        return logits.new_zeros(b, k, *logits.shape[-2:]).index_put((rows, objects), logits)

    def forward(self, memory_frames: torch.Tensor, memory_masks: torch.Tensor, query_frames: torch.Tensor,
                present: torch.Tensor | None = None) -> torch.Tensor:
        """Training entry: memory_frames [B, T, 3, H, W], memory_masks [B, T, K, H, W],
        query_frames [B, 3, H, W] (, present [B, K] bool: see :meth:`segment`)
        -> per-object logits [B, K, H, W]."""
        memory = torch.cat([self.encode_memory(memory_frames[:, t], memory_masks[:, t])
                            for t in range(memory_frames.shape[1])], dim=2)
        return self.segment(memory, self.encode_query(query_frames), self.grid_size(query_frames), present)

def build_model(config: ModelConfig, drop_path_rate: float = 0.0) -> SimVOS:
    return SimVOS(config, drop_path_rate)
