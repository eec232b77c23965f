"""Segment your own video: a folder of frames or a video file, and the first frame's mask.

python segment_video.py --checkpoint simvos_bs.pth --layer_index 4 --use_token_learner \
    --input my_video.mp4 --mask first_frame.png --output out/
Writes out/<name>/<frame>.png (indexed, DAVIS palette) and out/<name>_overlay.{gif,mp4}.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from dataset.frames import iter_frames, open_input
from dataset.palette_io import read_label_png
from evaluation.overlay import overlay, write_gif, write_mp4
from evaluation.predictor import add_predictor_flags, build_predictor
from evaluation.runner import run_sequences
from model.flags import add_model_flags, config_from_args
from util.cli import run_cli
from util.errors import InputError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True, help="a folder of frames or a video file")
    p.add_argument("--mask", help="indexed PNG of the first frame (pixel values = object ids)")
    p.add_argument("--masks_dir", help="indexed PNGs for objects first annotated on later frames, named "
                                       "<frame stem>.png: a folder's frame 'a_12.jpg' -> 'a_12.png'; a video "
                                       "file's frames are numbered from 0: frame 12 -> '00012.png'")
    p.add_argument("--output", required=True)
    p.add_argument("--overlay", choices=["gif", "mp4", "none"], default="gif")
    add_model_flags(p)
    add_predictor_flags(p)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    seq = open_input(args.input)
    if args.mask:
        if not os.path.isfile(args.mask):
            raise InputError(f"{args.mask}: --mask not found")
        seq.annotations[0] = args.mask
    if args.masks_dir:
        if not os.path.isdir(args.masks_dir):
            raise InputError(f"{args.masks_dir}: --masks_dir not found")
        for index, stem in enumerate(seq.stems):
            path = os.path.join(args.masks_dir, stem + ".png")
            if os.path.isfile(path):
                seq.annotations[index] = path
    if not seq.annotations:
        raise InputError("give --mask (first frame) or --masks_dir with at least one annotation")
    predictor = build_predictor(args.checkpoint, config_from_args(args), args.device, args.amp,
                                args.max_objects_per_batch)
    stats = run_sequences(predictor, [seq], args.output, overwrite=True)
    print(stats.summary(predictor.device, args.amp))
    if args.overlay != "none":
        folder = os.path.join(args.output, seq.name)
        frames = [overlay(rgb, read_label_png(os.path.join(folder, stem + ".png")))
                  for rgb, stem in zip(iter_frames(seq), seq.stems)]
        path = os.path.join(args.output, f"{seq.name}_overlay.{args.overlay}")
        (write_gif if args.overlay == "gif" else write_mp4)(frames, path)
        print(f"overlay: {path}")


if __name__ == "__main__":
    run_cli(main, "the unfinished video was removed")
