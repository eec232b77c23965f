"""The published propagation loop, restated (docs/method.md, section 5): every frame and every probability
of the video held in memory, each object decoded on its own, every row of every block computed, the
attention scores materialised (the published arithmetic: model.vit.explicit_attention_block).

Written independently of the engine (inference_core/engine.py): the reference it is compared with in
the tests (equal probabilities) and in the benchmarks (speed, memory)."""
from __future__ import annotations

import numpy as np
import torch

from model.inputs import centre_pad, image_to_tensor, pad
from model.aggregate import aggregate
from model.token_refine import prototype_weights
from model.vit import explicit_attention_block


@torch.no_grad()
def published_loop(model, frames: list[np.ndarray], first_labels: np.ndarray) -> tuple[torch.Tensor, list[int]]:
    """-> (probabilities [K+1, T, H, W] unpadded, object ids)."""
    h, w = frames[0].shape[:2]
    padding = centre_pad(h, w)
    device = next(model.parameters()).device
    images = [pad(image_to_tensor(f, device), padding) for f in frames]
    labels = pad(torch.from_numpy(first_labels).to(device), padding)
    ids = [int(i) for i in np.unique(first_labels) if i]
    masks = torch.stack([(labels == i).float() for i in ids])
    T, K = len(frames), len(ids)
    prob = torch.zeros(K + 1, T, *masks.shape[-2:], device=device)
    prob[:, 0] = aggregate(masks, dim=0)
    cfg = model.config
    grid = model.grid_size(images[0])

    def memory_of(frame, obj_masks, k):
        if cfg.layer_index == 0:
            return model.embed(frame, obj_masks[k][None, None])[:, 0]
        feats = model.within_frame(model.embed(frame, obj_masks[k][None, None])[:, 0], grid, explicit_attention=True)
        if not cfg.use_token_learner:
            return feats
        w_fg, w_bg = prototype_weights(obj_masks[None], grid)
        f = feats.view(1, *grid, -1)
        return torch.cat([model.tlearner(f, w_fg[:, k:k + 1]), model.tlearner_back(f, w_bg[:, k:k + 1])], dim=1)

    first = [memory_of(images[0], masks, k) for k in range(K)]
    for t in range(1, T):
        query = model.within_frame(model.embed(images[t]), grid, explicit_attention=True)
        out = []
        for k in range(K):
            mem = first[k] if t == 1 else torch.cat([first[k], memory_of(images[t - 1], prob[1:, t - 1], k)], dim=1)
            out.append(torch.sigmoid(_segment_full(model, mem[:, None], query, grid))[0, 0])
        prob[:, t] = aggregate(torch.stack(out), dim=0)
    top, left = padding[2], padding[0]
    return prob[:, :, top:top + h, left:left + w], ids


def _segment_full(model, memory, query, grid):
    """The joint stage without the last-block pruning (every row of every block computed)."""
    b, k, _, c = memory.shape
    x = torch.cat([memory, query.unsqueeze(1).expand(b, k, *query.shape[1:])], dim=2).flatten(0, 1)
    for blk in model.blocks[model.config.layer_index:]:
        x = explicit_attention_block(blk, x)
    x = model.norm(x)[:, -query.shape[1]:]
    m16 = x.transpose(1, 2).reshape(b * k, c, *grid)
    logits = model.decode(m16)
    return logits.view(b, k, *logits.shape[-2:])
