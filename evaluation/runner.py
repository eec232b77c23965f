"""Runs a predictor over sequences and writes indexed PNGs, one sequence at a time.

A sequence is written into a staging folder beside its place and moved there when complete
(util/publish.py), so an interrupted run never leaves a half sequence that looks finished; a
re-run skips finished ones and removes what a killed run left staged. A resumable sequence (the
benchmarks of submit_eval_vos.py: long LVOS videos) is written into a hidden partial folder with
resume points instead, and a re-run continues it exactly (:func:`segment_resumable`).
Under a launcher or with job-array shards each process runs its share (evaluation/sharding.py).
"""
from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

try:  # optional: without it, no bar (the summary line still comes)
    import progressbar
except ImportError:
    progressbar = None

from dataset.davis import VideoSequence
from dataset.frames import source_of
from dataset.palette_io import read_label_png, write_label_png
from inference_core.predictor import SimVOSPredictor
from evaluation.sharding import Shard, agree, balance
from util.device import peak_memory_mib, precision_name
from util.errors import InputError
from util.labels import MAX_OBJECTS, VOID, object_ids
from util.publish import publishing, remove_leftovers, replace, staged_folders
from util.threads import writer_for

INTERRUPTED = "finished sequences are kept, the unfinished one was removed (a resumable one continues from its last resume point)"
RESUME_POINT = "resume.pt"


@dataclass
class PlannedSequence:
    """A sequence before it is read: ``load()`` resolves it (errors surface when it is reached);
    ``expected``: PNGs a complete output folder holds (in it and its sub-folders); ``cost``: frames x
    objects, for balancing; ``keep``: frame stems to write (default all); ``object_folders``: write
    one binary PNG per object, ``<object folder>/<frame>.png`` ({object id: folder}: SA-V's layout,
    overlaps kept), instead of one label map per frame; ``resume_every``: a resumable unit, its
    walk's state saved after every so many frames (see :func:`segment_resumable`)."""

    name: str
    load: Callable[[], VideoSequence]
    expected: int
    cost: int
    keep: set[str] | None = None
    object_folders: dict[int, str] | None = None
    resume_every: int | None = None


