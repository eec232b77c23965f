"""Masks as people make them, read into label maps (0 = background, other values = object ids).

* indexed (palette) PNG: pixel values are object ids (as DAVIS; in a user's mask 255 is an object
  like any other, not the datasets' void label);
* greyscale ('L'), bilevel ('1') or 16-bit PNG whose only non-zero value is one object (a black and
  white mask from any editor: 0 = background, 255 or 1 = the object) -> object 1; several values
  -> those ids when they form a label map: every value a small id (at most MAX_OBJECTS) and the
  image made of flat regions (at most a quarter of the neighbouring pixel pairs differ). Anything
  else (a greyscale photo, a smoothed drawing, objects drawn in grey levels such as 128 and 255) is
  refused as "not a label map";
* RGB(A) PNG, each distinct colour one object: colours of the DAVIS palette keep their index, other
  colours are numbered 1, 2, ... in ascending (R, G, B) order; black and fully transparent pixels are
  background. More distinct colours than MAX_OBJECTS: anti-aliased, refused;
* JPEG (lossy: edges smear into new values) is refused.

``read_user_mask`` also says how it read the file (``first.png: binary mask, 1 object``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dataset.palette_io import DAVIS_PALETTE
from util.errors import InputError
from util.labels import MAX_OBJECTS, object_ids

_PALETTE_INDEX = {tuple(DAVIS_PALETTE[3 * i:3 * i + 3]): i for i in range(255, 0, -1)}


@dataclass
class UserMask:
    labels: np.ndarray  # [H, W] uint8
    kind: str           # "indexed", "binary", "greyscale label map", "RGB colour mask"
    objects: list[int]

    def describe(self, path: str) -> str:
        n = len(self.objects)
        return f"{os.path.basename(path)}: {self.kind}, {n} object{'s' if n != 1 else ''}" + (
            f" (ids {', '.join(map(str, self.objects))})" if n > 1 or self.kind != "binary mask" else "")


def read_user_mask(path: str) -> UserMask:
    """A mask file -> label map, by the rules of this module's docstring (InputError otherwise)."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: mask not found")
    return read_mask_file(path, path)


def read_mask_file(file, name: str) -> UserMask:
    """A mask from a path or an open binary file (``name`` in the messages)."""
    try:
        with Image.open(file) as img:
            img.load()
            if img.format == "JPEG":
                raise InputError(f"{name}: JPEG masks are refused: lossy compression smears the edges into "
                                 "new values (objects); save the mask as PNG")
            img = ImageOps.exif_transpose(img)
            return _labels_of(name, img)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{name}: unreadable mask ({exc})") from None


def _labels_of(path: str, img: Image.Image) -> UserMask:
    if img.mode == "P" and "transparency" not in img.info:
        labels = np.asarray(img, dtype=np.uint8)
        return UserMask(labels, "indexed PNG", object_ids(labels))
    if img.mode in ("1", "L", "I;16", "I;16B", "I;16L", "I", "LA"):
        values = np.asarray(img.convert("L") if img.mode == "LA" else img)
        if img.mode == "LA":
            values = np.where(np.asarray(img)[..., 1] == 0, 0, values)
        return _grey(path, values.astype(np.int64))
    if img.mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr"):
        rgba = np.asarray(img.convert("RGBA"))
        return _colours(path, rgba)
    raise InputError(f"{path}: a {img.mode} image is not a mask (use an indexed, greyscale or RGB PNG)")


# A label map is flat regions: more of its neighbouring pixel pairs differing than this is a photo.
MAX_CHANGING_NEIGHBOURS = 0.25


def changing_neighbours(values: np.ndarray) -> float:
    """Share of horizontally and vertically neighbouring pixel pairs of [H, W] ``values`` that differ."""
    pairs = values[:, 1:].size + values[1:].size
    if not pairs:
        return 0.0
    return float((values[:, 1:] != values[:, :-1]).sum() + (values[1:] != values[:-1]).sum()) / pairs


def _grey(path: str, values: np.ndarray) -> UserMask:
    present = np.unique(values)
    nonzero = present[present != 0]
    if len(nonzero) == 1:
        return UserMask((values != 0).astype(np.uint8), "binary mask", [1])
    changing = changing_neighbours(values)
    above = [int(v) for v in nonzero if not 0 < v <= MAX_OBJECTS]
    what = (f"a greyscale mask is 0 (background) and one small id per object (1, 2, ... at most {MAX_OBJECTS}), or 0 "
            "and one other value for one object: save it without smoothing, or as an indexed PNG")
    if changing > MAX_CHANGING_NEIGHBOURS or len(nonzero) > MAX_OBJECTS:
        raise InputError(f"{path}: not a label map (looks like a photo): a greyscale image with {len(nonzero)} grey "
                         f"levels, {changing:.0%} of neighbouring pixels differ; {what}")
    if above:
        raise InputError(f"{path}: not a label map: object id {above[0]} is outside "
                         f"1-{MAX_OBJECTS} (objects drawn in grey levels such as 128 and 255? a photo?); {what}")
    labels = values.astype(np.uint8)
    return UserMask(labels, "greyscale label map", object_ids(labels))


def _colours(path: str, rgba: np.ndarray) -> UserMask:
    rgb = rgba[..., :3].astype(np.uint32)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    code[rgba[..., 3] == 0] = 0
    colours, inverse = np.unique(code, return_inverse=True)
    objects = colours[colours != 0]
    if len(objects) > MAX_OBJECTS:
        raise InputError(f"{path}: RGB mask with {len(objects)} colours: anti-aliased edges (more colours than "
                         f"there can be objects); save it with one flat colour per object, no smoothing")
    triplets = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in map(int, objects)]
    if all(t in _PALETTE_INDEX for t in triplets):
        ids = [_PALETTE_INDEX[t] for t in triplets]
    else:
        ids = list(range(1, len(objects) + 1))
    lut = np.zeros(len(colours), np.uint8)
    lut[colours != 0] = ids
    labels = lut[inverse.reshape(code.shape)]
    names = ", ".join(f"#{r:02x}{g:02x}{b:02x} -> {i}" for (r, g, b), i in zip(triplets, ids))
    return UserMask(labels, f"RGB colour mask [{names}]", sorted(ids))
