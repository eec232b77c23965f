"""Segment your own videos: video files or folders of frames, and masks on any of their frames.

python segment_video.py --checkpoint simvos_bs.pth --variant simvos_bs --input clip.mp4 --mask first.png --output out/
python segment_video.py ... --input clip.mp4 --masks_dir masks/ --direction nearest --memory keyframes
python segment_video.py ... --input a.mp4 b.mp4 --mask a.png b.png --save palette objects coco --output out/
torchrun --nproc_per_node=4 segment_video.py ... --input videos/*.mp4 --masks_dir masks/ --output out/

Masks: indexed PNGs (values = object ids), black-and-white PNGs (one object) or RGB PNGs (one colour per
object), drawn on the frame as displayed. Outputs at the input's resolution: out/<name>/<frame>.png
(indexed, DAVIS palette), out/<name>_overlay.mp4, and what --save adds (docs/own-videos.md).
"""
from __future__ import annotations

import util.cpu_threads  # noqa: F401  (first: OpenMP settings before torch loads)

import argparse
import os
import re
import time

from dataset.frames import open_input
from evaluation.sharding import add_shard_flags, balance, sharded
from inference_core.cli import add_predictor_flags, add_video_flags, predictor_options, video_options, video_plan
from outputs.formats import SAVE_KINDS
from inference_core.predictor import build_predictor
from outputs.video_job import OVERLAY_KINDS, OwnVideo, outputs_complete, read_annotations, segment_own_video
from model.flags import add_model_flags, config_from_args
from util.cli import add_bool_flag, run_cli
from util.device import peak_memory_mib, precision_name
from util.errors import InputError
from util.progress import FrameProgress
from util.publish import output_folder, remove_leftovers


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True, nargs="+", help="video files or folders of frames")
    p.add_argument("--mask", nargs="+", help="a mask of each input's first frame, in the order of --input")
    p.add_argument("--masks_dir", help="masks of any frames, named after the frame: a folder's frame 'a_12.jpg' -> "
                                       "'a_12.png'; a video file's frame 12 -> '00012.png' (or '12.png'). With several "
                                       "inputs: one sub-folder per input, named like the input (<masks_dir>/<name>/)")
    p.add_argument("--output", required=True)
    p.add_argument("--save", nargs="+", choices=SAVE_KINDS, default=["palette"],
                   help="palette: indexed PNGs (always); objects: a binary PNG folder per object; coco: a COCO dataset file (RLE masks, "
                        "one track per object); probs: float16 probabilities")
    p.add_argument("--overlay", choices=OVERLAY_KINDS, default="mp4", help="an overlay video (H.264 MP4 or GIF)")
    add_bool_flag(p, "--overwrite", False, help="redo videos whose outputs are already complete")
    add_model_flags(p)
    add_predictor_flags(p)
    add_video_flags(p)
    add_shard_flags(p)
    return p.parse_args(argv)


def _masks_in(folder: str, stems: list[str], numbered: bool, label: str) -> dict[int, str]:
    """{frame index: mask path} of a masks folder; a PNG that names no frame is an error."""
    index = {stem: i for i, stem in enumerate(stems)}
    found, unknown = {}, []
    for f in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(f)
        if f.startswith(".") or os.path.isdir(os.path.join(folder, f)):
            continue
        if stem in index:
            found[index[stem]] = os.path.join(folder, f)
        elif numbered and re.fullmatch(r"\d+", stem) and int(stem) < len(stems):
            found[int(stem)] = os.path.join(folder, f)
        else:
            unknown.append(f)
    if unknown:
        looked = f"{stems[0]}.png ... {stems[-1]}.png" + (" (or the frame number: 0.png ...)" if numbered else "")
        raise InputError(f"{folder}: {', '.join(unknown[:5])} names no frame of {label}; mask names looked for: {looked}")
    return found


def open_videos(args) -> list[OwnVideo]:
    """Each --input with its masks (--mask for the first frame, --masks_dir by frame name)."""
    if args.mask and len(args.mask) != len(args.input):
        raise InputError(f"--mask: {len(args.mask)} masks for {len(args.input)} inputs (give one per input, in order)")
    if args.masks_dir and not os.path.isdir(args.masks_dir):
        raise InputError(f"{args.masks_dir}: --masks_dir not found")
    videos = []
    for i, path in enumerate(args.input):
        source = open_input(path)
        if any(v.name == source.name for v in videos):
            raise InputError(f"{path}: another input is also named {source.name!r}: their outputs would collide")
        masks = {}
        if args.masks_dir:
            folder = args.masks_dir if len(args.input) == 1 else os.path.join(args.masks_dir, source.name)
            if os.path.isdir(folder):
                masks = _masks_in(folder, source.stems, source.video is not None, path)
        if args.mask:
            if not os.path.isfile(args.mask[i]):
                raise InputError(f"{args.mask[i]}: --mask not found")
            masks[0] = args.mask[i]
        if not masks:
            raise InputError(f"{path}: no mask: give --mask (first frame) or --masks_dir with masks named after frames")
        videos.append(OwnVideo(source.name, source, masks))
    return videos


def main(argv=None) -> None:
    args = parse_args(argv)
    kinds = sorted(set(args.save) | {"palette"}, key=SAVE_KINDS.index)
    plan = video_plan(args, say=print if os.environ.get("RANK", "0") == "0" else (lambda line: None))
    options = video_options(args)
    # An error before a video is finished leaves no empty --output folder behind.
    with output_folder(args.output, "--output"):
        videos = open_videos(args)
        for video in videos:  # bad masks are refused before the model loads
            read_annotations(video, say=lambda line: None)
        run(args, videos, kinds, plan, options)


def run(args, videos: list[OwnVideo], kinds: list[str], plan: str, options: dict) -> None:
    """Builds the predictor and segments this process's share of ``videos`` into --output."""
    with sharded(args) as shard:
        predictor = build_predictor(args.checkpoint, config_from_args(args, args.checkpoint), shard.device, args.amp,
                                    args.max_objects_per_batch, **predictor_options(args), **options)
        mine = [videos[i] for i in balance([len(v.source) for v in videos], shard.count)[shard.index]]
        todo = [v for v in mine if args.overwrite or not outputs_complete(args.output, v, kinds, args.overlay)]
        if shard.reports and len(todo) < len(mine):
            print(f"{len(mine) - len(todo)} video(s) already complete in {args.output} (--overwrite to redo)")
        remove_leftovers(args.output)  # what a killed run left staged
        progress = FrameProgress(sum(len(v.source) for v in todo), show=shard.reports)
        start, frames = time.perf_counter(), 0
        for video in todo:
            frames += segment_own_video(predictor, video, args.output, kinds, args.overlay, plan,
                                        on_frame=progress.update, say=print if shard.reports else (lambda _: None))
        progress.close()
        seconds = time.perf_counter() - start
        print(f"{len(todo)} video(s), {frames} frames, {seconds:.1f} s, {frames / seconds if seconds else 0:.2f} FPS, "
              f"peak memory {peak_memory_mib(predictor.device):.0f} MiB, {predictor.device.type} "
              f"{precision_name(predictor.device, args.amp)}, size {args.size}, {plan}, memory {args.memory}")


if __name__ == "__main__":
    run_cli(main, "finished videos are kept, the unfinished one was removed")
