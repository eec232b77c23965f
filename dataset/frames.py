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
    """The frames of one video, a folder of images or a video file: ``name``, ``len()``,
    ``stems`` (output names: the images' file stems, or a video's frame numbers ``%05d``),
    ``times`` (seconds), ``fps``, ``size`` ((height, width) when known without decoding) and
    ``read(indices)`` -> (index, RGB) for a range of step 1 or -1, decoded lazily."""

    def __init__(self, name: str, paths: list[str] | None = None, video: VideoInfo | None = None):
        if (paths is None) == (video is None):
            raise ValueError("a FrameSource is either image paths or a video file")
        self.name, self.paths, self.video = name, paths, video

    def __len__(self) -> int:
        return self.video.frames if self.video else len(self.paths)

    @property
    def stems(self) -> list[str]:
        if self.video:
            return [f"{i:05d}" for i in range(self.video.frames)]
        return [os.path.splitext(os.path.basename(f))[0] for f in self.paths]

    @property
    def fps(self) -> float:
        return self.video.fps if self.video else 24.0

    @property
    def times(self) -> list[float]:
        return self.video.times if self.video else [i / self.fps for i in range(len(self))]

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.video.height, self.video.width) if self.video else None

    def read(self, indices: range | None = None) -> Iterator[tuple[int, np.ndarray]]:
        indices = range(len(self)) if indices is None else indices
        if self.video is not None:
            yield from read_video(self.video, indices)
            return
        for index in indices:
            yield index, read_rgb(self.paths[index])


def iter_frames(seq: VideoSequence) -> Iterator[np.ndarray]:
    """RGB [H, W, 3] uint8 frames of a dataset sequence, in order, one at a time."""
    for _, rgb in source_of(seq).read():
        yield rgb


def source_of(seq: VideoSequence) -> FrameSource:
    """The frames of a dataset sequence (a folder of images)."""
    return FrameSource(seq.name, paths=seq.frames)


def check_frame_sizes(paths: list[str]) -> tuple[int, int]:
    """Every frame of a folder has the first one's displayed size (image headers only); -> (width, height)."""
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
    return first


def open_input(path: str) -> FrameSource:
    """A folder of frames or a video file (its frames counted by decoding, once)."""
    name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
    if os.path.isdir(path):
        frames = list_frames(path)
        check_frame_sizes(frames)
        return FrameSource(name, paths=frames)
    if not os.path.isfile(path):
        raise InputError(f"{path}: --input not found")
    if not path.lower().endswith(VIDEO_EXTENSIONS):
        raise InputError(f"{path}: not a folder of frames or a video file ({', '.join(VIDEO_EXTENSIONS)})")
    return FrameSource(name, video=probe_video(path))
