"""Videos people annotated themselves, as fine-tuning and its validation read them.

    videos = find_annotated_videos(["my_data/", "DAVIS/2017/", "~/vos-work"])

A folder is read as the first of these it is:
* a studio workspace (dataset/workspace.py): each session's decoded frames and its annotated
  frames, never its propagated results; sessions picked by id;
* a DAVIS root (``JPEGImages/480p/``, or ``2017/trainval/`` / ``trainval/`` holding it);
* the generic layout people keep: ``JPEGImages/<video>/*.jpg`` and ``Annotations/<video>/<stem>.png``.
Annotations may be sparse: a frame without a mask is simply not a reference or a target. Masks are
read as dataset/masks.py reads them (indexed, binary, colour) and must have their frame's size.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from dataset.davis import IMAGE_EXTENSIONS
from dataset.workspace import WorkspaceLayout
from util.errors import InputError

JPEG_EXTENSIONS = (".jpg", ".jpeg", ".JPG", ".JPEG")


@dataclass
class AnnotatedVideo:
    """name; frames: image paths in order; masks: {frame index: mask path} (the annotated frames)."""

    name: str
    frames: list[str]
    masks: dict[int, str]
    session: str | None = None   # the studio session id, for a video of a workspace

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


def _workspace_videos(root: str, sessions: set[str] | None) -> list[AnnotatedVideo]:
    """The sessions of a studio workspace (``sessions``: only these ids), read through its layout."""
    layout = WorkspaceLayout.at(root)
    ids = layout.session_ids()
    if sessions is not None:
        missing = sorted(set(sessions) - set(ids))
        if missing:
            raise InputError(f"{layout.sessions_dir}: no session {', '.join(missing)}")
        ids = [sid for sid in ids if sid in sessions]
    videos = []
    for sid in ids:
        folder = layout.session(sid)
        try:
            meta = folder.read_meta()
        except (OSError, ValueError):
            if sessions is not None:
                raise InputError(f"{folder.meta_path}: the session cannot be read") from None
            continue  # not a session (a half-created one, a leftover)
        frames = [folder.frame(i) for i in range(meta.frames)]
        frames = [f for f in frames if os.path.isfile(f)]
        if not frames:
            raise InputError(f"{folder.root}: a studio session without frames")
        masks = {i: folder.mask(i) for i in folder.annotated() if i < len(frames)}
        videos.append(AnnotatedVideo(f"{meta.name}-{sid}", frames, masks, session=sid))
    return videos


def videos_in(folder: str, sessions: set[str] | None = None) -> list[AnnotatedVideo]:
    """The annotated videos of one folder (see the module docstring); ``sessions``: of a studio
    workspace, only these session ids."""
    if not os.path.isdir(folder):
        raise InputError(f"{folder}: folder not found")
    if WorkspaceLayout.is_workspace(folder):
        videos = _workspace_videos(folder, sessions)
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


def held_out_sessions(session_ids: list[str], count: int) -> list[str]:
    """The sessions of a workspace that ``--val_videos count`` holds out for validation: a
    workspace's videos come in the order of their session ids, and the last ``count`` are held out."""
    return sorted(session_ids)[-count:] if count > 0 else []
