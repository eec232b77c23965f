"""What each evaluation script runs, as planned sequences (name, expected output frames, cost, and a
loader that reads the sequence only when it is reached)."""
from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from dataset.benchmarks import BenchmarkRoot, count_frames, load_video, sav_object_id, sav_objects
from dataset.davis import IMAGE_EXTENSIONS, VideoSequence, davis_sequence, list_frames
from evaluation.runner import PlannedSequence
from util.errors import InputError


def _count_images(folder: str) -> int:
    return sum(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(folder)) if os.path.isdir(folder) else 0


def _count_objects(mask_path: str) -> int:
    """Objects in a first-frame mask, for balancing only (1 when unreadable: the error comes later)."""
    try:
        with Image.open(mask_path) as img:
            return max(1, int(np.count_nonzero(np.bincount(np.asarray(img).ravel(), minlength=256)[1:255])))
    except (OSError, ValueError):
        return 1


def davis_plans(root: str, names: list[str], resolution: str = "480p") -> list[PlannedSequence]:
    plans = []
    for name in names:
        frames = _count_images(os.path.join(root, "JPEGImages", resolution, name))
        annotations = os.path.join(root, "Annotations", resolution, name)
        first = sorted(os.listdir(annotations))[0] if os.path.isdir(annotations) and os.listdir(annotations) else ""
        cost = frames * _count_objects(os.path.join(annotations, first))
        plans.append(PlannedSequence(name, lambda n=name: davis_sequence(root, n, resolution), frames, cost))
    return plans


def youtube_plans(yv_path: str, split: str, sparse: bool, only: list[str] | None) -> list[PlannedSequence]:
    """YouTube-VOS valid: every frame of ``all_frames/<split>_all_frames`` (or only those of
    ``<split>/JPEGImages`` with ``sparse``), each object introduced on its first annotated frame
    (``meta.json``); the frames of ``<split>/JPEGImages`` are written."""
    split_dir = os.path.join(yv_path, split)
    meta_path = os.path.join(split_dir, "meta.json")
    if not os.path.isfile(meta_path):
        raise InputError(f"{meta_path}: not found (is --yv_path the YouTube-VOS root holding {split}/?)")
    with open(meta_path) as f:
        videos = json.load(f)["videos"]
    frames_root = os.path.join(split_dir, "JPEGImages") if sparse else \
        os.path.join(yv_path, "all_frames", f"{split}_all_frames", "JPEGImages")
    if not os.path.isdir(frames_root):
        raise InputError(f"{frames_root}: folder not found (pass --sparse to use {split}/JPEGImages only)")
    names = sorted(videos) if only is None else only
    missing = sorted(set(names) - set(videos))
    if missing:
        raise InputError(f"--videos: {', '.join(missing)} not in {meta_path}")
    plans = []
    for name in names:
        keep = {os.path.splitext(f)[0] for f in os.listdir(os.path.join(split_dir, "JPEGImages", name))}
        starts: dict[str, list[int]] = {}
        for obj, info in videos[name]["objects"].items():
            starts.setdefault(info["frames"][0], []).append(int(obj))

        def load(name=name, starts=starts) -> VideoSequence:
            frames = list_frames(os.path.join(frames_root, name))
            index = {os.path.splitext(os.path.basename(f))[0]: i for i, f in enumerate(frames)}
            annotations, objects = {}, {}
            for stem, ids in starts.items():
                if stem not in index:
                    raise InputError(f"{name}: first annotated frame {stem} is not among its frames")
                annotations[index[stem]] = os.path.join(split_dir, "Annotations", name, stem + ".png")
                objects[index[stem]] = sorted(ids)
            return VideoSequence(name, frames, annotations, objects)
        cost = _count_images(os.path.join(frames_root, name)) * max(1, len(videos[name]["objects"]))
        plans.append(PlannedSequence(name, load, len(keep), cost, keep))
    return plans


def benchmark_plans(bench: BenchmarkRoot, all_masks: bool = False, only: list[str] | None = None,
                    resume_every: int | None = None) -> list[PlannedSequence]:
    """MOSE, LVOS, SA-V or generic videos (dataset/benchmarks.py): every frame written; SA-V one
    binary PNG per object and frame (``<video>/<object>/<frame>.png``); each video a resumable unit
    with a resume point every ``resume_every`` frames (evaluation/runner.py)."""
    names = bench.videos if only is None else only
    missing = sorted(set(names) - set(bench.videos))
    if missing:
        raise InputError(f"--videos: {', '.join(missing)} not in {bench.root}")
    plans = []
    for name in names:
        frames = count_frames(bench, name)
        if bench.name == "sav":
            folders = {sav_object_id(f): f for f in sav_objects(bench, name)}
            plans.append(PlannedSequence(name, lambda n=name: load_video(bench, n), frames * len(folders),
                                         frames * len(folders), object_folders=folders, resume_every=resume_every))
            continue
        objects = len(bench.meta[name]) if bench.meta else 1
        plans.append(PlannedSequence(name, lambda n=name: load_video(bench, n, all_masks), frames, frames * objects,
                                     resume_every=resume_every))
    return plans
