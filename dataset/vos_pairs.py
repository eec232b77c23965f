"""Training pairs (docs/method.md, section 7): one video, a reference and a query frame, up to two targets.

Both frames and their label maps get the same geometric parameters; masks are resampled with
pixel-centre nearest sampling, so they stay aligned with their images.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from dataset.davis import IMAGE_EXTENSIONS
from dataset.masks import read_user_mask
from model.inputs import IMAGENET_MEAN, IMAGENET_STD
from util.errors import InputError

IMAGE_FILL = (124, 116, 104)
BICUBIC = v2.InterpolationMode.BICUBIC
NEAREST = v2.InterpolationMode.NEAREST  # on PIL images: PIL's nearest, pixel-centre sampling


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


@dataclass(frozen=True)
class VOSFolder:
    """A training source of ``--vos_datasets NAME:DIR:WEIGHT[:MAX_JUMP]``: a VOS-layout folder
    (``DIR/JPEGImages/<video>/``, ``DIR/Annotations/<video>/<stem>.png``), its pairs repeated
    ``weight`` times in the mix (as ``--davis_repeat``), frames at most ``max_jump`` apart (default:
    the DAVIS jump, for folders of every frame)."""

    name: str
    root: str
    weight: int
    max_jump: int | None = None


def parse_vos_folder(spec: str) -> VOSFolder:
    """``NAME:DIR:WEIGHT[:MAX_JUMP]`` (DIR may hold colons) -> VOSFolder; bad specs are InputErrors."""
    name, _, rest = spec.partition(":")
    parts = rest.rsplit(":", 2)
    numbers = [p for p in parts[1:] if p.isdigit()]
    root = ":".join(parts[:len(parts) - len(numbers)])
    if not name or not root or not numbers or int(numbers[0]) < 1 or (len(numbers) == 2 and int(numbers[1]) < 1):
        raise InputError(f"--vos_datasets {spec}: expected NAME:DIR:WEIGHT[:MAX_JUMP] with a weight and jump of at "
                         "least 1, e.g. mose:../MOSE/train:1")
    return VOSFolder(name, root, int(numbers[0]), int(numbers[1]) if len(numbers) == 2 else None)


def vos_folder_videos(folder: VOSFolder, min_frames: int = 2) -> list[Video]:
    """The videos of a VOS-layout folder, each as its frames that have a mask (sparse annotations,
    such as YouTube-VOS's or MOSE's 6 fps ones, give pairs of annotated frames)."""
    for sub in ("JPEGImages", "Annotations"):
        if not os.path.isdir(os.path.join(folder.root, sub)):
            raise InputError(f"no {sub} in {folder.root}: is --vos_datasets {folder.name}:{folder.root} a VOS-layout "
                             "folder (JPEGImages/<video>/, Annotations/<video>/)?")
    image_root, mask_root = os.path.join(folder.root, "JPEGImages"), os.path.join(folder.root, "Annotations")
    videos = []
    for name in sorted(os.listdir(image_root)):
        img_dir, mask_dir = os.path.join(image_root, name), os.path.join(mask_root, name)
        if not os.path.isdir(img_dir) or not os.path.isdir(mask_dir):
            continue
        files = sorted(f for f in os.listdir(img_dir) if f.lower().endswith(IMAGE_EXTENSIONS))
        pairs = [(os.path.join(img_dir, f), os.path.join(mask_dir, os.path.splitext(f)[0] + ".png")) for f in files]
        pairs = [(f, m) for f, m in pairs if os.path.isfile(m)]
        if len(pairs) >= min_frames:
            videos.append(Video(name, [f for f, _ in pairs], [m for _, m in pairs]))
    if not videos:
        raise InputError(f"{folder.root}: no video with {min_frames} or more annotated frames (--vos_datasets {folder.name})")
    return videos


def sample_pair(n: int, max_jump: int, rng: random.Random) -> tuple[int, int]:
    """(reference, query) indices: first uniform in [0, n-2], second in [first+1, min(n, first+max_jump)-1],
    order reversed with probability 0.5."""
    first = rng.randint(0, n - 2)
    second = rng.randint(first + 1, min(n, first + max_jump) - 1) if max_jump > 1 else first + 1
    return (second, first) if rng.random() < 0.5 else (first, second)


def sample_with_previous(n: int, max_jump: int, rng: random.Random) -> tuple[int, int, int]:
    """(reference, previous, query) indices, as inference sees them: a pair of :func:`sample_pair`
    (its order kept) and the frame just before the query, in the pair's direction (the reference
    itself when the two are neighbours)."""
    reference, query = sample_pair(n, max_jump, rng)
    return reference, query - 1 if query > reference else query + 1, query


class PairAugmentation:
    """Spec section 7. Shared by both frames: flip, resized crop, colour jitter, grayscale; per frame:
    affine, jitter. Geometry runs on PIL images, masks with PIL's nearest (pixel-centre sampling, as
    published), so a mask stays aligned with its bicubically resampled image. Every random draw comes
    from torch's global generator (seed it to make a sample reproducible)."""

    def __init__(self, size: int):
        self.size = [size, size]
        self.shared_colour = v2.Compose([v2.ColorJitter(0.1, 0.03, 0.03, 0), v2.RandomGrayscale(0.05)])
        self.frame_colour = v2.ColorJitter(0.01, 0.01, 0.01, 0)
        self.normalise = v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                                     v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __call__(self, images: list[Image.Image], labels: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """T images and label maps -> frames [T, 3, S, S] normalised, label maps [T, S, S] uint8."""
        masks = [Image.fromarray(lab) for lab in labels]
        if torch.rand(1).item() < 0.5:
            images, masks = [F.horizontal_flip(x) for x in images], [F.horizontal_flip(m) for m in masks]
        box = T.RandomResizedCrop.get_params(images[0], scale=[0.36, 1.0], ratio=[3 / 4, 4 / 3])
        images = [F.resized_crop(x, *box, self.size, interpolation=BICUBIC) for x in images]
        masks = [F.resized_crop(m, *box, self.size, interpolation=NEAREST) for m in masks]
        images = list(self.shared_colour(*images))
        frames, maps = [], []
        for image, mask in zip(images, masks):
            angle, translate, scale, shear = T.RandomAffine.get_params([-15.0, 15.0], None, None, [-10.0, 10.0], self.size)
            image = F.affine(image, angle, translate, scale, shear, interpolation=BICUBIC, fill=list(IMAGE_FILL))
            mask = F.affine(mask, angle, translate, scale, shear, interpolation=NEAREST, fill=0)
            frames.append(self.normalise(self.frame_colour(image)))
            maps.append(torch.from_numpy(np.array(mask, dtype=np.uint8)))
        return torch.stack(frames), torch.stack(maps)


def _read_image(path: str, what: str) -> Image.Image:
    """The decoded image of ``path``; InputError naming it when it is gone or unreadable (a data
    file deleted or replaced under a run)."""
    try:
        img = Image.open(path)
        img.load()  # reads the pixels and closes the file
        return img
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found (deleted during the run?)", path) from None
    except (OSError, SyntaxError) as exc:
        raise InputError(f"{path}: unreadable {what} ({exc})", path) from None


def _naming(path: str, read, *args):
    """``read(*args)``, its InputError naming ``path`` as the file at fault."""
    try:
        return read(*args)
    except InputError as exc:
        raise InputError(str(exc), exc.path or path) from None


class VOSPairDataset(Dataset):
    """Items, indexed by (video index, sample seed), each a pure function of both: ``frames``
    [T, 3, S, S] (reference frames, then the query), ``masks`` [T, 2, S, S] (frame, target),
    ``class_map`` [S, S] long (query: 0 background, 1 and 2 the targets), ``selector`` [2] (target
    slots trained), ``name``. T = 2 (a reference and the query, as published) or, with
    ``memory_frames=2``, 3: the reference, the frame just before the query and the query (the
    memory that inference uses)."""

    def __init__(self, videos: list[Video], max_jump: int, size: int, retries: int = 5, memory_frames: int = 1):
        if memory_frames not in (1, 2):
            raise ValueError(f"memory_frames is 1 or 2, not {memory_frames}")
        self.videos = videos
        self.max_jump = max_jump
        self.sample = sample_pair if memory_frames == 1 else sample_with_previous
        self.retries = retries
        self.augment = PairAugmentation(size)

    def __len__(self) -> int:
        return len(self.videos)

    def frames_of(self, video, rng: random.Random) -> tuple[int, ...]:
        """The frame indices of one sample: the reference frame(s), then the query."""
        return self.sample(len(video.frames), self.max_jump, rng)

    def labels_of(self, video, index: int) -> np.ndarray:
        return np.array(_read_image(video.masks[index], "mask"), dtype=np.uint8)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        index, seed = item
        video = self.videos[index]
        rng = random.Random(seed)
        with torch.random.fork_rng(devices=[]):  # the caller's generator is left as it was
            torch.manual_seed(seed)
            for _ in range(self.retries):
                ids = self.frames_of(video, rng)
                images = [_read_image(video.frames[i], "frame").convert("RGB") for i in ids]
                labels = [_naming(video.masks[i], self.labels_of, video, i) for i in ids]
                frames, maps = self.augment(images, labels)
                present = [int(v) for v in maps[0].unique() if v not in (0, 255)]
                if present:
                    break
        # Two target slots; -1 = no object. No object at all after the retries: the first slot is
        # trained as empty (the network learns to predict nothing), as published.
        targets = (rng.sample(present, 2) if len(present) > 1 else present + [-1, -1])[:2]
        masks = torch.stack([(maps == t).float() for t in targets], dim=1)  # [T frames, 2 targets, S, S]
        class_map = torch.zeros(maps.shape[-2:], dtype=torch.long)
        for k, t in enumerate(targets):
            if t >= 0:
                class_map[maps[-1] == t] = k + 1
        selector = torch.tensor([1.0, 1.0 if targets[1] >= 0 else 0.0])
        return {"frames": frames, "masks": masks, "class_map": class_map, "selector": selector, "name": video.name}


class AnnotatedPairDataset(VOSPairDataset):
    """Pairs of people's own annotated videos (dataset/annotated.py), where only some frames may
    have a mask: both frames of a pair are annotated ones, at most ``max_jump`` frames apart (the
    nearest annotated neighbour when none is that close), in either order. With probability
    ``static`` a pair is one annotated frame twice: the per-frame affine of the augmentation deforms it into a pair,
    as the static-image pre-training of STCN and XMem does. Masks are read as people make them."""

    def __init__(self, videos, max_jump: int, size: int, static: float = 0.2, retries: int = 5):
        super().__init__(videos, max_jump, size, retries)
        self.static = static

    def frames_of(self, video, rng: random.Random) -> tuple[int, int]:
        marks = video.annotated
        first = rng.choice(marks)
        near = [t for t in marks if t != first and abs(t - first) <= self.max_jump]
        if rng.random() < self.static:
            return first, first
        if not near:
            near = [min((t for t in marks if t != first), key=lambda t: abs(t - first))]
        return first, rng.choice(near)

    def labels_of(self, video, index: int) -> np.ndarray:
        return read_user_mask(video.masks[index]).labels
