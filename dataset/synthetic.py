"""Synthetic videos in the DAVIS-2017 and YouTube-VOS layouts: textured shapes moving, rotating,
scaling and occluding each other over textured, drifting backgrounds; in the YouTube-VOS variant some
objects enter later. Deterministic for a seed.

    python -m dataset.synthetic --out data/demo/DAVIS/2017/trainval --train 40 --val 8 [--family rich]
    python -m dataset.synthetic --layout youtube --out data/demo/YouTube --train 20 --val 4 --frames 36

``--family``: ``shapes`` (this module's textured polygons), ``rich`` and ``glyph``
(dataset/synthetic_rich.py).
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from dataset.palette_io import write_label_png
from dataset.synthetic_rich import make_glyph_video, make_rich_video


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """[h, w, 3] float in [0, 1]: random colours on a coarse grid, bicubically upsampled."""
    coarse = rng.random((cells, max(2, cells * w // h), 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)


@dataclass
class _Object:
    shape: str
    radius: float
    position: np.ndarray
    velocity: np.ndarray
    angle: float
    spin: float
    scale_speed: float
    colour: np.ndarray
    stripe: np.ndarray   # frequency (fx, fy) of the stripe texture in object coordinates

    def polygon(self, t: int) -> np.ndarray:
        scale = 1 + 0.35 * np.sin(self.scale_speed * t)
        if self.shape == "ellipse":
            a = np.linspace(0, 2 * np.pi, 40, endpoint=False)
            pts = np.stack([np.cos(a), 0.6 * np.sin(a)], 1)
        elif self.shape == "rectangle":
            pts = np.array([[-1, -0.55], [1, -0.55], [1, 0.55], [-1, 0.55]], float)
        elif self.shape == "triangle":
            pts = np.array([[0, -1], [0.95, 0.8], [-0.95, 0.8]], float)
        else:  # star
            a = np.linspace(0, 2 * np.pi, 10, endpoint=False)
            r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
            pts = np.stack([r * np.cos(a), r * np.sin(a)], 1)
        angle = self.angle + self.spin * t
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        return pts @ rot.T * self.radius * scale


def _random_object(rng: np.random.Generator, h: int, w: int) -> _Object:
    radius = rng.uniform(0.2, 0.32) * min(h, w)
    speed = rng.uniform(0.025, 0.05) * min(h, w)
    direction = rng.uniform(0, 2 * np.pi)
    return _Object(
        shape=str(rng.choice(["ellipse", "rectangle", "triangle", "star"])), radius=radius,
        position=np.array([rng.uniform(radius, w - radius), rng.uniform(radius, h - radius)]),
        velocity=speed * np.array([np.cos(direction), np.sin(direction)]),
        angle=rng.uniform(0, np.pi), spin=rng.uniform(-0.12, 0.12), scale_speed=rng.uniform(0.1, 0.3),
        colour=rng.uniform(0.1, 1.0, 3), stripe=rng.uniform(0.15, 0.5, 2))


def make_video(rng: np.random.Generator, n_frames: int, h: int, w: int, n_objects: int,
               appear: list[int] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """-> (frames [h, w, 3] uint8 RGB, label maps [h, w] uint8). Object i+1 is drawn from frame
    ``appear[i]`` on (default 0); later objects are in front (occlusions)."""
    appear = appear or [0] * n_objects
    background = _smooth_noise(rng, h + 64, w + 64, 6) * 0.7 + 0.3 * _smooth_noise(rng, h + 64, w + 64, 24)
    drift = rng.uniform(-1.5, 1.5, 2)
    objects = [_random_object(rng, h, w) for _ in range(n_objects)]
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    frames, labels = [], []
    for t in range(n_frames):
        ox, oy = (np.array([32, 32]) + drift * t).astype(int) % 64
        img = background[oy:oy + h, ox:ox + w].copy()
        label = np.zeros((h, w), np.uint8)
        for i, obj in enumerate(objects):
            pos = obj.position + obj.velocity * t
            # Bounce off the borders (reflect the unbounded trajectory).
            for d, size in ((0, w), (1, h)):
                lo, hi = obj.radius * 0.5, size - obj.radius * 0.5
                span = hi - lo
                p = (pos[d] - lo) % (2 * span)
                pos[d] = lo + (p if p < span else 2 * span - p)
            if t < appear[i]:
                continue
            poly = (obj.polygon(t) + pos).round().astype(np.int32)
            inside = np.zeros((h, w), np.uint8)
            cv2.fillPoly(inside, [poly], 1)
            inside = inside.astype(bool)
            stripes = 0.5 + 0.5 * np.sin((xx - pos[0]) * obj.stripe[0] + (yy - pos[1]) * obj.stripe[1])
            texture = obj.colour[None, None] * (0.55 + 0.45 * stripes[..., None])
            img[inside] = texture[inside]
            label[inside] = i + 1
        frames.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
        labels.append(label)
    return frames, labels


# Video families: "shapes" (above), "rich" and "glyph" (dataset/synthetic_rich.py).
FAMILIES = {"shapes": make_video, "rich": make_rich_video, "glyph": make_glyph_video}


def write_sequence(root: str, name: str, frames: list[np.ndarray], labels: list[np.ndarray],
                   annotated: list[int] | None = None) -> None:
    """JPEGImages/480p/<name>/%05d.jpg and Annotations/480p/<name>/%05d.png (all or some frames)."""
    for t, (frame, label) in enumerate(zip(frames, labels)):
        _save_jpeg(os.path.join(root, "JPEGImages", "480p", name, f"{t:05d}.jpg"), frame)
        if annotated is None or t in annotated:
            _save_label(os.path.join(root, "Annotations", "480p", name, f"{t:05d}.png"), label)


def make_davis_dataset(root: str, n_train: int = 40, n_val: int = 8, size: tuple[int, int] = (112, 192),
                       n_frames: int = 24, seed: int = 0, family: str = "shapes") -> None:
    """A DAVIS-2017-layout dataset (trainval) with ImageSets/2017/{train,val}.txt, videos of ``family``."""
    make_video = FAMILIES[family]
    splits = {"train": [f"train{i:03d}" for i in range(n_train)], "val": [f"val{i:03d}" for i in range(n_val)]}
    for split_index, (split, names) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, split_index])   # val videos do not depend on the size of train
        for name in names:
            frames, labels = make_video(rng, n_frames, *size, int(rng.integers(1, 4)))
            write_sequence(root, name, frames, labels)
    os.makedirs(os.path.join(root, "ImageSets", "2017"), exist_ok=True)
    for split, names in splits.items():
        with open(os.path.join(root, "ImageSets", "2017", f"{split}.txt"), "w") as f:
            f.write("\n".join(names) + "\n")


YOUTUBE_STRIDE = 5  # YouTube-VOS annotates (and, outside all_frames/, ships) every 5th frame


def _youtube_meta(labels: list[np.ndarray], stems: list[str]) -> dict:
    """{"objects": {id: {"category", "frames": annotated stems where the object is visible}}}."""
    objects = {}
    for obj in sorted({int(v) for lab in labels for v in np.unique(lab) if v}):
        frames = [s for lab, s in zip(labels, stems) if (lab == obj).any()]
        if frames:
            objects[str(obj)] = {"category": "shape", "frames": frames}
    return {"objects": objects}


def make_youtube_dataset(root: str, n_train: int = 20, n_valid: int = 4, size: tuple[int, int] = (112, 192),
                         n_frames: int = 36, seed: int = 1, family: str = "shapes") -> None:
    """A YouTube-VOS-layout dataset where objects after the first may enter later (on an annotated frame):

    - ``train/JPEGImages|Annotations/<video>/``: every 5th frame, all objects annotated; ``train/meta.json``;
    - ``valid/JPEGImages/<video>/``: every 5th frame; ``valid/Annotations/<video>/``: for each object only
      the frame where it first appears, holding the objects that start there; ``valid/meta.json``;
    - ``all_frames/valid_all_frames/JPEGImages/<video>/``: every frame;
    - ``valid_ground_truth/<video>/``: label maps of the frames of ``valid/JPEGImages`` (not part of
      YouTube-VOS; for scoring the output of ``submit_eval_youtube.py`` with ``evaluation.davis_metrics --gt``).
    """
    make_video = FAMILIES[family]
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("valid", n_valid)):
        meta = {}
        for i in range(count):
            name = f"{split}{i:03d}"
            n_objects = int(rng.integers(1, 4))
            late = [0] + [int(rng.integers(1, (n_frames - 1) // YOUTUBE_STRIDE + 1)) * YOUTUBE_STRIDE
                          if rng.random() < 0.5 else 0 for _ in range(n_objects - 1)]
            frames, labels = make_video(rng, n_frames, *size, n_objects, appear=late)
            sparse = list(range(0, n_frames, YOUTUBE_STRIDE))
            stems = [f"{t:05d}" for t in sparse]
            info = _youtube_meta([labels[t] for t in sparse], stems)
            meta[name] = info
            split_dir = os.path.join(root, split)
            # train: every stored frame annotated; valid: full labels kept aside for scoring only.
            label_dir = os.path.join(split_dir, "Annotations") if split == "train" else os.path.join(root, "valid_ground_truth")
            for t, stem in zip(sparse, stems):
                _save_jpeg(os.path.join(split_dir, "JPEGImages", name, stem + ".jpg"), frames[t])
                _save_label(os.path.join(label_dir, name, stem + ".png"), labels[t])
            if split == "train":
                continue
            for stem in sorted({o["frames"][0] for o in info["objects"].values()}):
                starting = [int(k) for k, o in info["objects"].items() if o["frames"][0] == stem]
                label = labels[int(stem)]
                _save_label(os.path.join(split_dir, "Annotations", name, stem + ".png"),
                            np.where(np.isin(label, starting), label, 0).astype(np.uint8))
            for t in range(n_frames):
                _save_jpeg(os.path.join(root, "all_frames", "valid_all_frames", "JPEGImages", name, f"{t:05d}.jpg"), frames[t])
        with open(os.path.join(root, split, "meta.json"), "w") as f:
            json.dump({"videos": meta}, f, indent=1)


def _save_jpeg(path: str, frame: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(frame).save(path, quality=92)


def _save_label(path: str, label: np.ndarray) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_label_png(path, label)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layout", choices=["davis", "youtube"], default="davis")
    p.add_argument("--out", required=True)
    p.add_argument("--train", type=int, default=40)
    p.add_argument("--val", type=int, default=8)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--height", type=int, default=112)
    p.add_argument("--width", type=int, default=192)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--family", choices=sorted(FAMILIES), default="shapes",
                   help="shapes: textured polygons; rich: deforming blobs, articulated figures, 1/f textures, "
                        "look-alikes; glyph: letter silhouettes, patterns, grids (the demo's transfer check)")
    args = p.parse_args(argv)
    make = make_davis_dataset if args.layout == "davis" else make_youtube_dataset
    make(args.out, args.train, args.val, (args.height, args.width), args.frames, args.seed, args.family)


if __name__ == "__main__":
    main()
