"""Runs a predictor over sequences and writes indexed PNGs, one sequence at a time.

A sequence is written into a hidden ``.<name>.partial`` folder and renamed when complete, so an
interrupted run never leaves a half sequence that looks finished; a re-run skips finished ones.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import progressbar
import torch

from dataset.davis import VideoSequence
from dataset.frames import iter_frames
from dataset.palette_io import read_label_png, write_label_png
from evaluation.predictor import SimVOSPredictor
from util.device import peak_memory_mib, precision_name
from util.errors import InputError

INTERRUPTED = "finished sequences are kept, the unfinished one was removed"
MAX_OBJECTS = 64  # more distinct values than this in a first mask means it is not a label map


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
    skipped: list[str] = field(default_factory=list)

    def summary(self, device: torch.device, amp: bool) -> str:
        fps = self.frames / self.seconds if self.seconds else 0.0
        return (f"{self.sequences} sequences ({len(self.skipped)} already done), {self.frames} frames, "
                f"{self.seconds:.1f} s, {fps:.2f} FPS, peak memory {peak_memory_mib(device):.0f} MiB, "
                f"{device.type} {precision_name(device, amp)}")


def read_object_mask(path: str, frame_shape: tuple[int, int]) -> np.ndarray:
    """A label map that must match its frame's size and look like object labels."""
    mask = read_label_png(path)
    if mask.shape != frame_shape:
        raise InputError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]} but its frame is {frame_shape[1]}x{frame_shape[0]}")
    values = np.unique(mask)
    if len(values) > MAX_OBJECTS:
        raise InputError(f"{path}: {len(values)} distinct values: an anti-aliased or greyscale image, not a label map")
    return mask


def is_complete(folder: str, expected: int) -> bool:
    return os.path.isdir(folder) and sum(f.endswith(".png") for f in os.listdir(folder)) == expected


def segment_sequence(predictor: SimVOSPredictor, seq: VideoSequence, out_root: str,
                     scores_root: str | None = None, keep: set[str] | None = None) -> int:
    """Segments one sequence into ``out_root/<name>/<frame>.png`` (and ``.npy`` scores).

    keep: frame stems to write (default all). Returns the number of frames processed.
    """
    targets = [(out_root, ".png")] + ([(scores_root, ".npy")] if scores_root else [])
    partial = {root: os.path.join(root, f".{seq.name}.partial") for root, _ in targets}
    for folder in partial.values():
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    try:
        session = predictor.session()
        stems = seq.stems
        if not seq.annotations:
            raise InputError(f"{seq.name}: no annotated frame: nothing to segment")
        objects = seq.annotation_objects or {}
        for index, rgb in enumerate(iter_frames(seq)):
            mask = read_object_mask(seq.annotations[index], rgb.shape[:2]) if index in seq.annotations else None
            result = session.step(rgb, mask, objects.get(index))
            if keep is not None and stems[index] not in keep:
                continue
            write_label_png(os.path.join(partial[out_root], stems[index] + ".png"), result.labels())
            if scores_root:
                np.save(os.path.join(partial[scores_root], stems[index] + ".npy"),
                        result.probs.to(torch.float16).cpu().numpy())
    except BaseException:
        for folder in partial.values():
            shutil.rmtree(folder, ignore_errors=True)
        raise
    for root, folder in partial.items():
        final = os.path.join(root, seq.name)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(folder, final)
    return len(seq.frames)


def run_sequences(predictor: SimVOSPredictor, sequences: list, out_root: str, scores_root: str | None = None,
                  overwrite: bool = False, keep_frames: dict[str, set[str]] | None = None) -> RunStats:
    """sequences: callables or VideoSequence objects (callables are resolved lazily, so a bad
    sequence fails when reached, after the earlier ones are written)."""
    os.makedirs(out_root, exist_ok=True)
    if scores_root:
        os.makedirs(scores_root, exist_ok=True)
    stats = RunStats()
    device = predictor.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with progressbar.ProgressBar(max_value=len(sequences), fd=CurrentStderr()) as bar:
        for index, seq in enumerate(sequences):
            _run_one(predictor, seq, out_root, scores_root, overwrite, keep_frames, stats)
            bar.update(index + 1)
    return stats


def _run_one(predictor, seq, out_root, scores_root, overwrite, keep_frames, stats: RunStats) -> None:
    """Resolves one sequence, then skips it (already complete) or segments it into ``stats``."""
    device = predictor.device
    seq = seq() if callable(seq) else seq
    keep = keep_frames.get(seq.name) if keep_frames else None
    expected = len(keep) if keep is not None else len(seq.frames)
    done = is_complete(os.path.join(out_root, seq.name), expected) and (
        not scores_root or os.path.isdir(os.path.join(scores_root, seq.name)))
    stats.sequences += 1
    if done and not overwrite:
        stats.skipped.append(seq.name)
        return
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    stats.frames += segment_sequence(predictor, seq, out_root, scores_root, keep)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    stats.seconds += time.perf_counter() - start
