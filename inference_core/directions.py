"""The words for directions (one vocabulary per contract, each defined here only), and the
whole-video plans: which walks of a session give every frame a result (docs/method.md, section 5.4).

* ``WALK_DIRECTIONS``, the way one walk goes (``VideoSession.propagate(start, direction, stop)``, as
  SAM 2's ``propagate_in_video``): ``forward`` | ``backward``.
* ``JOB_DIRECTIONS``, what a studio job from a frame does: one walk ``forward`` | ``backward``, or
  ``both_ways`` (a backward and a forward walk from that frame).
* ``VIDEO_PLANS``, how every frame of a whole video gets a result (``SimVOSPredictor.segment_video``,
  ``segment_video.py --direction``):

  - forward: one walk from the first annotated frame to the end; earlier frames are empty (background).
  - backward: one walk from the last annotated frame to frame 0; later frames empty.
  - nearest: a backward walk, then a forward walk, each using every annotation. Each object takes, on
    each frame, the walk from its nearest annotated frame: the forward walk when the nearest earlier
    annotation of that object is at most as far as its nearest later one (ties go forward), else the
    backward walk. Before an object's first annotation only the backward walk has it, after its last
    only the forward walk. A frame whose objects all choose one walk is that walk's result exactly;
    where they choose differently, each object's probability comes from its walk and the background
    is what is left (1 - their sum, at least 0), renormalised. With no object at all, every frame is
    empty.

  Results are yielded in processing order, each frame once; frames kept for a later merge wait on
  disk, so memory stays flat in the video's length.
"""
from __future__ import annotations

import bisect
import os
import tempfile
from typing import TYPE_CHECKING, Iterator

import torch

from inference_core.results import FrameResult
from util.errors import InputError

if TYPE_CHECKING:  # the session imports WALK_DIRECTIONS from here
    from inference_core.session import VideoSession

WALK_DIRECTIONS = ("forward", "backward")
JOB_DIRECTIONS = ("forward", "backward", "both_ways")
VIDEO_PLANS = ("forward", "backward", "nearest")


def choices(annotated: dict[int, list[int]], count: int) -> list[dict[int, str]]:
    """Per frame, {object: 'f' or 'b'}: the walk each object takes there (the module's rule)."""
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
    """One frame's FrameResult from two walks' results by ``pick`` (see the module docstring)."""
    ids = sorted(pick)
    channels = []
    for obj in ids:
        result = forward if pick[obj] == "f" else backward
        channels.append(result.probs[1 + result.object_ids.index(obj)].float())
    objects = torch.stack(channels)
    if forward.independent:  # each object's own probability, kept as it is
        return FrameResult(forward.index, ids, torch.cat([1 - objects.amax(0, keepdim=True), objects]), True)
    background = (1 - objects.sum(0)).clamp_(min=0)
    probs = torch.cat([background[None], objects])
    return FrameResult(forward.index, ids, probs / probs.sum(0, keepdim=True).clamp_(min=1e-7))


def empty_result(index: int, shape: tuple[int, int], device) -> FrameResult:
    """A frame with no object: background everywhere, [1, H, W]."""
    return FrameResult(index, [], torch.ones(1, *shape, device=device))


def check_plan(plan) -> str:
    """One of ``VIDEO_PLANS``, else an InputError naming them."""
    if plan not in VIDEO_PLANS:
        raise InputError(f"plan must be one of {', '.join(VIDEO_PLANS)}, got {plan!r}")
    return plan


def run_plan(video: VideoSession, plan: str) -> Iterator[FrameResult]:
    """Every frame of ``video`` once, by ``plan`` (one of ``VIDEO_PLANS``), from its annotations."""
    check_plan(plan)
    marks = video.annotated_frames
    if not marks:
        raise InputError("no annotated frame among the frames: give at least one mask")
    shape = video.annotations[marks[0]].labels.shape
    device = video.predictor.device
    if plan == "forward":
        yield from (empty_result(t, shape, device) for t in range(marks[0]))
        yield from video.propagate(marks[0], "forward")
        return
    count = len(video)
    if plan == "backward":
        yield from (empty_result(t, shape, device) for t in range(count - 1, marks[-1], -1))
        yield from video.propagate(marks[-1], "backward")
        return
    if not video.objects:
        yield from (empty_result(t, shape, device) for t in range(count))
        return
    picks = choices({t: video.annotations[t].objects for t in marks}, count)
    walks = [set(p.values()) for p in picks]
    lowest_backward = min((t for t, s in enumerate(walks) if "b" in s), default=None)
    with tempfile.TemporaryDirectory(prefix="simvos-nearest-") as stash:
        if lowest_backward is not None:
            for result in video.propagate(marks[-1], "backward", stop=lowest_backward):
                if walks[result.index] == {"b"}:
                    yield result
                elif "b" in walks[result.index]:
                    torch.save({"ids": result.object_ids, "probs": result.probs.half().cpu()},
                               os.path.join(stash, f"{result.index}.pt"))
        for result in video.propagate(marks[0], "forward"):
            t = result.index
            if walks[t] == {"f"}:
                yield result
            elif walks[t] == {"f", "b"}:
                path = os.path.join(stash, f"{t}.pt")
                saved = torch.load(path)
                os.remove(path)
                yield merge(result, FrameResult(t, saved["ids"], saved["probs"].to(result.probs.device).float(),
                                                result.independent), picks[t])
