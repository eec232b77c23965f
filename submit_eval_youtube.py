"""Evaluate checkpoints on YouTube-VOS 2018/2019 valid: all frames, objects introduced where
their first annotation is, output for the frames of valid/JPEGImages, and a zip for the server.

python submit_eval_youtube.py --model_path test_checkpoints --yv_path ../YouTube2019 --output results_yv \
    --layer_index 4 --use_token_learner
"""
from __future__ import annotations

import argparse
import json
import os
import zipfile

from dataset.davis import VideoSequence, list_frames
from evaluation.predictor import add_predictor_flags, build_predictor, checkpoint_files
from evaluation.runner import INTERRUPTED, run_sequences
from model.flags import add_model_flags, config_from_args
from util.cli import run_cli
from util.errors import InputError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_path", default="test_checkpoints", help="a folder of checkpoints (or one file)")
    p.add_argument("--yv_path", default="../YouTube", help="holds valid/ and all_frames/valid_all_frames/")
    p.add_argument("--output", default="results_yv")
    p.add_argument("--split", default="valid", choices=["valid"])
    p.add_argument("--sparse", action="store_true", help="run on the annotated-rate frames of valid/JPEGImages only")
    add_model_flags(p)
    add_predictor_flags(p)
    p.add_argument("--videos", nargs="+", default=None, help="only these videos")
    p.add_argument("--overwrite", action="store_true")
    return p.parse_args(argv)


def youtube_sequences(yv_path: str, split: str, sparse: bool, only: list[str] | None):
    """-> ([lazy VideoSequence], {video: frame stems to write})."""
    split_dir = os.path.join(yv_path, split)
    meta_path = os.path.join(split_dir, "meta.json")
    if not os.path.isfile(meta_path):
        raise InputError(f"{meta_path}: not found (is --yv_path the YouTube-VOS root holding {split}/?)")
    with open(meta_path) as f:
        videos = json.load(f)["videos"]
    frames_root = os.path.join(split_dir, "JPEGImages") if sparse else \
        os.path.join(yv_path, "all_frames", f"{split}_all_frames", "JPEGImages")
    if not os.path.isdir(frames_root):
        raise InputError(f"{frames_root}: folder not found (pass --sparse to use {split}/JPEGImages only)")
    names = sorted(videos) if only is None else only
    missing = sorted(set(names) - set(videos))
    if missing:
        raise InputError(f"--videos: {', '.join(missing)} not in {meta_path}")
    keep = {}
    sequences = []
    for name in names:
        keep[name] = {os.path.splitext(f)[0] for f in os.listdir(os.path.join(split_dir, "JPEGImages", name))}
        starts: dict[str, list[int]] = {}
        for obj, info in videos[name]["objects"].items():
            starts.setdefault(info["frames"][0], []).append(int(obj))

        def build(name=name, starts=starts) -> VideoSequence:
            frames = list_frames(os.path.join(frames_root, name))
            index = {os.path.splitext(os.path.basename(f))[0]: i for i, f in enumerate(frames)}
            annotations, objects = {}, {}
            for stem, ids in starts.items():
                if stem not in index:
                    raise InputError(f"{name}: first annotated frame {stem} is not among its frames")
                annotations[index[stem]] = os.path.join(split_dir, "Annotations", name, stem + ".png")
                objects[index[stem]] = sorted(ids)
            return VideoSequence(name, frames, annotations, objects)
        sequences.append(build)
    return sequences, keep


def zip_annotations(root: str, zip_path: str) -> None:
    tmp = zip_path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for video in sorted(os.listdir(root)):
            folder = os.path.join(root, video)
            if video.startswith(".") or not os.path.isdir(folder):
                continue
            for frame in sorted(os.listdir(folder)):
                z.write(os.path.join(folder, frame), os.path.join("Annotations", video, frame))
    os.replace(tmp, zip_path)


def main(argv=None) -> None:
    args = parse_args(argv)
    print(args)
    config = config_from_args(args)
    sequences, keep = youtube_sequences(args.yv_path, args.split, args.sparse, args.videos)
    for ckpt in checkpoint_files(args.model_path):
        name = os.path.splitext(os.path.basename(ckpt))[0]
        predictor = build_predictor(ckpt, config, args.device, args.amp, args.max_objects_per_batch)
        out = os.path.join(args.output, name, "Annotations")
        stats = run_sequences(predictor, sequences, out, overwrite=args.overwrite, keep_frames=keep)
        print(stats.summary(predictor.device, args.amp))
        zip_path = os.path.join(args.output, name, f"{name}.zip")
        zip_annotations(out, zip_path)
        print(f"submission archive: {zip_path}")


if __name__ == "__main__":
    run_cli(main, INTERRUPTED)
