"""Segment your own videos: folders of frames or video files, and their first frames' masks.

python segment_video.py --checkpoint simvos_bs.pth --layer_index 4 --use_token_learner \
    --input my_video.mp4 --mask first_frame.png --output out/
python segment_video.py ... --input a.mp4 b.mp4 --mask a.png b.png --output out/    # several videos
torchrun --nproc_per_node=4 segment_video.py ... --input videos/*.mp4 --masks_dir masks/ --output out/
Writes out/<name>/<frame>.png (indexed, DAVIS palette) and out/<name>_overlay.{gif,mp4}.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from dataset.davis import VideoSequence
from dataset.frames import iter_frames, open_input
from dataset.palette_io import read_label_png
from evaluation.overlay import overlay, write_gif, write_mp4
from evaluation.plans import video_plans
from evaluation.predictor import add_predictor_flags, build_predictor
from evaluation.runner import run_sequences
from evaluation.sharding import add_shard_flags, sharded
from model.flags import add_model_flags, config_from_args
from util.cli import run_cli
from util.errors import InputError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True, nargs="+", help="folders of frames or video files")
    p.add_argument("--mask", nargs="+", help="indexed PNG of each input's first frame (pixel values = object ids), "
                                             "in the order of --input")
    p.add_argument("--masks_dir", help="indexed PNGs for objects first annotated on later frames, named "
                                       "<frame stem>.png: a folder's frame 'a_12.jpg' -> 'a_12.png'; a video "
                                       "file's frames are numbered from 0: frame 12 -> '00012.png'. With several "
                                       "inputs: one sub-folder per input, named like the input (<masks_dir>/<name>/)")
    p.add_argument("--output", required=True)
    p.add_argument("--overlay", choices=["gif", "mp4", "none"], default="gif")
    add_model_flags(p)
    add_predictor_flags(p)
    add_shard_flags(p)
    return p.parse_args(argv)


def open_videos(args) -> list[VideoSequence]:
    """Each --input with its masks (--mask in order, --masks_dir by frame stem)."""
    if args.mask and len(args.mask) != len(args.input):
        raise InputError(f"--mask: {len(args.mask)} masks for {len(args.input)} inputs (give one per input, in order)")
    if args.masks_dir and not os.path.isdir(args.masks_dir):
        raise InputError(f"{args.masks_dir}: --masks_dir not found")
    videos = []
    for i, path in enumerate(args.input):
        seq = open_input(path)
        if any(v.name == seq.name for v in videos):
            raise InputError(f"{path}: another input is also named {seq.name!r}: their outputs would collide")
        if args.mask:
            if not os.path.isfile(args.mask[i]):
                raise InputError(f"{args.mask[i]}: --mask not found")
            seq.annotations[0] = args.mask[i]
        if args.masks_dir:
            folder = args.masks_dir if len(args.input) == 1 else os.path.join(args.masks_dir, seq.name)
            for index, stem in enumerate(seq.stems):
                mask = os.path.join(folder, stem + ".png")
                if os.path.isfile(mask):
                    seq.annotations[index] = mask
        if not seq.annotations:
            raise InputError(f"{path}: no annotation: give --mask (first frame) or --masks_dir with at least one mask")
        videos.append(seq)
    return videos


def main(argv=None) -> None:
    args = parse_args(argv)
    videos = open_videos(args)
    with sharded(args) as shard:
        predictor = build_predictor(args.checkpoint, config_from_args(args), shard.device, args.amp,
                                    args.max_objects_per_batch)
        stats = run_sequences(predictor, video_plans(videos), args.output, overwrite=True, shard=shard)
        if shard.reports:
            print(stats.summary(predictor.device, args.amp))
        if args.overlay != "none":
            for seq in (v for v in videos if v.name in stats.share):
                write_overlay(seq, args.output, args.overlay)


def write_overlay(seq: VideoSequence, output: str, kind: str) -> None:
    folder = os.path.join(output, seq.name)
    frames = [overlay(rgb, read_label_png(os.path.join(folder, stem + ".png")))
              for rgb, stem in zip(iter_frames(seq), seq.stems)]
    path = os.path.join(output, f"{seq.name}_overlay.{kind}")
    (write_gif if kind == "gif" else write_mp4)(frames, path)
    print(f"overlay: {path}")


if __name__ == "__main__":
    run_cli(main, "the unfinished video was removed")
