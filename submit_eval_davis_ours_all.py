"""Evaluate every checkpoint in --model_path on DAVIS-2017 val / test-dev (published command line).

python submit_eval_davis_ours_all.py --model_path test_checkpoints --davis_path ../DAVIS/2017 \
    --output ./results --split val --layer_index 4 --use_token_learner --use_local_window
torchrun --nproc_per_node=8 submit_eval_davis_ours_all.py ...              # one share per GPU
python submit_eval_davis_ours_all.py ... --num_shards 4 --shard_id $I      # job arrays
"""
from __future__ import annotations

import argparse
import os

from dataset.davis import davis_split
from evaluation.davis_metrics import score_davis
from evaluation.plans import davis_plans
from evaluation.predictor import add_predictor_flags, build_predictor, checkpoint_files
from evaluation.runner import INTERRUPTED, all_complete, run_sequences
from evaluation.sharding import add_shard_flags, sharded
from model.flags import add_bool_flag, add_model_flags, config_from_args
from util.cli import run_cli
from util.errors import InputError

SPLITS = {"val": ("trainval", "2017/val.txt"), "testdev": ("test-dev", "2017/test-dev.txt"),
          "val2016": ("trainval", "2016/val.txt")}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_path", default="test_checkpoints", help="a folder of checkpoints (or one file)")
    p.add_argument("--davis_path", default="../DAVIS/2017", help="the DAVIS/2017 folder holding trainval/ and test-dev/")
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
    config = config_from_args(args)
    subdir, imset = SPLITS[args.split]
    root = os.path.join(args.davis_path, subdir)
    names = davis_split(root, imset)
    if args.sequences:
        unknown = sorted(set(args.sequences) - set(names))
        if unknown:
            raise InputError(f"--sequences: {', '.join(unknown)} not in {imset}")
        names = [n for n in names if n in set(args.sequences)]
    plans = davis_plans(root, names)
    for ckpt in checkpoint_files(args.model_path):
        name = os.path.splitext(os.path.basename(ckpt))[0]
        predictor = build_predictor(ckpt, config, shard.device, args.amp, args.max_objects_per_batch)
        out = os.path.join(args.output, name)
        scores = os.path.join(args.output, name + "_scores") if args.save_scores else None
        if shard.reports:
            print(f"{ckpt} -> {out} ({shard.describe()})")
        stats = run_sequences(predictor, plans, out, scores, args.overwrite, shard)
        if not shard.reports:
            continue
        print(stats.summary(predictor.device, args.amp))
        if args.split in ("val", "val2016") and not args.sequences:
            if all_complete(plans, out):
                score_davis(root, "val", out, single_object=args.split == "val2016", report=args.report)
            else:
                print(f"J&F not computed yet: other shards are still writing {out} (the last shard to finish, "
                      "or a call without --num_shards, scores)")


if __name__ == "__main__":
    run_cli(main, INTERRUPTED)
