"""Videos people annotated themselves, as fine-tuning and its validation read them.

    videos = find_annotated_videos(["my_data/", "DAVIS/2017/", "~/vos-work"])

A folder is read as the first of these it is:
* a studio workspace (``sessions/<id>/meta.json``): each session's decoded frames and its annotated
  frames (``masks/``), never its propagated results;
* a DAVIS root (``JPEGImages/480p/``, or ``2017/trainval/`` / ``trainval/`` holding it);
* the generic layout people keep: ``JPEGImages/<video>/*.jpg`` and ``Annotations/<video>/<stem>.png``.
Annotations may be sparse: a frame without a mask is simply not a reference or a target. Masks are
read as dataset/masks.py reads them (indexed, binary, colour) and must have their frame's size.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from dataset.davis import IMAGE_EXTENSIONS
from util.errors import InputError

JPEG_EXTENSIONS = (".jpg", ".jpeg", ".JPG", ".JPEG")


@dataclass
class AnnotatedVideo:
    """name; frames: image paths in order; masks: {frame index: mask path} (the annotated frames)."""

    name: str
    frames: list[str]
    masks: dict[int, str]

    @property
    def annotated(self) -> list[int]:
        return sorted(self.masks)


def image_size(path: str) -> tuple[int, int]:
    """(width, height) of an image file, from its header."""
    try:
        with Image.open(path) as img:
            return img.size
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: unreadable image ({exc})", path) from None


def _check_sizes(video: AnnotatedVideo) -> None:
    """Every mask has its frame's size (headers only)."""
    for index, mask in video.masks.items():
        frame, got = image_size(video.frames[index]), image_size(mask)
        if frame != got:
            raise InputError(f"{mask}: mask is {got[0]}x{got[1]} but its frame {os.path.basename(video.frames[index])} "
                             f"is {frame[0]}x{frame[1]}", mask)


def _folder_videos(image_root: str, mask_root: str, prefix: str) -> list[AnnotatedVideo]:
    videos = []
    for name in sorted(os.listdir(image_root)):
        folder = os.path.join(image_root, name)
        if not os.path.isdir(folder) or name.startswith("."):
            continue
        frames = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not frames:
            raise InputError(f"{folder}: a video without frames (.jpg/.png)")
        masks = {}
        for i, frame in enumerate(frames):
            stem = os.path.join(mask_root, name, os.path.splitext(os.path.basename(frame))[0])
            if os.path.isfile(stem + ".png"):
                masks[i] = stem + ".png"
            elif jpeg := next((stem + ext for ext in JPEG_EXTENSIONS if os.path.isfile(stem + ext)), None):
                raise InputError(f"{jpeg}: JPEG masks are refused: lossy compression smears the edges into new "
                                 "values (objects); save the mask as PNG", jpeg)
        videos.append(AnnotatedVideo(prefix + name, frames, masks))
    return videos


def _workspace_videos(root: str) -> list[AnnotatedVideo]:
    sessions = os.path.join(root, "sessions")
    videos = []
    for sid in sorted(os.listdir(sessions)):
        folder = os.path.join(sessions, sid)
        try:
            with open(os.path.join(folder, "meta.json")) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            continue  # not a session (a half-created one, a leftover)
        frames = [os.path.join(folder, "frames", f"{i:05d}.jpg") for i in range(int(meta.get("frames", 0)))]
        frames = [f for f in frames if os.path.isfile(f)]
        if not frames:
            raise InputError(f"{folder}: a studio session without frames")
        masks = {i: os.path.join(folder, "masks", f"{i:05d}.png") for i in range(len(frames))
                 if os.path.isfile(os.path.join(folder, "masks", f"{i:05d}.png"))}
        videos.append(AnnotatedVideo(f"{meta.get('name', sid)}-{sid}", frames, masks))
    return videos


def videos_in(folder: str, sessions: set[str] | None = None) -> list[AnnotatedVideo]:
    """The annotated videos of one folder (see the module docstring); ``sessions``: of a studio
    workspace, only these session ids."""
    if not os.path.isdir(folder):
        raise InputError(f"{folder}: folder not found")
    if os.path.isdir(os.path.join(folder, "sessions")):
        videos = _workspace_videos(folder)
        if sessions is not None:
            videos = [v for v in videos if v.name.rsplit("-", 1)[-1] in sessions]
    else:
        for sub in ("2017/trainval", "trainval", ""):
            root = os.path.join(folder, sub)
            if os.path.isdir(os.path.join(root, "JPEGImages", "480p")):
                videos = _folder_videos(os.path.join(root, "JPEGImages", "480p"),
                                        os.path.join(root, "Annotations", "480p"), "")
                break
            if sub == "" and os.path.isdir(os.path.join(root, "JPEGImages")):
                videos = _folder_videos(os.path.join(root, "JPEGImages"), os.path.join(root, "Annotations"), "")
                break
        else:
            raise InputError(f"{folder}: neither a studio workspace (sessions/), a DAVIS root (JPEGImages/480p/) nor "
                             "a folder with JPEGImages/<video>/ and Annotations/<video>/")
    if not videos:
        raise InputError(f"{folder}: no videos in it")
    return videos


def find_annotated_videos(folders: list[str], min_annotated: int = 2, sessions: set[str] | None = None) -> list[AnnotatedVideo]:
    """Every video of ``folders`` (names kept unique), each with at least ``min_annotated``
    annotated frames whose masks have their frames' sizes; else an InputError naming the video."""
    videos, seen = [], set()
    for folder in folders:
        for video in videos_in(folder, sessions):
            if len(video.masks) < min_annotated:
                raise InputError(f"{video.name} ({folder}): {len(video.masks)} annotated frame(s); fine-tuning needs at "
                                 f"least {min_annotated} per video (annotate another frame, or leave the video out)")
            _check_sizes(video)
            name = video.name
            while name in seen:
                name += "_"
            seen.add(name)
            video.name = name
            videos.append(video)
    return videos
