"""Per-video propagation state (docs/method.md, section 5). Holds no weights.

The engine keeps the objects (ids in channel order), batches objects with memories of equal length
through the network, and aggregates their probabilities; which frames each object remembers is the
memory policy's (inference_core/memory.py). A frame's memory is encoded lazily, when a next frame
arrives, so only the last frame and its probabilities are kept: memory use does not grow with the
video. Tensors here are padded (H, W multiples of 16). Frames may come in any order (backward
propagation feeds them last to first); ``frame_index`` only names them for the memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from inference_core.memory import PublishedMemory
from model.aggregate import aggregate
from util.device import autocast_for


@dataclass
class _Pending:
    """A frame whose memory is encoded lazily, when (if) a next frame arrives."""

    index: int
    frame: torch.Tensor             # [1, 3, H, W]
    probs: torch.Tensor             # [K, H, W] soft probabilities of the tracked objects
    new_ids: list[int]              # objects annotated on this frame
    new_masks: torch.Tensor | None  # [K_new, H, W] their one-hot masks


class InferenceCore:
    """Streams frames through a SimVOS network.

    ``step(frame, new_masks, frame_index)`` takes one padded frame [1, 3, H, W] and, optionally,
    the one-hot masks {object id: [H, W]} of objects annotated on it (new ones, or corrections of
    tracked ones); it returns the object ids in channel order and the aggregated probabilities
    [K+1, H, W] (background first). ``memory``: a fresh memory policy object (default: published).
    """

    def __init__(self, model, amp: bool = False, max_objects_per_batch: int | None = None,
                 memory: PublishedMemory | None = None):
        self.model = model
        self.device = next(model.parameters()).device
        self.amp = amp
        self.max_objects = max_objects_per_batch
        self.memory = memory if memory is not None else PublishedMemory()
        self.object_ids: list[int] = []
        self.pending: _Pending | None = None
        self.steps = 0

    @torch.no_grad()
    def step(self, frame: torch.Tensor, new_masks: dict[int, torch.Tensor] | None = None,
             frame_index: int | None = None) -> tuple[list[int], torch.Tensor]:
        new_masks = new_masks or {}
        index = self.steps if frame_index is None else frame_index
        self.steps += 1
        with autocast_for(self.device, self.amp):
            self._encode_pending()  # after it, every tracked object has a reference
            ids = list(self.object_ids)
            probs = self._segment(frame, ids) if ids else frame.new_zeros(0, *frame.shape[-2:])
        if new_masks:
            probs, ids = self._add_objects(probs, ids, new_masks)
        probs = aggregate(probs.float(), dim=0) if ids else probs.new_ones(1, *frame.shape[-2:])
        self.object_ids = ids
        new_ids = sorted(new_masks)
        self.pending = _Pending(index, frame, probs[1:], new_ids,
                                torch.stack([new_masks[i] for i in new_ids]).float() if new_ids else None)
        return ids, probs

    def _add_objects(self, probs, ids, new_masks):
        """Objects annotated on this frame: their mask replaces every prediction where they are."""
        region = torch.stack(list(new_masks.values())).sum(0) > 0.5
        probs = probs * ~region
        merged = dict(zip(ids, probs))
        merged.update({i: m.to(probs.dtype) for i, m in new_masks.items()})
        ids = sorted(merged)
        return torch.stack([merged[i] for i in ids]), ids

    def _encode_pending(self) -> None:
        """Memory from the previous frame: annotated objects' references, the others' previous frame."""
        p = self.pending
        if p is None:
            return
        model = self.model
        if p.new_ids:
            refs = model.encode_memory(p.frame, p.new_masks.unsqueeze(0))[0]
            for obj, ref in zip(p.new_ids, refs):
                self.memory.add_reference(obj, p.index, ref)
        old = [i for i in self.object_ids if i not in p.new_ids]
        if old:
            # Every object's soft probability; the prototype weights use all of them together.
            prev = model.encode_memory(p.frame, p.probs.unsqueeze(0))[0]
            channel = {i: c for c, i in enumerate(self.object_ids)}
            for obj in old:
                self.memory.update_previous(obj, prev[channel[obj]])
        self.pending = None

    def _segment(self, frame: torch.Tensor, objects: list[int]) -> torch.Tensor:
        """Sigmoid probabilities [K, H, W] of ``objects`` on ``frame``."""
        model = self.model
        query = model.encode_query(frame)
        grid = model.grid_size(frame)
        groups: dict[int, list[int]] = {}
        for obj in objects:  # objects with memories of equal length run as one batch
            groups.setdefault(self.memory.length(obj), []).append(obj)
        out = {}
        for members in groups.values():
            step = self.max_objects or len(members)
            for start in range(0, len(members), step):
                chunk = members[start:start + step]
                memory = torch.stack([self.memory.read(o) for o in chunk]).unsqueeze(0)
                logits = model.segment(memory, query, grid)[0]
                out.update(zip(chunk, torch.sigmoid(logits.float())))
        return torch.stack([out[o] for o in objects])