class CurrentStderr:
    """Whatever sys.stderr is at write time (progressbar2 otherwise pins the stream it saw first)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


@dataclass
class RunStats:
    frames: int = 0
    seconds: float = 0.0
    sequences: int = 0
    share: list[str] = field(default_factory=list)     # names this process was given
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, BaseException] = field(default_factory=dict)
    per_rank: list[tuple[int, float]] = field(default_factory=list)

    def summary(self, device: torch.device, amp: bool) -> str:
        fps = self.frames / self.seconds if self.seconds else 0.0
        text = (f"{self.sequences} sequences ({len(self.skipped)} already done), {self.frames} frames, "
                f"{self.seconds:.1f} s, {fps:.2f} FPS, peak memory {peak_memory_mib(device):.0f} MiB, "
                f"{device.type} {precision_name(device, amp)}")
        if len(self.per_rank) > 1:
            frames = sum(f for f, _ in self.per_rank)
            total_fps = sum(f / s for f, s in self.per_rank if s)
            slowest = max(range(len(self.per_rank)), key=lambda r: self.per_rank[r][1])
            text += (f"\nall {len(self.per_rank)} ranks: {frames} frames, {sum(s for _, s in self.per_rank):.1f} s "
                     f"of compute, {total_fps:.2f} FPS together; slowest rank {slowest}: "
                     f"{self.per_rank[slowest][1]:.1f} s for {self.per_rank[slowest][0]} frames")
        return text


def read_object_mask(path: str) -> np.ndarray:
    """A dataset mask that must look like object labels (its size is checked against its frame)."""
    mask = read_label_png(path)
    values = np.unique(mask)
    if len(values) > MAX_OBJECTS:
        raise InputError(f"{path}: {len(values)} distinct values: an anti-aliased or greyscale image, not a label map")
    return mask


def sequence_complete(folder: str, expected: int) -> bool:
    """A published sequence folder holds its ``expected`` PNGs (counting its sub-folders')."""
    return os.path.isdir(folder) and sum(f.endswith(".png") for _, _, files in os.walk(folder) for f in files) == expected


def write_object_pngs(folder: str, stem: str, object_ids: list[int], masks: np.ndarray,
                      object_folders: dict[int, str]) -> None:
    """masks [K, H, W] bool of ``object_ids`` -> ``folder/<object folder>/<stem>.png`` 0/1 PNGs, an
    empty mask for the objects not tracked (yet)."""
    shape = masks.shape[1:]
    for obj, name in object_folders.items():
        mask = masks[object_ids.index(obj)] if obj in object_ids else np.zeros(shape, bool)
        write_label_png(os.path.join(folder, name, stem + ".png"), mask.astype(np.uint8))


def open_sequence(predictor: SimVOSPredictor, seq: VideoSequence):
    """A session of the sequence's frames with its annotations, each mask naming only the objects
    it adds (the published meaning; 255 is void)."""
    if not seq.annotations and not seq.object_annotations:
        raise InputError(f"{seq.name}: no annotated frame: nothing to segment")
    video = predictor.open(source_of(seq))
    for index, paths in sorted((seq.object_annotations or {}).items()):
        video.add_mask(index, {obj: read_label_png(path) for obj, path in paths.items()}, complete=False)
    objects = seq.annotation_objects or {}
    for index in sorted(seq.annotations):
        path = seq.annotations[index]
        mask = read_object_mask(path)
        taken = objects.get(index, object_ids(mask, exclude=(VOID,)))
        try:
            video.add_mask(index, mask, taken, complete=False)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
    return video


def segment_sequence(predictor: SimVOSPredictor, seq: VideoSequence, out_root: str,
                     scores_root: str | None = None, keep: set[str] | None = None,
                     object_folders: dict[int, str] | None = None, resume_every: int | None = None) -> int:
    """Segments one sequence into ``out_root/<name>/<frame>.png`` (and ``.npy`` scores): one
    forward walk from frame 0. keep: frame stems to write (default all); object_folders: one binary
    PNG per object instead (see :class:`PlannedSequence`); resume_every: a long video continues
    where a killed run stopped (see :func:`segment_resumable`). Returns the number of frames processed.
    """
    video = open_sequence(predictor, seq)
    if resume_every and not scores_root:
        return segment_resumable(predictor, video, seq, out_root, keep, object_folders, resume_every)
    stems = seq.stems
    targets = [(out_root, ".png")] + ([(scores_root, ".npy")] if scores_root else [])
    with staged_folders([os.path.join(root, seq.name) for root, _ in targets]) as staging:
        labels_dir, scores_dir = staging[0], (staging[1] if scores_root else None)
        for name in (object_folders or {}).values():
            os.makedirs(os.path.join(labels_dir, name))
        with writer_for(predictor.overlap_io) as writer:
            for result in video.propagate(0, "forward"):
                stem = stems[result.index]
                if keep is not None and stem not in keep:
                    continue
                _submit_masks(writer, labels_dir, stem, result, object_folders)
                if scores_dir:
                    writer.submit(np.save, os.path.join(scores_dir, stem + ".npy"),
                                  result.probs.to(torch.float16).cpu().numpy())
    return len(seq.frames)


def _submit_masks(writer, folder: str, stem: str, result, object_folders: dict[int, str] | None) -> None:
    if object_folders is not None:
        writer.submit(write_object_pngs, folder, stem, result.object_ids, result.object_masks(), object_folders)
    else:
        writer.submit(write_label_png, os.path.join(folder, stem + ".png"), result.labels())


def partial_folder(out_root: str, name: str) -> str:
    """Where a resumable sequence is written until it is complete (kept when a run is killed)."""
    return os.path.join(out_root, f".{name}.partial")


def segment_resumable(predictor: SimVOSPredictor, video, seq: VideoSequence, out_root: str, keep: set[str] | None,
                      object_folders: dict[int, str] | None, every: int) -> int:
    """One long video as a resumable unit: frames are written into :func:`partial_folder`, and after
    every ``every``-th frame (once the frames before it are on disk) the walk's state
    (``VideoSession.walk_state``: the memory, the tracked objects, the last frame's probabilities)
    is saved beside them as ``resume.pt``. A run that finds that point, made with the same frames,
    annotations and settings, continues the walk from the next frame: exactly the masks an
    uninterrupted run writes. Published (moved into place) when complete. -> frames processed."""
    folder = partial_folder(out_root, seq.name)
    point = os.path.join(folder, RESUME_POINT)
    setting = {"frames": len(seq.frames), "size": video.size, "memory": video.policy, "amp": predictor.amp,
               "max_keyframes": video.max_keyframes, "independent": video.independent,
               "annotations": {i: a.objects for i, a in video.annotations.items()}}
    saved = None
    if os.path.isfile(point):
        remove_leftovers(folder)
        try:
            saved = torch.load(point, weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError):   # unreadable: the video starts over
            saved = None
        if saved is not None and saved.get("setting") != setting:
            saved = None
    if saved is None:
        shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    for name in (object_folders or {}).values():
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    stems, frames = seq.stems, 0
    with writer_for(predictor.overlap_io) as writer:
        for result in video.propagate(0, "forward", resume=saved["walk"] if saved else None):
            frames += 1
            if keep is None or stems[result.index] in keep:
                _submit_masks(writer, folder, stems[result.index], result, object_folders)
            if (result.index + 1) % every == 0:
                writer.submit(_save_point, point, {"setting": setting, "walk": video.walk_state()})
    if os.path.exists(point):
        os.remove(point)
    replace(folder, os.path.join(out_root, seq.name))
    return frames


def _save_point(path: str, state: dict) -> None:
    with publishing(path) as tmp:
        torch.save(state, tmp)


def count_complete(plans: list[PlannedSequence], out_root: str) -> int:
    return sum(sequence_complete(os.path.join(out_root, p.name), p.expected) for p in plans)


def all_complete(plans: list[PlannedSequence], out_root: str) -> bool:
    return count_complete(plans, out_root) == len(plans)


class _Progress:
    """One bar for the whole run: sequences complete on disk (any rank's), polled in a thread."""

    def __init__(self, plans: list[PlannedSequence], out_root: str, show: bool, period: float = 0.5):
        self.plans, self.out_root, self.period = plans, out_root, period
        self.bar = progressbar.ProgressBar(max_value=len(plans), fd=CurrentStderr()) if show and progressbar else None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True) if self.bar else None

    def _poll(self) -> None:
        while not self.stop.wait(self.period):
            self.bar.update(count_complete(self.plans, self.out_root))

    def __enter__(self) -> "_Progress":
        if self.bar:
            self.bar.start()
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar:
            self.stop.set()
            self.thread.join()
            done = count_complete(self.plans, self.out_root)
            self.bar.update(done)
            self.bar.finish(dirty=done < len(self.plans))  # a bar left short: some sequences are missing


