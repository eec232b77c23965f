"""Video files through FFmpeg (PyAV): probing by decoding, lazy reading in both directions, and
streamed H.264 MP4 / GIF writing. The one video library of the project (PyAV is imported here only).

Frames are RGB [H, W, 3] uint8 as displayed: the container's rotation is applied. Timestamps are
the decoded frames' own (variable frame rates are kept), not a count from the header.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import numpy as np

from util.errors import InputError
from util.publish import temporary_path

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif")
BACKWARD_CHUNK = 16  # frames decoded at a time when reading backwards (memory: this many frames)
OUTPUT_TIME_BASE = Fraction(1, 1000)


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is in requirements.txt
        raise InputError("reading or writing video files needs PyAV: pip install av") from None
    # PyAV's logging stays at its default, off: a Python log callback from FFmpeg's threads can
    # deadlock with other threads (PyAV issue 751), and the studio and the overlapped I/O use threads.
    return av


class DecodeError(InputError):
    """A frame of a video file that was counted could not be decoded on a later read."""


@dataclass
class VideoInfo:
    """What decoding the whole file found. ``times``: seconds of each frame (from its pts);
    ``pts``: the stream's timestamps (None where the container has none); ``rotation``: degrees
    counter-clockwise applied to display; width/height: as displayed."""

    path: str
    frames: int
    width: int
    height: int
    fps: float
    times: list[float]
    pts: list[int | None]
    rotation: int
    truncated_at: int | None = None  # first frame that could not be decoded (frames after it are dropped)


def _displayed(frame, rotation: int) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


def probe_video(path: str, max_pixels: int | None = None, max_frames: int | None = None) -> VideoInfo:
    """Decodes every frame once (frame count, timestamps, rotation). A decoding error after some
    frames keeps those frames (reported on stderr, with the frame number); before any: InputError.
    ``max_pixels`` (a frame) and ``max_frames`` are refused before the frames are decoded (the
    stream's header) or as soon as counting passes them."""
    av = _av()
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: empty file, not a video")
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as exc:
        with open(path, "rb") as f:
            head = f.read(12)
        if head[4:8] == b"ftyp" and isinstance(exc, av.error.InvalidDataError):
            raise InputError(f"{path}: the MP4 file is incomplete (its index is missing: an interrupted recording, "
                             "download or copy?)") from None
        raise InputError(f"{path}: not a readable video file ({exc})") from None
    with container:
        if not container.streams.video:
            raise InputError(f"{path}: the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        declared = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
        if max_pixels is not None and declared > max_pixels:
            raise InputError(f"{path}: frames of {stream.codec_context.width}x{stream.codec_context.height} are more "
                             f"than {max_pixels} pixels (--max_pixels)")
        times, pts, rotation, size, truncated = [], [], 0, None, None
        try:
            for frame in container.decode(stream):
                if max_frames is not None and len(times) >= max_frames:
                    raise InputError(f"{path}: more than {max_frames} frames (--max_frames): cut the video")
                if max_pixels is not None and frame.width * frame.height > max_pixels:
                    raise InputError(f"{path}: frames of {frame.width}x{frame.height} are more than {max_pixels} "
                                     "pixels (--max_pixels)")
                if size is None:
                    rotation = int(frame.rotation or 0)
                    size = (frame.width, frame.height)
                times.append(float(frame.time) if frame.time is not None else len(times) / float(stream.average_rate or 25))
                pts.append(frame.pts)
        except av.error.FFmpegError as exc:
            truncated = len(times)
            if not times:
                raise InputError(f"{path}: frame 0 cannot be decoded ({exc})") from None
            print(f"warning: {path}: frame {truncated} cannot be decoded ({exc}); using frames 0-{truncated - 1}",
                  file=sys.stderr)
    if not times:
        raise InputError(f"{path}: the video has no frames")
    width, height = size
    if round(rotation / 90) % 2:
        width, height = height, width
    span = times[-1] - times[0]
    fps = (len(times) - 1) / span if len(times) > 1 and span > 0 else float(stream.average_rate or 25)
    return VideoInfo(path, len(times), width, height, fps, times, pts, rotation, truncated)


def read_video(info: VideoInfo, indices: range) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB frame) for ``indices`` (a range, step 1 or -1), decoded lazily. Backwards, the
    file is decoded again in chunks of BACKWARD_CHUNK frames from the nearest keyframe."""
    if indices.step == 1:
        yield from _read_forward(info, indices.start, indices.stop)
        return
    if indices.step != -1:
        raise ValueError("read_video reads consecutive frames (step 1 or -1)")
    high = indices.start
    low = indices.stop + 1
    while high >= low:
        start = max(low, high - BACKWARD_CHUNK + 1)
        chunk = list(_read_forward(info, start, high + 1))
        yield from reversed(chunk)
        high = start - 1


def _read_forward(info: VideoInfo, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
    av = _av()
    stop = min(stop, info.frames)
    if start >= stop:
        return
    with av.open(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index_of = None
        if start > 0 and info.pts[start] is not None and len(set(info.pts)) == len(info.pts):
            container.seek(info.pts[start], stream=stream, backward=True, any_frame=False)
            index_of = {p: i for i, p in enumerate(info.pts)}
        index = -1
        try:
            for frame in container.decode(stream):
                index = index_of.get(frame.pts, -1) if index_of is not None else index + 1
                if index < start:
                    continue
                if index >= stop:
                    return
                yield index, _displayed(frame, info.rotation)
                if index == stop - 1:
                    return
        except av.error.FFmpegError as exc:
            raise DecodeError(f"{info.path}: frame {index + 1} cannot be decoded ({exc})") from None
    if index < stop - 1:
        raise DecodeError(f"{info.path}: the video ended at frame {index + 1}, {info.frames} frames were counted")


class VideoWriter:
    """Streams RGB frames into an H.264 MP4 (yuv420p, plays in browsers) or a GIF, frame by frame.

    ``times``: each frame's time in seconds (variable frame rates kept); default: ``fps`` apart.
    Odd sizes are padded by one edge pixel (yuv420p needs even sizes). Written under a temporary name beside ``path``
    and renamed on ``close()``; ``abort()`` removes it."""

    def __init__(self, path: str, fps: float, width: int, height: int):
        av = _av()
        self.path, self.fps = path, fps
        self.gif = path.lower().endswith(".gif")
        self.tmp = temporary_path(path)
        self.container = av.open(self.tmp, "w", format="gif" if self.gif else "mp4")
        rate = Fraction(fps).limit_denominator(1001)
        if self.gif:
            self.stream = self.container.add_stream("gif", rate=rate)
            self.stream.pix_fmt = "rgb8"
        else:
            codec = "libx264" if "libx264" in av.codecs_available else "h264"
            self.stream = self.container.add_stream(codec, rate=rate)
            self.stream.pix_fmt = "yuv420p"
            self.stream.codec_context.time_base = OUTPUT_TIME_BASE
            self.stream.time_base = OUTPUT_TIME_BASE
        self.width, self.height = width + (width % 2 and not self.gif), height + (height % 2 and not self.gif)
        self.stream.width, self.stream.height = self.width, self.height
        self.count = 0
        self.last_pts = -1

    def write(self, rgb: np.ndarray, time: float | None = None) -> None:
        av = _av()
        if rgb.shape[0] != self.height or rgb.shape[1] != self.width:
            rgb = np.pad(rgb, ((0, self.height - rgb.shape[0]), (0, self.width - rgb.shape[1]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if self.gif:
            frame.pts = self.count
        else:
            t = self.count / self.fps if time is None else time
            frame.pts = max(round(t / OUTPUT_TIME_BASE), self.last_pts + 1)
            frame.time_base = OUTPUT_TIME_BASE
            self.last_pts = frame.pts
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.count += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self.container.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.abort() if exc_type else self.close()


def codec_name(path: str) -> str:
    """The codec of a file's first video stream (e.g. 'h264'), for checks and tests."""
    av = _av()
    with av.open(path) as container:
        return container.streams.video[0].codec_context.name


def write_animation(frames, path: str, fps: float = 8.0) -> None:
    """An iterable of RGB frames (one size) -> a GIF or MP4 at ``fps``, streamed."""
    writer = None
    try:
        for rgb in frames:
            if writer is None:
                writer = VideoWriter(path, fps, rgb.shape[1], rgb.shape[0])
            writer.write(rgb)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise ValueError(f"{path}: no frames to write")
    writer.close()
