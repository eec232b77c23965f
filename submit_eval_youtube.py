"""Evaluate checkpoints on YouTube-VOS 2018/2019 valid: all frames, objects introduced where
their first annotation is, output for the frames of valid/JPEGImages, and a zip for the server.

python submit_eval_youtube.py --model_path test_checkpoints --yv_path ../YouTube2019 --output results_yv \
    --layer_index 4 --use_token_learner
torchrun --nproc_per_node=8 submit_eval_youtube.py ...                  # one share per GPU
python submit_eval_youtube.py ... --num_shards 16 --shard_id $I         # job arrays
"""
from __future__ import annotations

import util.cpu_threads  # noqa: F401  (first: OpenMP settings before torch loads)

import argparse
import os

from evaluation.checkpoint_runs import evaluate_checkpoints
from evaluation.plans import youtube_plans
from evaluation.runner import INTERRUPTED
from evaluation.sharding import add_shard_flags, sharded
from evaluation.submission import zip_annotations
from inference_core.cli import add_predictor_flags
from model.flags import add_model_flags
from util.cli import add_bool_flag, run_cli


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


def main(argv=None) -> None:
    args = parse_args(argv)
    with sharded(args) as shard:
        evaluate(args, shard)


def evaluate(args, shard) -> None:
    plans = youtube_plans(args.yv_path, args.split, args.sparse, args.videos)

    def finish(name: str, out: str) -> None:
        zip_path = os.path.join(args.output, name, f"{name}.zip")
        zip_annotations(out, zip_path)
        print(f"submission archive: {zip_path}")

    evaluate_checkpoints(args, shard, plans, lambda name: os.path.join(args.output, name, "Annotations"),
                         finish, "no archive yet")


if __name__ == "__main__":
    run_cli(main, INTERRUPTED)