def run_sequences(predictor: SimVOSPredictor, plans: list[PlannedSequence], out_root: str,
                  scores_root: str | None = None, overwrite: bool = False, shard: Shard | None = None) -> RunStats:
    """Segments this process's share of ``plans`` (all of them without a shard).

    A sequence with bad input is reported and the others still run; at the end every rank of a
    launcher job learns whether any rank failed. Raises InputError naming the failed sequences (or
    the rank that failed), or re-raises a programming error, after all finished ones are written.
    """
    for root in (out_root, scores_root):
        if root:
            os.makedirs(root, exist_ok=True)
            remove_leftovers(root)  # what a killed run left staged
    mine = [plans[i] for i in balance([p.cost for p in plans], shard.count)[shard.index]] if shard else plans
    stats = RunStats(share=[p.name for p in mine])
    device = predictor.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    bug: BaseException | None = None
    with _Progress(plans, out_root, show=shard is None or shard.reports):
        for plan in mine:
            try:
                _run_one(predictor, plan, out_root, scores_root, overwrite, stats)
            except InputError as exc:
                stats.failed[plan.name] = exc
            except Exception as exc:  # a bug: stop this rank, but still tell the others
                exc.add_note(f"while segmenting sequence {plan.name}")
                bug = exc
                break
    any_failed, stats.per_rank = agree(shard, bool(stats.failed) or bug is not None, stats.frames, stats.seconds) \
        if shard else (bool(stats.failed), [(stats.frames, stats.seconds)])
    if bug is not None:
        raise bug
    if stats.failed:
        lines = [f"{name}: {exc}" for name, exc in stats.failed.items()]
        raise InputError(f"{len(lines)} sequence(s) failed (finished ones are kept):\n  " + "\n  ".join(lines))
    if any_failed:
        raise InputError(f"another rank failed (its message names the sequence); the finished sequences "
                         f"of all ranks are kept in {out_root}: re-run to complete the missing ones")
    return stats


def _run_one(predictor, plan: PlannedSequence, out_root, scores_root, overwrite, stats: RunStats) -> None:
    """Skips one sequence (already complete) or resolves and segments it into ``stats``."""
    device = predictor.device
    done = sequence_complete(os.path.join(out_root, plan.name), plan.expected) and (
        not scores_root or os.path.isdir(os.path.join(scores_root, plan.name)))
    stats.sequences += 1
    if done and not overwrite:
        stats.skipped.append(plan.name)
        return
    if overwrite:
        shutil.rmtree(partial_folder(out_root, plan.name), ignore_errors=True)
    seq = plan.load()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    stats.frames += segment_sequence(predictor, seq, out_root, scores_root, plan.keep, plan.object_folders,
                                     plan.resume_every)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    stats.seconds += time.perf_counter() - start
