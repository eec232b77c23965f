"""Evaluate checkpoints on YouTube-VOS 2018/2019 valid: all frames, objects introduced where
their first annotation is, output for the frames of valid/JPEGImages, and a zip for the server.

python submit_eval_youtube.py --model_path test_checkpoints --yv_path ../YouTube2019 --output results_yv \
    --layer_index 4 --use_token_learner
torchrun --nproc_per_node=8 submit_eval_youtube.py ...                  # one share per GPU
python submit_eval_youtube.py ... --num_shards 16 --shard_id $I         # job arrays
"""
from __future__ import annotations

import argparse
import os
import zipfile

from evaluation.plans import youtube_plans
from evaluation.predictor import add_predictor_flags, build_predictor, checkpoint_files
from evaluation.runner import INTERRUPTED, all_complete, run_sequences
from evaluation.sharding import add_shard_flags, sharded
from model.flags import add_bool_flag, add_model_flags, config_from_args
from util.cli import run_cli


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_path", default="test_checkpoints", help="a folder of checkpoints (or one file)")
    p.add_argument("--yv_path", default="../YouTube", help="holds valid/ and all_frames/valid_all_frames/")
    p.add_argument("--output", default="results_yv")
    p.add_argument("--split", default="valid", choices=["valid"])
    add_bool_flag(p, "--sparse", False, help="run on the annotated-rate frames of valid/JPEGImages only")
    add_model_flags(p)
    add_predictor_flags(p)
    p.add_argument("--videos", nargs="+", default=None, help="only these videos")
    add_bool_flag(p, "--overwrite", False, help="recompute videos that are already complete")
    add_shard_flags(p)
    return p.parse_args(argv)


def zip_annotations(root: str, zip_path: str) -> None:
    tmp = f"{zip_path}.{os.getpid()}.tmp"  # shards may finish together: one temporary file each
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
    with sharded(args) as shard:
        evaluate(args, shard)


def evaluate(args, shard) -> None:
    config = config_from_args(args)
    plans = youtube_plans(args.yv_path, args.split, args.sparse, args.videos)
    for ckpt in checkpoint_files(args.model_path):
        name = os.path.splitext(os.path.basename(ckpt))[0]
        predictor = build_predictor(ckpt, config, shard.device, args.amp, args.max_objects_per_batch)
        out = os.path.join(args.output, name, "Annotations")
        stats = run_sequences(predictor, plans, out, overwrite=args.overwrite, shard=shard)
        if not shard.reports:
            continue
        print(stats.summary(predictor.device, args.amp))
        if all_complete(plans, out):
            zip_path = os.path.join(args.output, name, f"{name}.zip")
            zip_annotations(out, zip_path)
            print(f"submission archive: {zip_path}")
        else:
            print(f"no archive yet: other shards are still writing {out} (the last shard to finish, "
                  "or a call without --num_shards, writes it)")


if __name__ == "__main__":
    run_cli(main, INTERRUPTED)
