"""Overlays of label maps on frames, for people to look at (GIF / MP4)."""
from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from dataset.palette_io import DAVIS_PALETTE

COLOURS = np.array(DAVIS_PALETTE, dtype=np.float32).reshape(256, 3)


def overlay(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """[H, W, 3] uint8 frame + [H, W] labels -> blended frame with black object contours."""
    out = rgb.astype(np.float32)
    fg = labels > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * COLOURS[labels[fg]]
    edges = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edges] = 0
    return out.astype(np.uint8)


def write_gif(frames: list[np.ndarray], path: str, fps: int = 8) -> None:
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def write_mp4(frames: list[np.ndarray], path: str, fps: int = 24) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
