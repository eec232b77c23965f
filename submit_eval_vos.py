"""Evaluate every checkpoint in --model_path on one benchmark, in the layout its official tool or
server reads, under <output>/<checkpoint>/ (docs/evaluation.md has the table):

    python submit_eval_vos.py --dataset lvos --data_root ../LVOS --split valid --model_path ckpts --output out \\
        --layer_index 4 --use_token_learner --score
    torchrun --nproc_per_node=8 submit_eval_vos.py ...                  # one share per GPU
    python submit_eval_vos.py ... --num_shards 16 --shard_id $I         # job arrays

davis16/davis17: <video>/<frame>.png (DAVIS-2016 val / DAVIS-2017 val or test-dev); youtube18/19,
mose: Annotations/<video>/<frame>.png and <checkpoint>.zip for CodaLab; lvos, generic:
<video>/<frame>.png; sav: <video>/<object>/<frame>.png, one binary PNG per object, its objects
segmented independently unless --independent_objects False.
"""
from __future__ import annotations

import util.cpu_threads  # noqa: F401  (first: OpenMP settings before torch loads)

import argparse
import os

from dataset.benchmarks import DEFAULT_SPLITS as BENCHMARK_SPLITS, open_benchmark
from dataset.davis import davis_root, davis_split
from evaluation.checkpoint_runs import evaluate_checkpoints
from evaluation.davis_metrics import score_davis
from evaluation.plans import benchmark_plans, davis_plans, youtube_plans
from evaluation.runner import INTERRUPTED
from evaluation.sharding import add_shard_flags, sharded
from evaluation.submission import zip_annotations
from evaluation.vos_scores import score_results
from inference_core.cli import add_predictor_flags
from model.flags import add_model_flags
from util.cli import add_bool_flag, run_cli
from util.errors import InputError
from util.publish import write_json

DATASETS = ("davis16", "davis17", "youtube18", "youtube19", "mose", "lvos", "sav", "generic")
DEFAULT_SPLITS = {"davis16": "val", "davis17": "val", "youtube18": "valid", "youtube19": "valid", **BENCHMARK_SPLITS}
DAVIS_SPLITS = {("davis16", "val"): ("trainval", "2016/val.txt"), ("davis17", "val"): ("trainval", "2017/val.txt"),
                ("davis17", "test-dev"): ("test-dev", "2017/test-dev.txt")}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--data_root", required=True, help="the benchmark's folder (or its split's folder)")
    p.add_argument("--split", default=None, help="default: " + ", ".join(f"{d} {s}" for d, s in DEFAULT_SPLITS.items()))
    p.add_argument("--model_path", default="test_checkpoints", help="a folder of checkpoints (or one file)")
    p.add_argument("--output", required=True)
    add_bool_flag(p, "--score", False, help="after segmenting, write global_results-<split>.csv and "
                                            "per-sequence_results-<split>.csv as the benchmark's official tool")
    p.add_argument("--unseen_videos", default=None, help="lvos --score: the list of unseen videos (lvos-evaluation's "
                                                         "unseen_videos.txt; default: the split's own, if any)")
    add_bool_flag(p, "--use_all_masks", False, help="generic: also take objects that first appear in later masks "
                                                    "(mose always does, as YouTube-VOS)")
    add_bool_flag(p, "--independent_objects", None, help="segment each object against the background only (overlaps "
                                                         "kept; label maps give a pixel to the most confident object); "
                                                         "default: soft aggregation, but on for sav")
    add_model_flags(p)
    add_predictor_flags(p)
    p.add_argument("--videos", nargs="+", default=None, help="only these videos")
    p.add_argument("--resume_every", type=int, default=200,
                   help="mose/lvos/sav/generic: save a video's walk every N frames, so that a killed run continues "
                        "it exactly where its results stop (0: redo unfinished videos from their start)")
    add_bool_flag(p, "--overwrite", False, help="recompute videos that are already complete")
    add_shard_flags(p)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    args.split = args.split or DEFAULT_SPLITS[args.dataset]
    with sharded(args) as shard:
        evaluate(args, shard)


def evaluate(args, shard) -> None:
    independent = args.dataset == "sav" if args.independent_objects is None else args.independent_objects
    plans, annotations_folder, score = _plans(args)
    if shard.reports and independent:
        print("objects segmented independently (each against the background only)"
              + (": SA-V's default, as its ground truth overlaps" if args.dataset == "sav" else ""))

    def output_of(name: str) -> str:
        return os.path.join(args.output, name, "Annotations") if annotations_folder else os.path.join(args.output, name)

    def finish(name: str, out: str) -> None:
        write_json(os.path.join(args.output, name, "protocol.json"),
                   {"dataset": args.dataset, "split": args.split, "independent_objects": independent,
                    "use_all_masks": args.use_all_masks or args.dataset == "mose"}, indent=1)
        if annotations_folder:
            zip_path = os.path.join(args.output, name, f"{name}.zip")
            zip_annotations(out, zip_path)
            print(f"submission archive: {zip_path}")
        if score is not None:
            score(out)

    evaluate_checkpoints(args, shard, plans, output_of, finish, "no scores yet" if score else "not complete yet",
                         independent_objects=independent)


def _plans(args):
    """-> (planned videos, whether the output is an Annotations/ folder for CodaLab, scorer of the output or None)."""
    if args.score and args.videos:
        raise InputError("--score scores the whole split: leave out --videos (or score later without it)")
    if args.dataset in ("davis16", "davis17"):
        if (args.dataset, args.split) not in DAVIS_SPLITS:
            raise InputError(f"--split {args.split}: {args.dataset} has " +
                             ", ".join(s for d, s in DAVIS_SPLITS if d == args.dataset))
        subdir, imset = DAVIS_SPLITS[args.dataset, args.split]
        root = davis_root(args.data_root, subdir)
        names = davis_split(root, imset)
        if args.videos:
            names = [n for n in names if n in set(args.videos)]
        single = args.dataset == "davis16"
        scorer = (lambda out: score_davis(root, "val", out, single_object=single)) if args.score else None
        if args.score and args.split != "val":
            raise InputError(f"--score: {args.dataset} {args.split} has no public ground truth (submit to its server)")
        return davis_plans(root, names), False, scorer
    if args.dataset in ("youtube18", "youtube19"):
        if args.score:
            raise InputError(f"--score: YouTube-VOS {args.split} has no public ground truth: submit the zip to CodaLab")
        return youtube_plans(args.data_root, args.split, False, args.videos), True, None
    bench = open_benchmark(args.dataset, args.data_root, args.split, args.unseen_videos)
    if args.resume_every < 0:
        raise InputError(f"--resume_every must be 0 or more, got {args.resume_every}")
    plans = benchmark_plans(bench, args.use_all_masks, args.videos, args.resume_every or None)
    scorer = (lambda out: score_results(bench, out, args.split)) if args.score else None
    return plans, args.dataset == "mose", scorer


if __name__ == "__main__":
    run_cli(main, INTERRUPTED)
