"""DAVIS-layout folders: ``JPEGImages/480p/<seq>/*.jpg``, ``Annotations/480p/<seq>/*.png``,
``ImageSets/<year>/<split>.txt``."""
from __future__ import annotations

import os
from dataclasses import dataclass

from util.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class VideoSequence:
    """A dataset sequence. name; frames: image paths in order; annotations: {frame index: mask
    path}; annotation_objects: {frame index: ids to take from that mask} (default: all);
    object_annotations: {frame index: {object id: binary mask path}}, one PNG per object, which
    may overlap (SA-V), instead of ``annotations``."""

    name: str
    frames: list[str]
    annotations: dict[int, str]
    annotation_objects: dict[int, list[int]] | None = None
    object_annotations: dict[int, dict[int, str]] | None = None

    @property
    def stems(self) -> list[str]:
        return [os.path.splitext(os.path.basename(f))[0] for f in self.frames]


def list_frames(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise InputError(f"{folder}: frame folder not found")
    frames = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not frames:
        raise InputError(f"{folder}: no frames (.jpg/.png) in the folder")
    return frames


def read_split(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise InputError(f"{path}: split file not found")
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise InputError(f"{path}: split file lists no sequences")
    return names


def davis_sequence(root: str, name: str, resolution: str = "480p") -> VideoSequence:
    """A semi-supervised DAVIS sequence: all frames, the first frame's annotation."""
    frames = list_frames(os.path.join(root, "JPEGImages", resolution, name))
    stem = os.path.splitext(os.path.basename(frames[0]))[0]
    first = os.path.join(root, "Annotations", resolution, name, stem + ".png")
    if not os.path.isfile(first):
        raise InputError(f"{first}: first-frame annotation of sequence {name} not found")
    return VideoSequence(name, frames, {0: first})


def davis_root(path: str, subset: str = "trainval") -> str:
    """``--davis_path`` means the same in every command: the DAVIS/2017 folder (holding trainval/
    and test-dev/) or one of those folders itself (holding Annotations/). -> the ``subset`` folder."""
    if os.path.isdir(os.path.join(path, "Annotations")):
        return path
    if os.path.isdir(os.path.join(path, subset)):
        return os.path.join(path, subset)
    raise InputError(f"{path}: --davis_path is neither the DAVIS/2017 folder (with {subset}/) nor a folder "
                     "with Annotations/ (and JPEGImages/)")


def davis_split(root: str, split_file: str) -> list[str]:
    """Sequence names of ``root/ImageSets/<split_file>``; checks the layout first."""
    for sub in ("JPEGImages", "Annotations"):
        if not os.path.isdir(os.path.join(root, sub)):
            raise InputError(f"{os.path.join(root, sub)}: folder not found (is --davis_path the DAVIS/2017 folder?)")
    return read_split(os.path.join(root, "ImageSets", split_file))
