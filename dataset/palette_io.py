"""Indexed (palette) PNG masks as used by DAVIS and YouTube-VOS."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
            # Mode '1' holds booleans: 0/1 labels (convert("L") would map 1 to 255, the void label).
            return np.array(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path}: unreadable {what} ({exc})") from None


def write_label_png(path: str, labels: np.ndarray, palette: list[int] | None = None) -> None:
    """Writes a [H, W] uint8 label map as an indexed PNG (DAVIS palette by default)."""
    img = Image.fromarray(labels.astype(np.uint8), mode="P")
    img.putpalette(palette or DAVIS_PALETTE)
    img.save(path)


def read_rgb(path: str) -> np.ndarray:
    """Reads an image as [H, W, 3] uint8 RGB, as displayed: the EXIF orientation is applied;
    greyscale, palette, CMYK and alpha images are converted; 16-bit images are scaled to 8 bits."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: frame not found")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                wide = np.asarray(img, dtype=np.float64)
                top = 65535.0 if img.mode.startswith("I;16") or wide.max() > 255 else 255.0
                grey = np.clip(np.round(wide * (255.0 / top)), 0, 255).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            return np.array(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path}: unreadable or corrupt image ({exc})") from None
