"""J&F for semi-supervised VOS, as davis2017-evaluation computes it (the computation: evaluation/jf.py).

    python -m evaluation.davis_metrics --davis_path DAVIS/2017/trainval --set val --results_path results/ckpt
    python -m evaluation.davis_metrics --gt GT_DIR --pred PRED_DIR [--results_path OUT]   # any PNG dataset
    ... --report        # also writes <results>/report/index.html (evaluation/report.py)

Same numbers and byte-identical CSVs as the official toolkit, much faster.
"""
from __future__ import annotations

import argparse
import os
import time

from evaluation.jf import add_scoring_flags, davis_jobs, evaluate, print_tables, scoring_inputs, write_csvs
from evaluation.report import build_report
from model.flags import add_bool_flag
from util.cli import run_cli


def score_davis(davis_root: str, set_name: str, results_path: str, single_object: bool = False,
                workers: int | None = None, report: bool = False) -> dict:
    """Scores a results folder, writes the two CSVs into it, prints the tables (and writes a report)."""
    start = time.time()
    metrics = evaluate(davis_jobs(davis_root, set_name, results_path, single_object), workers or os.cpu_count() or 1)
    write_csvs(metrics, results_path, set_name)
    print_tables(metrics, set_name)
    print(f"\nTotal time: {time.time() - start:.2f} s")
    if report:
        write_report(metrics, os.path.join(davis_root, "Annotations", "480p"), results_path, results_path,
                     os.path.join(davis_root, "JPEGImages", "480p"))
    return metrics


def write_report(metrics: dict, gt_root: str, pred_root: str, out: str, image_root: str | None) -> None:
    """The evaluation report into ``out/report``, titled by the results folder's name."""
    path = build_report(metrics, gt_root, pred_root, os.path.join(out, "report"), image_root,
                        title=os.path.basename(out.rstrip("/")))
    print(f"report: {path}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scoring_flags(p)
    add_bool_flag(p, "--report", False, help="also write <results>/report/index.html")
    args = p.parse_args(argv)
    start = time.time()
    inputs = scoring_inputs(args)
    metrics = evaluate(inputs.jobs, args.workers)
    g_path, s_path = write_csvs(metrics, inputs.out, args.set)
    print(f"Global results saved in {g_path}")
    print(f"Per-sequence results saved in {s_path}")
    print_tables(metrics, args.set)
    print(f"\nTotal time: {time.time() - start:.2f} s")
    if args.report:
        write_report(metrics, inputs.gt_root, inputs.pred_root, inputs.out, inputs.image_root)


if __name__ == "__main__":
    run_cli(main, "no CSV was written")
