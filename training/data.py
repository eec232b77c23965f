"""The training set of spec section 7: DAVIS-2017 train (repeated) + YouTube-VOS train, as pairs."""
from __future__ import annotations

import os
import random

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from dataset.davis import read_split
from dataset.vos_pairs import VOSPairDataset, scan_videos
from util.errors import InputError


def find_root(root: str, candidates: list[str], what: str, flag: str) -> str:
    """The first ``root/<candidate>`` holding a JPEGImages folder."""
    for sub in candidates:
        path = os.path.join(root, sub)
        if os.path.isdir(os.path.join(path, "JPEGImages")):
            return path
    tried = ", ".join(os.path.join(root, s, "JPEGImages") for s in candidates)
    raise InputError(f"{flag} {root}: no {what} found (looked for {tried})")


def build_datasets(args) -> tuple[ConcatDataset, dict]:
    """-> (the concatenated pair datasets, sizes for the start-up line)."""
    davis = find_root(args.davis_root, ["2017/trainval", "trainval", ""], "DAVIS-2017 trainval", "--davis_root")
    names = read_split(os.path.join(davis, "ImageSets", "2017", "train.txt"))
    davis_videos = scan_videos(os.path.join(davis, "JPEGImages", "480p"), os.path.join(davis, "Annotations", "480p"), names)
    parts = [VOSPairDataset(davis_videos, args.davis_max_jump, args.img_size)] * args.davis_repeat
    sizes = {"davis_videos": len(davis_videos)}
    if args.yv_root.lower() != "none":
        yv = find_root(args.yv_root, ["train_480p", "train", ""], "YouTube-VOS train", "--yv_root")
        subset = read_split(args.yv_subset) if args.yv_subset else None
        yv_videos = scan_videos(os.path.join(yv, "JPEGImages"), os.path.join(yv, "Annotations"), subset)
        parts.append(VOSPairDataset(yv_videos, args.yv_max_jump, args.img_size))
        sizes["youtube_videos"] = len(yv_videos)
    dataset = ConcatDataset(parts)
    sizes["samples_per_epoch"] = len(dataset)
    return dataset, sizes


def seed_worker(worker_id: int) -> None:
    """numpy / random seeds from torch's per-worker seed (distinct per rank, worker and epoch)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
