"""Per-video propagation state (spec section 5). Holds no weights.

For each object: its reference memory (the frame where it was annotated, with its mask) and,
from the second frame after that on, the previous frame's memory with the object's SOFT
probability. Only the previous frame and its probabilities are kept, so memory use does not
grow with the video. Tensors here are padded (H, W multiples of 16).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from model.aggregate import aggregate
from util.device import autocast_for


@dataclass
class _Pending:
    """A frame whose memory is encoded lazily, when (if) a next frame arrives."""

    frame: torch.Tensor          # [1, 3, H, W]
    probs: torch.Tensor          # [K, H, W] soft probabilities of the tracked objects
    new_ids: list[int]           # objects annotated on this frame
    new_masks: torch.Tensor | None  # [K_new, H, W] their one-hot masks


class InferenceCore:
    """Streams frames through a SimVOS network.

    ``step(frame, new_masks)`` takes one padded frame [1, 3, H, W] and, optionally, the one-hot
    masks {object id: [H, W]} of objects first annotated on it; it returns the object ids in
    channel order and the aggregated probabilities [K+1, H, W] (background first).
    """

    def __init__(self, model, amp: bool = False, max_objects_per_batch: int | None = None):
        self.model = model
        self.device = next(model.parameters()).device
        self.amp = amp
        self.max_objects = max_objects_per_batch
        self.object_ids: list[int] = []
        self.reference: dict[int, torch.Tensor] = {}  # id -> [M1, C]
        self.previous: dict[int, torch.Tensor] = {}   # id -> [M2, C]
        self.pending: _Pending | None = None

    @torch.no_grad()
    def step(self, frame: torch.Tensor, new_masks: dict[int, torch.Tensor] | None = None) -> tuple[list[int], torch.Tensor]:
        new_masks = new_masks or {}
        with autocast_for(self.device, self.amp):
            self._encode_pending()
            probs = self._segment(frame) if self.reference else frame.new_zeros(0, *frame.shape[-2:])
        ids = list(self.object_ids)
        if new_masks:
            probs, ids = self._add_objects(probs, ids, new_masks)
        probs = aggregate(probs.float(), dim=0) if ids else probs.new_ones(1, *frame.shape[-2:])
        self.object_ids = ids
        new_ids = sorted(new_masks)
        self.pending = _Pending(frame, probs[1:], new_ids,
                                torch.stack([new_masks[i] for i in new_ids]).float() if new_ids else None)
        return ids, probs

    def _add_objects(self, probs, ids, new_masks):
        """Objects annotated on this frame: their mask replaces every prediction where they are
        (an id already tracked is re-annotated: this frame becomes its reference)."""
        region = torch.stack(list(new_masks.values())).sum(0) > 0.5
        probs = probs * ~region
        merged = dict(zip(ids, probs))
        merged.update({i: m.to(probs.dtype) for i, m in new_masks.items()})
        ids = sorted(merged)
        return torch.stack([merged[i] for i in ids]), ids

    def _encode_pending(self) -> None:
        """Memory from the previous frame: new objects' reference, everyone's previous-frame memory."""
        p = self.pending
        if p is None:
            return
        model = self.model
        if p.new_ids:
            refs = model.encode_memory(p.frame, p.new_masks.unsqueeze(0))[0]
            self.reference.update(zip(p.new_ids, refs))
        old = [i for i in self.object_ids if i not in p.new_ids]
        if old:
            # Every object's soft probability; the prototype weights use all of them together.
            prev = model.encode_memory(p.frame, p.probs.unsqueeze(0))[0]
            channel = {i: c for c, i in enumerate(self.object_ids)}
            self.previous.update({i: prev[channel[i]] for i in old})
        for i in p.new_ids:
            self.previous.pop(i, None)
        self.pending = None

    def _memory(self, obj: int) -> torch.Tensor:
        ref = self.reference[obj]
        return torch.cat([ref, self.previous[obj]]) if obj in self.previous else ref

    def _segment(self, frame: torch.Tensor) -> torch.Tensor:
        """Sigmoid probabilities [K, H, W] of the tracked objects on ``frame``."""
        model = self.model
        query = model.encode_query(frame)
        grid = model.grid_size(frame)
        groups: dict[int, list[int]] = {}
        for obj in self.object_ids:  # objects with memories of equal length run as one batch
            groups.setdefault(self._memory(obj).shape[0], []).append(obj)
        out = {}
        for members in groups.values():
            step = self.max_objects or len(members)
            for start in range(0, len(members), step):
                chunk = members[start:start + step]
                memory = torch.stack([self._memory(o) for o in chunk]).unsqueeze(0)
                logits = model.segment(memory, query, grid)[0]
                out.update(zip(chunk, torch.sigmoid(logits.float())))
        return torch.stack([out[o] for o in self.object_ids])
