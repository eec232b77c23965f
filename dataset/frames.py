"""Lazy frame sources: a folder of images or a video file readable by OpenCV."""
from __future__ import annotations

import os
from typing import Iterator

import cv2
import numpy as np

from dataset.davis import VideoSequence, list_frames
from dataset.palette_io import read_rgb
from util.errors import InputError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def iter_frames(seq: VideoSequence) -> Iterator[np.ndarray]:
    """RGB [H, W, 3] uint8 frames of a sequence, one at a time."""
    if seq.video is None:
        for path in seq.frames:
            yield read_rgb(path)
        return
    capture = cv2.VideoCapture(seq.video)
    try:
        for index in range(len(seq.frames)):
            ok, bgr = capture.read()
            if not ok:
                raise InputError(f"{seq.video}: could not decode frame {index}")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def open_input(path: str) -> VideoSequence:
    """A folder of frames or a video file as a sequence (frames named by their stem or %05d)."""
    name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
    if os.path.isdir(path):
        return VideoSequence(name, list_frames(path), {})
    if not os.path.isfile(path):
        raise InputError(f"{path}: --input not found")
    if not path.lower().endswith(VIDEO_EXTENSIONS):
        raise InputError(f"{path}: not a folder of frames or a video file ({', '.join(VIDEO_EXTENSIONS)})")
    capture = cv2.VideoCapture(path)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    if count <= 0:
        raise InputError(f"{path}: OpenCV cannot read frames from this video")
    return VideoSequence(name, [f"{i:05d}.jpg" for i in range(count)], {}, video=path)
