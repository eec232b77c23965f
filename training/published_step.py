"""The published training step, restated (docs/method.md, section 7): each target of each sample through
the whole network on its own (its reference memory, then every row of every joint block over
[memory; query], the attention scores materialised), sigmoid times the selector, soft aggregation,
the bootstrapped loss; fp16 autocast with a grad scaler on CUDA; Adam without the fused kernel.

Written independently of training/trainer.py, which batches the targets, skips absent ones and
computes only the query rows of the last block: the tests check that both give the same loss and
gradients, and the GPU check (benchmarks/gpu_check.py) times ours against this one.
"""
from __future__ import annotations

import torch

from model.aggregate import aggregate_logits
from model.losses import pair_loss
from model.token_refine import prototype_weights
from model.vit import explicit_attention_block


def _blocks(blocks, x: torch.Tensor) -> torch.Tensor:
    for blk in blocks:
        x = explicit_attention_block(blk, x)
    return x


def _reference_memory(model, frames: torch.Tensor, masks: torch.Tensor, k: int, grid) -> torch.Tensor:
    """frames [B, 3, S, S], masks [B, 2, S, S] -> target k's memory [B, M, C]."""
    config = model.config
    tokens = model.embed(frames, masks[:, k:k + 1])[:, 0]
    if config.layer_index == 0:
        return tokens
    tokens = model.within_frame(tokens, grid, explicit_attention=True)
    if not config.use_token_learner:
        return tokens
    w_fg, w_bg = prototype_weights(masks, grid)
    features = tokens.view(tokens.shape[0], *grid, -1)
    return torch.cat([model.tlearner(features, w_fg[:, k:k + 1]), model.tlearner_back(features, w_bg[:, k:k + 1])], 1)


def published_forward(model, frames: torch.Tensor, masks: torch.Tensor, selector: torch.Tensor) -> torch.Tensor:
    """frames [B, 2, 3, S, S] (reference, query), masks [B, 2, 2, S, S] (the targets on each frame),
    selector [B, 2] -> aggregated logits [B, 3, S, S] (background, target 1, target 2)."""
    config = model.config
    reference, query_frames = frames[:, 0], frames[:, 1]
    grid = model.grid_size(query_frames)
    query = model.within_frame(model.embed(query_frames), grid, explicit_attention=True)
    n = query.shape[1]
    probs = []
    for k in range(2):
        x = torch.cat([_reference_memory(model, reference, masks[:, 0], k, grid), query], dim=1)
        x = model.norm(_blocks(model.blocks[config.layer_index:], x))[:, -n:]
        m16 = x.transpose(1, 2).reshape(x.shape[0], -1, *grid)
        logits = model.decode(m16)[:, 0]
        probs.append(torch.sigmoid(logits.float()) * selector[:, k, None, None])
    return aggregate_logits(torch.stack(probs, dim=1), dim=1)


def published_step(model, optimizer, scaler, batch: dict, p: float, device: torch.device, amp: bool) -> torch.Tensor:
    """One optimiser step on ``batch`` (frames, masks, class_map, selector) -> the loss."""
    frames, masks = batch["frames"].to(device), batch["masks"].to(device)
    class_map, selector = batch["class_map"].to(device), batch["selector"].to(device)
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
        logits = published_forward(model, frames, masks, selector)
    loss = pair_loss(logits, class_map, selector, p)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def published_optimizer(model, lr: float = 2e-5, weight_decay: float = 1e-7) -> torch.optim.Adam:
    """Adam as published (lr 2e-5, weight decay 1e-7), torch's default (unfused) implementation."""
    return torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=lr, weight_decay=weight_decay)
