"""Evaluate every checkpoint in --model_path on DAVIS-2017 val / test-dev (published command line).

python submit_eval_davis_ours_all.py --model_path test_checkpoints --davis_path ../DAVIS/2017 \
    --output ./results --split val --layer_index 4 --use_token_learner --use_local_window
torchrun --nproc_per_node=8 submit_eval_davis_ours_all.py ...              # one share per GPU
python submit_eval_davis_ours_all.py ... --num_shards 4 --shard_id $I      # job arrays
"""
from __future__ import annotations

import util.cpu_threads  # noqa: F401  (first: OpenMP settings before torch loads)

import argparse
import os

from dataset.davis import davis_root, davis_split
from evaluation.checkpoint_runs import evaluate_checkpoints
from evaluation.davis_metrics import score_davis
from evaluation.plans import davis_plans
from evaluation.runner import INTERRUPTED
from evaluation.sharding import add_shard_flags, sharded
from inference_core.cli import add_predictor_flags
from model.flags import add_model_flags
from util.cli import add_bool_flag, run_cli
from util.errors import InputError

SPLITS = {"val": ("trainval", "2017/val.txt"), "testdev": ("test-dev", "2017/test-dev.txt"),
          "val2016": ("trainval", "2016/val.txt")}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_path", default="test_checkpoints", help="a folder of checkpoints (or one file)")
    p.add_argument("--davis_path", default="../DAVIS/2017",
                   help="the DAVIS/2017 folder holding trainval/ and test-dev/ (or the split's folder itself)")
    p.add_argument("--output", default="results")
    p.add_argument("--split", default="val", choices=sorted(SPLITS),
                   help="val / testdev (DAVIS-2017); val2016: DAVIS-2016 single-object val from trainval/ImageSets/2016")
    p.add_argument("--top", type=int, default=20, help="accepted for compatibility; unused by SimVOS")
    add_model_flags(p)
    add_predictor_flags(p)
    add_bool_flag(p, "--save_scores", False,
                  help="also write each frame's (K+1, H, W) float16 probabilities to <output>/<ckpt>_scores")
    p.add_argument("--sequences", nargs="+", default=None, help="only these sequences")
    add_bool_flag(p, "--overwrite", False, help="recompute sequences that are already complete")
    add_bool_flag(p, "--report", False, help="after J&F (val splits), write <output>/<ckpt>/report/index.html")
    add_shard_flags(p)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    with sharded(args) as shard:
        evaluate(args, shard)


def evaluate(args, shard) -> None:
    subdir, imset = SPLITS[args.split]
    root = davis_root(args.davis_path, subdir)
    names = davis_split(root, imset)
    if args.sequences:
        unknown = sorted(set(args.sequences) - set(names))
        if unknown:
            raise InputError(f"--sequences: {', '.join(unknown)} not in {imset}")
        names = [n for n in names if n in set(args.sequences)]
    scored = args.split in ("val", "val2016") and not args.sequences

    def finish(name: str, out: str) -> None:
        if scored:
            score_davis(root, "val", out, single_object=args.split == "val2016", report=args.report)

    evaluate_checkpoints(args, shard, davis_plans(root, names), lambda name: os.path.join(args.output, name),
                         finish, "J&F not computed yet" if scored else "not complete yet",
                         (lambda name: os.path.join(args.output, name + "_scores")) if args.save_scores else None)


if __name__ == "__main__":
    run_cli(main, INTERRUPTED)
