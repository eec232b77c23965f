"""One own video, start to finish: read its masks as people make them, segment it by the chosen
whole-video plan (inference_core/directions.py), write every asked output atomically (a staging folder beside the outputs, util/publish.py,
moved into place at the end), and an overlay video: what segment_video.py runs for each video. The
studio shares its overlay writer and the outputs' writer (outputs/formats.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from dataset.frames import FrameSource
from dataset.masks import read_user_mask
from dataset.palette_io import read_label_png
from dataset.video_io import DecodeError, VideoWriter
from outputs.formats import ResultWriter, output_paths, overlay
from inference_core.predictor import SimVOSPredictor
from util.errors import InputError
from util.labels import ids_of_all
from util.publish import replace, staging
from util.threads import writer_for

OVERLAY_KINDS = ("mp4", "gif", "none")


@dataclass
class OwnVideo:
    """name: output name; source: its frames (a folder or a video file); masks: {frame index: mask file}."""

    name: str
    source: FrameSource
    masks: dict[int, str]


def read_annotations(video: OwnVideo, say=print) -> dict[int, np.ndarray]:
    """{frame index: label map} of every mask of the video; one line per mask says how it was read."""
    labels = {}
    for index in sorted(video.masks):
        mask = read_user_mask(video.masks[index])
        if not mask.objects:
            raise InputError(f"{video.masks[index]}: the mask has no object (all background)")
        say(mask.describe(video.masks[index]) + f", frame {index}")
        labels[index] = mask.labels
    return labels


def overlay_path(out: str, name: str, kind: str) -> str:
    return os.path.join(out, f"{name}_overlay.{kind}")


def outputs_complete(out: str, video: OwnVideo, kinds: list[str], overlay_kind: str) -> bool:
    """Every asked output of a finished run is there (a frame count short means unfinished)."""
    paths = output_paths(out, video.name)
    count = len(video.source)
    folder_ok = lambda p, ext: os.path.isdir(p) and sum(f.endswith(ext) for f in os.listdir(p)) == count
    checks = [folder_ok(paths["palette"], ".png")]
    if "probs" in kinds:
        checks.append(folder_ok(paths["probs"], ".npz"))
    if "objects" in kinds:
        checks.append(os.path.isdir(paths["objects"]) and all(
            folder_ok(os.path.join(paths["objects"], d), ".png") for d in os.listdir(paths["objects"])))
    if "coco" in kinds:
        checks.append(os.path.isfile(paths["coco"]))
    if overlay_kind != "none":
        checks.append(os.path.isfile(overlay_path(out, video.name, overlay_kind)))
    return all(checks)


def segment_own_video(predictor: SimVOSPredictor, video: OwnVideo, out: str, kinds: list[str],
                      overlay_kind: str = "mp4", plan: str = "forward", on_frame=None, say=print) -> int:
    """Segments ``video`` into ``out`` by ``plan`` (``VIDEO_PLANS``; see outputs/formats.py for the
    layout); -> frames.

    on_frame(): called after each frame is written (progress). A frame that cannot be decoded
    part-way keeps the frames finished so far in place and raises InputError; any other error or
    interruption removes the unfinished video's staging folder."""
    masks = read_annotations(video, say)
    objects = ids_of_all(masks.values())
    source = video.source
    info = {"video": video.name, "frames": len(source), "fps": source.fps, "object_ids": objects}
    done = 0
    with staging(os.path.join(out, video.name)) as stage:  # hidden beside the outputs, removed at the end
        frame_files = [os.path.basename(p) for p in source.paths] if source.paths else None
        writer = ResultWriter(stage, kinds, source.stems, source.times, objects, info, frame_files)
        try:
            with writer_for(predictor.overlap_io) as background:  # PNG / RLE encoding beside the network
                for result in predictor.segment_video(source, masks, plan):
                    probs = (result.probs.half().cpu().numpy(), result.object_ids) if "probs" in kinds else None
                    own = dict(zip(result.object_ids, result.object_masks())) if result.independent else None
                    background.submit(writer.write_frame, result.index, result.labels(), probs, own)
                    done += 1
                    if on_frame:
                        on_frame()
        except DecodeError as exc:
            if not done:
                raise
            writer.finish()
            writer.publish(out, video.name)
            raise InputError(f"{exc}; the {done} frames finished before it are kept in "
                             f"{output_paths(out, video.name)['palette']} (a re-run redoes the video)") from None
        writer.finish()
        if overlay_kind != "none":
            write_overlay(source, os.path.join(stage, "palette"), os.path.join(stage, f"overlay.{overlay_kind}"))
        writer.publish(out, video.name)
        if overlay_kind != "none":
            replace(os.path.join(stage, f"overlay.{overlay_kind}"), overlay_path(out, video.name, overlay_kind))
    return done


def write_overlay(source: FrameSource, label_dir: str, path: str, stems: list[str] | None = None) -> None:
    """The frames with their label maps blended in, streamed into an MP4 (H.264) or GIF; frame i's
    label map is ``<label_dir>/<stems[i]>.png`` (default: the source's stems)."""
    stems = source.stems if stems is None else stems
    writer = None
    try:
        for index, rgb in source.read():
            labels = read_label_png(os.path.join(label_dir, stems[index] + ".png"))
            if writer is None:
                writer = VideoWriter(path, source.fps, rgb.shape[1], rgb.shape[0])
            writer.write(overlay(rgb, labels), source.times[index] - source.times[0])
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.close()
