"""Training pairs (spec section 7): one video, a reference and a query frame, up to two targets.

Augmentation uses torchvision.transforms.v2 with PIL images and ``tv_tensors.Mask`` label maps in
the same call, so image and mask always get the same geometric transform.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from dataset.davis import IMAGE_EXTENSIONS
from model.inputs import IMAGENET_MEAN, IMAGENET_STD
from util.errors import InputError

IMAGE_FILL = (124, 116, 104)
BICUBIC = v2.InterpolationMode.BICUBIC


@dataclass
class Video:
    name: str
    frames: list[str]
    masks: list[str]


def scan_videos(image_root: str, mask_root: str, names: list[str] | None = None, min_frames: int = 2) -> list[Video]:
    """Videos under ``image_root/<name>/*.jpg`` with masks ``mask_root/<name>/<stem>.png``."""
    for root in (image_root, mask_root):
        if not os.path.isdir(root):
            raise InputError(f"{root}: training data folder not found")
    videos = []
    for name in names if names is not None else sorted(os.listdir(image_root)):
        img_dir, mask_dir = os.path.join(image_root, name), os.path.join(mask_root, name)
        if not os.path.isdir(img_dir):
            raise InputError(f"{img_dir}: video listed for training not found")
        files = sorted(f for f in os.listdir(img_dir) if f.lower().endswith(IMAGE_EXTENSIONS))
        frames = [os.path.join(img_dir, f) for f in files]
        masks = [os.path.join(mask_dir, os.path.splitext(f)[0] + ".png") for f in files]
        if len(frames) >= min_frames and all(os.path.isfile(m) for m in masks):
            videos.append(Video(name, frames, masks))
    if not videos:
        raise InputError(f"{image_root}: no usable training videos (at least {min_frames} frames with masks)")
    return videos


def sample_pair(n: int, max_jump: int, rng: random.Random) -> tuple[int, int]:
    """(reference, query) indices: first uniform in [0, n-2], second in [first+1, min(n, first+max_jump)-1],
    order reversed with probability 0.5."""
    first = rng.randint(0, n - 2)
    second = rng.randint(first + 1, min(n, first + max_jump) - 1) if max_jump > 1 else first + 1
    return (second, first) if rng.random() < 0.5 else (first, second)


class PairAugmentation:
    """Shared by both frames: flip, resized crop, colour jitter, grayscale; per frame: affine, jitter."""

    def __init__(self, size: int):
        self.shared = v2.Compose([
            v2.RandomHorizontalFlip(),
            v2.RandomResizedCrop(size, scale=(0.36, 1.0), interpolation=BICUBIC),
            v2.ColorJitter(0.1, 0.03, 0.03, 0),
            v2.RandomGrayscale(0.05),
        ])
        self.per_frame = v2.Compose([
            v2.RandomAffine(degrees=15, shear=10, interpolation=BICUBIC,
                            fill={Image.Image: IMAGE_FILL, tv_tensors.Mask: 0}),
            v2.ColorJitter(0.01, 0.01, 0.01, 0),
        ])
        self.normalise = v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                                     v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __call__(self, images: list[Image.Image], labels: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> frames [2, 3, S, S] normalised, label maps [2, S, S] uint8."""
        masks = [tv_tensors.Mask(torch.from_numpy(lab)) for lab in labels]
        out = self.shared(images[0], images[1], masks[0], masks[1])
        frames, maps = [], []
        for image, mask in ((out[0], out[2]), (out[1], out[3])):
            image, mask = self.per_frame(image, mask)
            frames.append(self.normalise(image))
            maps.append(mask.as_subclass(torch.Tensor))
        return torch.stack(frames), torch.stack(maps)


class VOSPairDataset(Dataset):
    """Items: ``frames`` [2, 3, S, S] (reference, query), ``masks`` [2, 2, S, S] (frame, target),
    ``class_map`` [S, S] long (query: 0 background, 1 and 2 the targets), ``selector`` [2]
    (second target present), ``name``."""

    def __init__(self, videos: list[Video], max_jump: int, size: int = 384, retries: int = 5):
        self.videos = videos
        self.max_jump = max_jump
        self.retries = retries
        self.augment = PairAugmentation(size)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        video = self.videos[index]
        rng = random.Random(torch.randint(0, 2**31, ()).item())
        for _ in range(self.retries):
            ids = sample_pair(len(video.frames), self.max_jump, rng)
            images = [Image.open(video.frames[i]).convert("RGB") for i in ids]
            labels = [np.array(Image.open(video.masks[i]), dtype=np.uint8) for i in ids]
            frames, maps = self.augment(images, labels)
            present = [int(v) for v in maps[0].unique() if v not in (0, 255)]
            if present:
                break
        # Two target slots; -1 = absent (no second object, or no object at all after the retries).
        targets = (rng.sample(present, 2) if len(present) > 1 else present + [-1, -1])[:2]
        masks = torch.stack([(maps == t).float() for t in targets], dim=1)  # [2 frames, 2 targets, S, S]
        class_map = torch.zeros(maps.shape[-2:], dtype=torch.long)
        for k, t in enumerate(targets):
            if t >= 0:
                class_map[maps[1] == t] = k + 1
        selector = torch.tensor([1.0 if t >= 0 else 0.0 for t in targets])
        return {"frames": frames, "masks": masks, "class_map": class_map, "selector": selector, "name": video.name}
