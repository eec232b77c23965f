"""One walk through a video's frames (docs/method.md, section 5). Holds no weights.

The engine keeps the tracked objects (ids in channel order), batches objects with memories of equal
length through the network, and aggregates their probabilities; which frames each object remembers
is the memory policy's (inference_core/memory.py). A frame's previous-frame memory is encoded
lazily, when a next frame arrives, so only the last frame and its probabilities are kept: memory use
does not grow with the video. Tensors here are padded (H, W multiples of 16). A walk goes forward or
backward; ``frame_index`` only names frames for the memory. The annotations and the order of the
walk are the session's (inference_core/session.py).

With ``independent`` objects each object is segmented against the background only, exactly as if
it were the only object: its references and previous-frame memory are encoded from its own mask
alone, its probability is aggregated with the background alone, and an annotation of one object
changes no other. Their masks may overlap; the background channel is then ``1 - max_k p_k``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from inference_core.memory import Memory, PublishedMemory
from model.aggregate import aggregate
from util.device import autocast_for


@dataclass
class FrameAnnotation:
    """What the engine needs of an annotated frame: masks {id: one-hot [H, W]} of the objects it
    names, their encoded references {id: [M, C]}, and whether it is complete (every tracked object
    it does not name is absent there, and takes ``absent_reference`` as its reference) or partial
    (it only adds or corrects the objects it names)."""

    masks: dict[int, torch.Tensor]
    references: dict[int, torch.Tensor]
    complete: bool = True
    absent_reference: torch.Tensor | None = None  # [M, C]: the frame with an empty mask (complete ones)


@dataclass
class _Pending:
    """A frame whose previous-frame memory is encoded lazily, when (if) a next frame arrives."""

    index: int
    frame: torch.Tensor     # [1, 3, H, W]
    probs: torch.Tensor     # [K, H, W] soft probabilities of the tracked objects
    annotated: list[int]    # objects annotated on this frame (their reference stands for it)


def independent_probs(object_probs: torch.Tensor) -> torch.Tensor:
    """Per-object probabilities [K, H, W] -> [K+1, H, W]: each object aggregated with the background
    alone (what it would be as the only object), the background channel ``1 - max_k``."""
    objects = aggregate(object_probs[None], dim=0)[1]   # one aggregation per object, all at once
    return torch.cat([1 - objects.amax(0, keepdim=True), objects])


class InferenceCore:
    """Streams the frames of one walk through a SimVOS network.

    ``start(memory, tracked)`` begins a walk with a memory (references already in it) and the
    objects tracked from its first frame; ``step(frame, index, annotation)`` takes one padded frame
    [1, 3, H, W] (and the frame's :class:`FrameAnnotation`, if any) and returns the object ids in
    channel order and the aggregated probabilities [K+1, H, W] (background first).
    ``encode_references`` encodes an annotation, segmenting nothing.
    """

    def __init__(self, model, amp: bool = False, max_objects_per_batch: int | None = None,
                 independent: bool = False):
        self.model = model
        self.independent = independent
        self.device = next(model.parameters()).device
        self.amp = amp
        self.max_objects_per_batch = max_objects_per_batch
        self.memory: Memory = PublishedMemory()
        self.object_ids: list[int] = []
        self.pending: _Pending | None = None

    @torch.no_grad()
    def encode_references(self, frame: torch.Tensor, masks: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
        """frame [1, 3, H, W], masks {id: [H, W]} (all objects of the frame together: the prototype
        weights of one depend on the others) -> {id: [M, C]}. An empty mask (any id, 0 by the
        session) gives the reference of an object absent from the frame: the same for every
        object, since an empty mask never wins a pixel of the prototype weights."""
        if not masks:
            return {}
        if self.independent and len(masks) > 1:
            return {i: self.encode_references(frame, {i: masks[i]})[i] for i in sorted(masks)}
        ids = sorted(masks)
        with autocast_for(self.device, self.amp):
            refs = self.model.encode_memory(frame, torch.stack([masks[i] for i in ids]).float().unsqueeze(0))[0]
        return dict(zip(ids, refs))

    def start(self, memory: Memory, tracked: list[int]) -> None:
        self.memory = memory
        self.object_ids = sorted(tracked)
        self.pending = None

    def snapshot(self) -> dict:
        """The walk's state after its last step, on the CPU: the memory, the tracked objects and the
        frame whose previous-frame memory is still to be encoded (see :meth:`restore`)."""
        p = self.pending
        return {"memory": self.memory.state(), "object_ids": list(self.object_ids),
                "pending": None if p is None else {"index": p.index, "frame": p.frame.cpu().clone(),
                                                   "probs": p.probs.cpu().clone(), "annotated": list(p.annotated)}}

    def restore(self, memory: Memory, snapshot: dict) -> None:
        """Continues the walk of :meth:`snapshot` with ``memory`` (an empty memory of its policy):
        the next steps give exactly what they would have given in that walk."""
        memory.load_state(snapshot["memory"], self.device)
        self.memory, self.object_ids = memory, list(snapshot["object_ids"])
        p = snapshot["pending"]
        self.pending = None if p is None else _Pending(p["index"], p["frame"].to(self.device),
                                                       p["probs"].to(self.device), list(p["annotated"]))

    @torch.no_grad()
    def step(self, frame: torch.Tensor, frame_index: int,
             annotation: FrameAnnotation | None = None) -> tuple[list[int], torch.Tensor]:
        annotated = sorted(annotation.masks) if annotation else []
        with autocast_for(self.device, self.amp):
            self._encode_pending()  # after it, every tracked object has a reference
            for obj in annotated:
                self.memory.add_reference(obj, frame_index, annotation.references[obj])
            if annotation is not None and annotation.complete:
                others = []         # every tracked object is named or absent: nothing to segment
                for obj in self.object_ids:
                    if obj not in annotation.masks:
                        self.memory.add_reference(obj, frame_index, annotation.absent_reference)
                annotated = sorted(set(annotated) | set(self.object_ids))
            else:
                others = [i for i in self.object_ids if i not in annotation.masks] if annotation else self.object_ids
            probs = self._segment(frame, others) if others else frame.new_zeros(0, *frame.shape[-2:])
        ids = others
        if annotation is not None:
            probs, ids = self._annotate(probs, others, annotation)
        if not ids:
            probs = probs.new_ones(1, *frame.shape[-2:])
        elif self.independent:
            probs = independent_probs(probs.float())
        else:
            probs = aggregate(probs.float(), dim=0)
        self.object_ids = ids
        self.pending = _Pending(frame_index, frame, probs[1:], annotated)
        return ids, probs

    def _annotate(self, probs, others, annotation: FrameAnnotation):
        """The annotated objects' masks replace every prediction where they are; on a complete
        annotation the tracked objects it does not name are absent (zero)."""
        merged = dict(zip(others, probs))
        if annotation.masks and self.independent:
            merged.update({i: m.to(probs.dtype) for i, m in annotation.masks.items()})
        elif annotation.masks:
            region = torch.stack(list(annotation.masks.values())).sum(0) > 0.5
            merged = {i: p * ~region for i, p in merged.items()}
            merged.update({i: m.to(probs.dtype) for i, m in annotation.masks.items()})
        ids = sorted(set(self.object_ids) | set(merged))
        zero = probs.new_zeros(probs.shape[-2:])
        return (torch.stack([merged.get(i, zero) for i in ids]) if ids else probs), ids

    def _encode_pending(self) -> None:
        """Previous-frame memory of the objects not annotated on the previous frame."""
        p = self.pending
        if p is None:
            return
        old = [i for i in self.object_ids if i not in p.annotated]
        if old:
            channel = {i: c for c, i in enumerate(self.object_ids)}
            if self.independent:  # each object's own probability, encoded alone
                for obj in old:
                    prev = self.model.encode_memory(p.frame, p.probs[channel[obj]][None, None])[0, 0]
                    self.memory.update_previous(obj, prev)
            else:  # every object's soft probability; the prototype weights use all of them together
                prev = self.model.encode_memory(p.frame, p.probs.unsqueeze(0))[0]
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
            step = self.max_objects_per_batch or len(members)
            for start in range(0, len(members), step):
                chunk = members[start:start + step]
                memory = torch.stack([self.memory.read(o) for o in chunk]).unsqueeze(0)
                logits = model.segment(memory, query, grid)[0]
                out.update(zip(chunk, torch.sigmoid(logits.float())))
        return torch.stack([out[o] for o in objects])
