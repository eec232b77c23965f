"""Indexed (palette) PNG masks as used by DAVIS and YouTube-VOS."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from util.errors import InputError


def davis_palette() -> list[int]:
    """The DAVIS / PASCAL VOC palette: 256 RGB triplets, flattened (768 ints)."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette += [r, g, b]
    return palette


DAVIS_PALETTE = davis_palette()


def read_label_png(path: str, what: str = "mask") -> np.ndarray:
    """Reads an indexed ('P'), greyscale ('L') or bilevel ('1') PNG as a [H, W] uint8 label map.

    RGB masks are refused: their colours are not labels (often anti-aliased). ``what`` names the
    file in error messages ("mask", "ground truth", ...).
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: {what} not found")
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode not in ("P", "L", "1"):
                raise InputError(f"{path}: {what} is an {img.mode} image, not an indexed (palette) PNG; "
                                 "save object masks as indexed PNGs whose pixel values are object ids")
            return np.array(img.convert("L") if img.mode == "1" else img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path}: unreadable {what} ({exc})") from None


def write_label_png(path: str, labels: np.ndarray, palette: list[int] | None = None) -> None:
    """Writes a [H, W] uint8 label map as an indexed PNG (DAVIS palette by default)."""
    img = Image.fromarray(labels.astype(np.uint8), mode="P")
    img.putpalette(palette or DAVIS_PALETTE)
    img.save(path)


def read_rgb(path: str) -> np.ndarray:
    """Reads an image as [H, W, 3] uint8 RGB."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: frame not found")
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path}: unreadable or corrupt image ({exc})") from None
