"""Memory policies: which encoded frames each object attends to (docs/method.md, section 5).

A memory holds, per object, reference entries (frames where the object was annotated, encoded
with its mask) and at most one previous-frame entry (the last frame, encoded with the object's
soft probability). ``read(obj)`` gives the tokens or prototypes the joint stage attends to,
``[M, C]``: the references in the order they were added, then the previous frame.

* :class:`PublishedMemory` (the default): one reference, the frame where the object was last
  annotated (a new annotation replaces it), + the previous frame. The published evaluation.
* :class:`KeyframeMemory`: every annotated frame of an object stays a reference (the first one
  always; the most recent ``max_keyframes - 1`` others), + the previous frame. What a user who
  corrects a drifting frame expects: the correction adds to the first annotation, not replaces it.
"""
from __future__ import annotations

import torch

MEMORY_POLICIES = ("published", "keyframes")
DEFAULT_MAX_KEYFRAMES = 4


class PublishedMemory:
    """One reference per object (its latest annotation) + the previous frame."""

    def __init__(self) -> None:
        self.references: dict[int, list[tuple[int, torch.Tensor]]] = {}  # id -> [(frame index, [M, C])]
        self.previous: dict[int, torch.Tensor] = {}                       # id -> [M, C]

    def add_reference(self, obj: int, frame_index: int, memory: torch.Tensor) -> None:
        """``memory`` [M, C]: frame ``frame_index`` encoded with the object's annotated mask. The
        previous-frame entry is dropped: the next frame's previous frame is this reference."""
        self.references[obj] = [(frame_index, memory)]
        self.previous.pop(obj, None)

    def update_previous(self, obj: int, memory: torch.Tensor) -> None:
        """``memory`` [M, C]: the last frame encoded with the object's soft probability."""
        self.previous[obj] = memory

    def reference_frames(self, obj: int) -> list[int]:
        return [index for index, _ in self.references[obj]]

    def read(self, obj: int) -> torch.Tensor:
        """[M, C]: the references then the previous frame."""
        parts = [memory for _, memory in self.references[obj]]
        if obj in self.previous:
            parts.append(self.previous[obj])
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def length(self, obj: int) -> int:
        """Rows of :meth:`read` without concatenating (objects of equal length run as one batch)."""
        return sum(m.shape[0] for _, m in self.references[obj]) + (
            self.previous[obj].shape[0] if obj in self.previous else 0)


class KeyframeMemory(PublishedMemory):
    """Every annotated frame stays a reference: the first one, and the ``max_keyframes - 1`` most
    recent others (a re-annotation of the same frame replaces that frame's entry)."""

    def __init__(self, max_keyframes: int = DEFAULT_MAX_KEYFRAMES) -> None:
        super().__init__()
        if max_keyframes < 1:
            raise ValueError(f"max_keyframes must be at least 1, got {max_keyframes}")
        self.max_keyframes = max_keyframes

    def add_reference(self, obj: int, frame_index: int, memory: torch.Tensor) -> None:
        entries = [e for e in self.references.get(obj, []) if e[0] != frame_index] + [(frame_index, memory)]
        if len(entries) > self.max_keyframes:
            entries = entries[:1] + entries[len(entries) - self.max_keyframes + 1:]
        self.references[obj] = entries
        self.previous.pop(obj, None)


def make_memory(policy: str = "published", max_keyframes: int = DEFAULT_MAX_KEYFRAMES) -> PublishedMemory:
    """A fresh per-video memory of the named policy (``MEMORY_POLICIES``)."""
    if policy == "published":
        return PublishedMemory()
    if policy == "keyframes":
        return KeyframeMemory(max_keyframes)
    raise ValueError(f"unknown memory policy {policy!r}; choose one of {', '.join(MEMORY_POLICIES)}")
