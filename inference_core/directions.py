"""Propagation in either direction, or both (docs/method.md, section 5.3).

* forward: from the first annotated frame to the end; earlier frames are empty (background).
* backward: from the last annotated frame to frame 0 (frames fed last to first); later frames empty.
* both: a backward pass, then a forward pass, each using every annotation. Each object takes, on
  each frame, the pass from its nearest annotated frame: the forward pass when the nearest earlier
  annotation of that object is at most as far as its nearest later one (ties go forward), else the
  backward pass. Before an object's first annotation only the backward pass has it, after its last
  only the forward pass. A frame whose objects all choose one pass is that pass's result exactly;
  where they choose differently, each object's probability comes from its pass and the background is
  what is left (1 - their sum, at least 0), renormalised.
Results are yielded in processing order, each frame once; frames kept for a later merge wait on disk,
so memory stays flat in the video's length.
"""
from __future__ import annotations

import bisect
import os
import tempfile
from typing import Callable, Iterator

import numpy as np
import torch

from inference_core.results import FrameResult
from util.errors import InputError
from util.threads import prefetched

DIRECTIONS = ("forward", "backward", "both")


def _reader(frames):
    """-> (length or None, read(range) -> (index, frame))."""
    if hasattr(frames, "read") and hasattr(frames, "__len__"):
        return len(frames), frames.read
    if hasattr(frames, "__len__") and hasattr(frames, "__getitem__"):
        return len(frames), lambda indices: ((i, frames[i]) for i in indices)
    return None, None


def _objects_of(mask, taken) -> list[int]:
    ids = [int(v) for v in np.unique(np.asarray(mask)) if v != 0]
    return [i for i in ids if taken is None or i in set(taken)]


def choices(annotated: dict[int, list[int]], count: int) -> list[dict[int, str]]:
    """Per frame, {object: 'f' or 'b'}: the pass each object takes there (the module's rule)."""
    frames_of: dict[int, list[int]] = {}
    for t in sorted(annotated):
        for obj in annotated[t]:
            frames_of.setdefault(obj, []).append(t)
    out = []
    for t in range(count):
        pick = {}
        for obj, marks in frames_of.items():
            i, j = bisect.bisect_right(marks, t), bisect.bisect_left(marks, t)
            before = marks[i - 1] if i else None
            after = marks[j] if j < len(marks) else None
            if before is None:
                pick[obj] = "b"
            elif after is None or t - before <= after - t:
                pick[obj] = "f"
            else:
                pick[obj] = "b"
        out.append(pick)
    return out


def merge(forward: FrameResult, backward: FrameResult, pick: dict[int, str]) -> FrameResult:
    """One frame's FrameResult from two passes' results by ``pick`` (see the module docstring)."""
    ids = sorted(pick)
    channels = []
    for obj in ids:
        result = forward if pick[obj] == "f" else backward
        channels.append(result.probs[1 + result.object_ids.index(obj)].float())
    objects = torch.stack(channels)
    background = (1 - objects.sum(0)).clamp_(min=0)
    probs = torch.cat([background[None], objects])
    return FrameResult(forward.index, ids, probs / probs.sum(0, keepdim=True).clamp_(min=1e-7))


def _empty(index: int, shape: tuple[int, int], device) -> FrameResult:
    return FrameResult(index, [], torch.ones(1, *shape, device=device))


def _run(make_session, read, indices: range, masks, objects, overlap: bool) -> Iterator:
    session = make_session()
    frames = prefetched(read(indices)) if overlap else read(indices)  # decode ahead while the network runs
    for index, frame in frames:
        yield session.step(frame, masks.get(index), objects.get(index), index=index)


def propagate_in_order(make_session: Callable, device, frames, masks: dict, objects: dict,
                       direction: str, overlap: bool = True) -> Iterator[FrameResult]:
    """FrameResults of ``frames`` propagated ``direction`` from ``masks`` ({index: label map});
    ``overlap``: frames are decoded by a reader thread ahead of the network."""
    count, read = _reader(frames)
    if read is None:
        if direction != "forward":
            raise InputError(f"direction {direction!r} reads the frames again, backwards: pass a list or array of "
                             "frames or a dataset.frames.FrameSource, not a one-pass iterator")
        session = make_session()
        for index, frame in enumerate(prefetched(frames) if overlap else frames):
            yield session.step(frame, masks.get(index), objects.get(index), index=index)
        return
    marks = sorted(t for t in masks if 0 <= t < count)
    if not marks:
        raise InputError("no annotated frame among the frames: give at least one mask")
    shape = np.asarray(masks[marks[0]]).shape[:2]
    if direction == "forward":
        yield from (_empty(t, shape, device) for t in range(marks[0]))
        yield from _run(make_session, read, range(marks[0], count), masks, objects, overlap)
        return
    if direction == "backward":
        yield from (_empty(t, shape, device) for t in range(count - 1, marks[-1], -1))
        yield from _run(make_session, read, range(marks[-1], -1, -1), masks, objects, overlap)
        return
    picks = choices({t: _objects_of(masks[t], objects.get(t)) for t in marks}, count)
    passes = [set(p.values()) for p in picks]
    lowest_backward = min((t for t, s in enumerate(passes) if "b" in s), default=None)
    with tempfile.TemporaryDirectory(prefix="simvos-both-") as stash:
        if lowest_backward is not None:
            for result in _run(make_session, read, range(marks[-1], lowest_backward - 1, -1), masks, objects, overlap):
                if passes[result.index] == {"b"}:
                    yield result
                elif "b" in passes[result.index]:
                    torch.save({"ids": result.object_ids, "probs": result.probs.half().cpu()},
                               os.path.join(stash, f"{result.index}.pt"))
        for result in _run(make_session, read, range(marks[0], count), masks, objects, overlap):
            t = result.index
            if passes[t] == {"f"}:
                yield result
            elif "b" in passes[t] and "f" in passes[t]:
                path = os.path.join(stash, f"{t}.pt")
                saved = torch.load(path)
                os.remove(path)
                yield merge(result, FrameResult(t, saved["ids"], saved["probs"].to(result.probs.device).float()), picks[t])
