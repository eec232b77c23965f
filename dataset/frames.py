"""Lazy frame sources: a folder of images or a video file, read in either direction.

    source = open_input("clip.mp4")            # or a folder of frames
    for index, rgb in source.read(range(len(source) - 1, -1, -1)):   # backwards, decoded lazily
        ...
Frames are RGB [H, W, 3] uint8 as displayed (EXIF orientation and video rotation applied).
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from dataset.davis import VideoSequence, list_frames
from dataset.palette_io import read_rgb
from dataset.video_io import VIDEO_EXTENSIONS, VideoInfo, probe_video, read_video
from util.errors import InputError


class FrameSource:
    """The frames of one sequence: ``len()``, ``stems`` (output names), ``times`` (seconds),
    ``fps``, and ``read(indices)`` -> (index, RGB) for a range of step 1 or -1."""

    def __init__(self, seq: VideoSequence, info: VideoInfo | None = None):
        self.seq = seq
        self.info = info

    def __len__(self) -> int:
        return len(self.seq.frames)

    @property
    def stems(self) -> list[str]:
        return self.seq.stems

    @property
    def fps(self) -> float:
        return self.info.fps if self.info else 24.0

    @property
    def times(self) -> list[float]:
        return self.info.times if self.info else [i / self.fps for i in range(len(self))]

    def read(self, indices: range | None = None) -> Iterator[tuple[int, np.ndarray]]:
        indices = range(len(self)) if indices is None else indices
        if self.info is not None:
            yield from read_video(self.info, indices)
            return
        for index in indices:
            yield index, read_rgb(self.seq.frames[index])


def iter_frames(seq: VideoSequence) -> Iterator[np.ndarray]:
    """RGB [H, W, 3] uint8 frames of a sequence, in order, one at a time."""
    for _, rgb in source_of(seq).read():
        yield rgb


def source_of(seq: VideoSequence) -> FrameSource:
    if seq.video and seq.video_info is None:
        seq.video_info = probe_video(seq.video)
    return FrameSource(seq, seq.video_info)


def check_frame_sizes(paths: list[str]) -> None:
    """Every frame of a folder has the first one's displayed size (image headers only)."""
    first = None
    for index, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                size = img.size
                if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF orientations that swap the sides
                    size = size[::-1]
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise InputError(f"{path}: unreadable or corrupt image ({exc})") from None
        if first is None:
            first = size
        elif size != first:
            raise InputError(f"{path}: frame {index} is {size[0]}x{size[1]} but the video's frames are "
                             f"{first[0]}x{first[1]}: every frame of a video must have one size")


def open_input(path: str) -> VideoSequence:
    """A folder of frames or a video file as a sequence (a video's frames are named %05d, counted
    by decoding)."""
    name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
    if os.path.isdir(path):
        frames = list_frames(path)
        check_frame_sizes(frames)
        return VideoSequence(name, frames, {})
    if not os.path.isfile(path):
        raise InputError(f"{path}: --input not found")
    if not path.lower().endswith(VIDEO_EXTENSIONS):
        raise InputError(f"{path}: not a folder of frames or a video file ({', '.join(VIDEO_EXTENSIONS)})")
    info = probe_video(path)
    return VideoSequence(name, [f"{i:05d}.jpg" for i in range(info.frames)], {}, video=path, video_info=info)
