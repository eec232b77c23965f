"""The training set of docs/method.md, section 7 (DAVIS-2017 train, repeated, + YouTube-VOS train, as pairs) and
its deterministic order: every sample is a pure function of (seed, epoch, position in the epoch's
global order), whatever the number of data-loader workers and wherever a run was resumed."""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass

import numpy as np
from torch.utils.data import ConcatDataset, DistributedSampler, default_collate

from dataset.davis import read_split
from dataset.vos_pairs import VOSPairDataset, scan_videos, vos_folder_videos
from training.config import PublishedData
from util.errors import InputError

YV_SUBSET = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "dataset", "lists", "yv_subset.txt")


def find_root(root: str, candidates: list[str], what: str, flag: str) -> str:
    """The first ``root/<candidate>`` holding a JPEGImages folder."""
    for sub in candidates:
        path = os.path.join(root, sub)
        if os.path.isdir(os.path.join(path, "JPEGImages")):
            return path
    tried = ", ".join(os.path.join(root, s, "JPEGImages") for s in candidates)
    raise InputError(f"{flag} {root}: no {what} found (looked for {tried})")


def derive_seed(*keys: int) -> int:
    """A 32-bit seed that is a pure function of ``keys`` (numpy's SeedSequence hashing)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def sample_seed(seed: int, epoch: int, position: int) -> int:
    """The seed of the sample at ``position`` of epoch ``epoch``'s global order."""
    return derive_seed(seed, epoch, position, 0)


class SeededSampler(DistributedSampler):
    """DistributedSampler's order (shuffled by seed + epoch, this rank's share), yielding (dataset
    index, sample seed) and starting ``start`` samples into the epoch (those are not read at all)."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def set_start(self, samples: int) -> None:
        self.start = samples

    def __iter__(self):
        for i, index in enumerate(super().__iter__()):
            if i >= self.start:
                yield index, sample_seed(self.seed, self.epoch, self.rank + i * self.num_replicas)

    def __len__(self) -> int:
        return self.num_samples - self.start


@dataclass(frozen=True)
class DataFailure:
    """A sample that could not be read (a data file deleted, replaced or corrupt under a run): the
    InputError of a data-loader worker, carried to the main process as data, where it is raised
    again as itself (a worker's exception would arrive as its traceback's text)."""

    message: str
    path: str | None = None

    def error(self) -> InputError:
        return InputError(self.message, self.path)


def collate_samples(items: list) -> dict | DataFailure:
    """The batch of ``items``, or the first of them that is a :class:`DataFailure`."""
    failure = next((item for item in items if isinstance(item, DataFailure)), None)
    return failure if failure is not None else default_collate(items)


class SeededConcat(ConcatDataset):
    """ConcatDataset indexed by (index, sample seed); a sample whose files cannot be read is a
    :class:`DataFailure` (batch them with :func:`collate_samples`)."""

    def __getitem__(self, item: tuple[int, int]) -> dict | DataFailure:
        index, seed = item
        part = bisect.bisect_right(self.cumulative_sizes, index)
        local = index - (self.cumulative_sizes[part - 1] if part else 0)
        try:
            return self.datasets[part][local, seed]
        except InputError as exc:
            return DataFailure(str(exc), exc.path)


def youtube_videos(root: str, subset: str | None) -> tuple[list, dict]:
    """YouTube-VOS train videos, restricted to the names listed in ``subset`` (a file) when given."""
    image_root, mask_root = os.path.join(root, "JPEGImages"), os.path.join(root, "Annotations")
    if subset is None:
        return scan_videos(image_root, mask_root), {}
    listed = read_split(subset)
    present = set(os.listdir(image_root))
    kept = [n for n in listed if n in present]
    if not kept:
        raise InputError(f"{subset}: none of its {len(listed)} videos is in {image_root} (--yv_subset none uses every folder)")
    counts = {"youtube_dropped": len(present - set(listed)), "youtube_listed_missing": len(listed) - len(kept)}
    return scan_videos(image_root, mask_root, kept), counts


def build_datasets(data: PublishedData, img_size: int) -> tuple[SeededConcat, dict]:
    """-> (the concatenated pair datasets, sizes for the start-up line)."""
    davis = find_root(data.davis_root, ["2017/trainval", "trainval", ""], "DAVIS-2017 trainval", "--davis_root")
    names = read_split(os.path.join(davis, "ImageSets", "2017", "train.txt"))
    davis_videos = scan_videos(os.path.join(davis, "JPEGImages", "480p"), os.path.join(davis, "Annotations", "480p"), names)
    parts = [VOSPairDataset(davis_videos, data.davis_max_jump, img_size, memory_frames=data.memory_frames)] * data.davis_repeat
    sizes = {"davis_videos": len(davis_videos)}
    if data.youtube_root is not None:
        yv = find_root(data.youtube_root, ["train_480p", "train", ""], "YouTube-VOS train", "--yv_root")
        yv_videos, counts = youtube_videos(yv, data.youtube_subset)
        parts.append(VOSPairDataset(yv_videos, data.youtube_max_jump, img_size, memory_frames=data.memory_frames))
        sizes["youtube_videos"] = len(yv_videos)
        sizes.update(counts)
    for folder in data.vos_folders:   # more VOS-layout folders, each with its weight
        videos = vos_folder_videos(folder)
        jump = folder.max_jump or data.davis_max_jump
        parts += [VOSPairDataset(videos, jump, img_size, memory_frames=data.memory_frames)] * folder.weight
        sizes[f"{folder.name}_videos"] = len(videos)
    dataset = SeededConcat(parts)
    sizes["samples_per_epoch"] = len(dataset)
    return dataset, sizes
