"""Tiny synthetic sets in the layouts of MOSE, LVOS, SA-V and generic folders (for the tests):
objects that appear late, leave and come back, and (SA-V) overlap."""
from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from dataset.palette_io import write_label_png
from dataset.synthetic import make_video

SIZE = (32, 40)


def _video(seed: int, n: int):
    """Frames and label maps: object 2 appears on frame 3, object 1 leaves on frames 4-5 and comes back."""
    frames, labels = make_video(np.random.default_rng(seed), n, *SIZE, 2, appear=[0, 3])
    for t in range(4, min(6, n)):
        labels[t] = np.where(labels[t] == 1, 0, labels[t]).astype(np.uint8)
    return frames, labels


def _save(frames, labels, image_dir, mask_dir, stems, masks_at):
    os.makedirs(image_dir, exist_ok=True)
    if masks_at:
        os.makedirs(mask_dir, exist_ok=True)
    for t, stem in enumerate(stems):
        Image.fromarray(frames[t]).save(os.path.join(image_dir, stem + ".jpg"), quality=95)
        if t in masks_at:
            write_label_png(os.path.join(mask_dir, stem + ".png"), labels[t])


def make_folder_set(root: str, videos=("a", "b"), n: int = 8, dense: bool = True) -> dict:
    """generic / MOSE: JPEGImages/<v>/ and Annotations/<v>/ (every frame's mask, or with dense=False
    each object's first one). -> {video: label maps}."""
    out = {}
    for k, name in enumerate(videos):
        frames, labels = _video(10 + k, n)
        stems = [f"{t:05d}" for t in range(n)]
        _save(frames, labels, os.path.join(root, "JPEGImages", name), os.path.join(root, "Annotations", name),
              stems, range(n) if dense else {0, 3})
        out[name] = labels
    return out


def make_lvos_set(root: str, videos=("v1", "v2"), n: int = 21, unseen=("v2",)) -> dict:
    """LVOS: 8-digit frames from 1, every 5th annotated, valid_meta.json, unseen_videos.txt."""
    meta, out = {"videos": {}}, {}
    for k, name in enumerate(videos):
        frames, labels = _video(20 + k, n)
        stems = [f"{t + 1:08d}" for t in range(n)]
        annotated = set(range(0, n, 5)) | {3}     # object 2's first frame is 4 (stem 00000004)
        _save(frames, labels, os.path.join(root, "JPEGImages", name), os.path.join(root, "Annotations", name),
              stems, annotated)
        meta["videos"][name] = {"objects": {
            "1": {"frame_range": {"start": 1, "end": n + 1, "frame_nums": len(range(1, n + 1, 5))}},
            "2": {"frame_range": {"start": 4, "end": n + 1, "frame_nums": len(range(4, n + 1, 5))}}}}
        for t in range(3, n, 5):   # object 2 is scored on frames 4, 9, 14, ...: annotate them too
            write_label_png(os.path.join(root, "Annotations", name, stems[t] + ".png"), labels[t])
        out[name] = labels
    with open(os.path.join(root, "valid_meta.json"), "w") as f:
        json.dump(meta, f)
    with open(os.path.join(root, "unseen_videos.txt"), "w") as f:
        f.write("\n".join(unseen) + "\n")
    return out


def make_sav_set(root: str, videos=("sav_1", "sav_2"), n: int = 17) -> dict:
    """SA-V val: 24 fps frames, every 4th annotated, one binary PNG per object: 000 the union of
    both objects (a person), 001 object 2 alone (their hand: inside 000, from frame 6 on, so that
    its first non-empty 6 fps mask is frame 8's).
    -> {video: {object folder: [masks per frame]}}."""
    out = {}
    for k, name in enumerate(videos):
        frames, labels = _video(30 + k, n)
        stems = [f"{t:05d}" for t in range(n)]
        _save(frames, labels, os.path.join(root, "JPEGImages_24fps", name), None, stems, ())
        objects = {"000": [lab > 0 for lab in labels], "001": [(lab == 2) & (t >= 6) for t, lab in enumerate(labels)]}
        for folder, masks in objects.items():
            os.makedirs(os.path.join(root, "Annotations_6fps", name, folder))
            for t in range(0, n, 4):
                write_label_png(os.path.join(root, "Annotations_6fps", name, folder, stems[t] + ".png"),
                                masks[t].astype(np.uint8))
        out[name] = objects
    with open(os.path.join(root, "sav_val.txt"), "w") as f:
        f.write("\n".join(videos) + "\n")
    return out
