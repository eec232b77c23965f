"""Memory policies: which encoded frames each object attends to (docs/method.md, section 5).

A memory holds, per object, reference entries (frames where the object was annotated, encoded
with its mask) and at most one previous-frame entry (the last frame, encoded with the object's
soft probability). ``read(obj)`` gives the tokens or prototypes the joint stage attends to,
``[M, C]``: the references in the order they were added, then the previous frame.

* :class:`PublishedMemory` (the default): one reference, the frame where the object was last
  annotated on the way (a new annotation replaces it), + the previous frame. The published evaluation.
* :class:`KeyframeMemory`: every annotated frame of an object is a reference (the first one
  always; the most recent ``max_keyframes - 1`` others), + the previous frame. What a user who
  corrects a drifting frame expects: the correction adds to the first annotation, not replaces it.
  A propagation starts with every annotation of the session in it, nearest to its start last.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from util.errors import InputError

MEMORY_POLICIES = ("published", "keyframes")
# References kept per object by the keyframe memory: the first annotation + the 3 latest others. The
# one default of every entry point (the predictor, segment_video.py, the studio). Why 4, not more:
# benchmarks.keyframes finds no gain from a second reference over replacing it (J&F 64.1 vs 65.0 on
# the demo's val set, 47.4 vs 47.3 on the glyph transfer set), while each reference adds a frame's
# tokens to the joint attention (8 instead of 4: about 1.9x the time per frame, docs/benchmarks.md).
DEFAULT_MAX_KEYFRAMES = 4


class Memory(ABC):
    """Per-object references + the previous frame. ``every_annotation``: a propagation starts with
    all of the session's annotations as references (else only those it has passed)."""

    every_annotation: bool = False

    def __init__(self) -> None:
        self.references: dict[int, list[tuple[int, torch.Tensor]]] = {}  # id -> [(frame index, [M, C])]
        self.previous: dict[int, torch.Tensor] = {}                       # id -> [M, C]

    @abstractmethod
    def add_reference(self, obj: int, frame_index: int, memory: torch.Tensor) -> None:
        """``memory`` [M, C]: frame ``frame_index`` encoded with the object's annotated mask. The
        previous-frame entry is dropped: the next frame's previous frame is this reference."""

    def update_previous(self, obj: int, memory: torch.Tensor) -> None:
        """``memory`` [M, C]: the last frame encoded with the object's soft probability."""
        self.previous[obj] = memory

    def reference_frames(self, obj: int) -> list[int]:
        return [index for index, _ in self.references.get(obj, [])]

    def read(self, obj: int) -> torch.Tensor:
        """[M, C]: the references then the previous frame."""
        parts = [memory for _, memory in self.references[obj]]
        if obj in self.previous:
            parts.append(self.previous[obj])
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def state(self) -> dict:
        """The entries as CPU tensors (for :meth:`load_state`: a walk continued exactly elsewhere)."""
        return {"references": {o: [(i, m.cpu().clone()) for i, m in e] for o, e in self.references.items()},
                "previous": {o: m.cpu().clone() for o, m in self.previous.items()}}

    def load_state(self, state: dict, device: torch.device) -> None:
        self.references = {o: [(i, m.to(device)) for i, m in e] for o, e in state["references"].items()}
        self.previous = {o: m.to(device) for o, m in state["previous"].items()}

    def length(self, obj: int) -> int:
        """Rows of :meth:`read` without concatenating (objects of equal length run as one batch)."""
        return sum(m.shape[0] for _, m in self.references[obj]) + (
            self.previous[obj].shape[0] if obj in self.previous else 0)


class PublishedMemory(Memory):
    """One reference per object (its latest annotation on the way) + the previous frame."""

    def add_reference(self, obj: int, frame_index: int, memory: torch.Tensor) -> None:
        self.references[obj] = [(frame_index, memory)]
        self.previous.pop(obj, None)


class KeyframeMemory(Memory):
    """Every annotated frame is a reference: the first one, and the ``max_keyframes - 1`` most
    recent others (a re-annotation of the same frame replaces that frame's entry)."""

    every_annotation = True

    def __init__(self, max_keyframes: int = DEFAULT_MAX_KEYFRAMES) -> None:
        super().__init__()
        self.max_keyframes = check_max_keyframes(max_keyframes)

    def add_reference(self, obj: int, frame_index: int, memory: torch.Tensor) -> None:
        entries = [e for e in self.references.get(obj, []) if e[0] != frame_index] + [(frame_index, memory)]
        if len(entries) > self.max_keyframes:
            entries = entries[:1] + entries[len(entries) - self.max_keyframes + 1:]
        self.references[obj] = entries
        self.previous.pop(obj, None)


def check_max_keyframes(value, what: str = "max_keyframes") -> int:
    """An integer of at least 1, else an InputError naming ``what`` (a flag, a field)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{what} must be an integer of at least 1 (references kept per object), got {value!r}")
    return value


def check_policy(policy) -> str:
    if policy not in MEMORY_POLICIES:
        raise InputError(f"unknown memory policy {policy!r}; choose one of {', '.join(MEMORY_POLICIES)}")
    return policy


def make_memory(policy: str = "published", max_keyframes: int = DEFAULT_MAX_KEYFRAMES) -> Memory:
    """A fresh memory of the named policy (``MEMORY_POLICIES``); bad names or limits are InputErrors."""
    check_max_keyframes(max_keyframes)
    return PublishedMemory() if check_policy(policy) == "published" else KeyframeMemory(max_keyframes)
