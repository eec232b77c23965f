"""J&F for semi-supervised VOS, as davis2017-evaluation computes it (the computation: evaluation/jf.py).

    python -m evaluation.davis_metrics --davis_path DAVIS/2017 --set val --results_path results/ckpt
    python -m evaluation.davis_metrics --gt GT_DIR --pred PRED_DIR [--results_path OUT]   # any PNG dataset
    ... --report        # also writes <results>/report/index.html (evaluation/report.py)

``--davis_path``: the DAVIS/2017 folder or its trainval/ folder (as in the evaluation script).
Same numbers and byte-identical CSVs as the official toolkit, much faster. Imports no torch.
"""
from __future__ import annotations

import argparse
import os
import time

from evaluation.jf import ScoringInputs, add_scoring_flags, davis_inputs, evaluate, print_tables, scoring_inputs, write_csvs
from util.cli import add_bool_flag, run_cli


def score(inputs: ScoringInputs, set_label: str, workers: int | None = None, report: bool = False) -> dict:
    """Scores, writes ``global_results-<set_label>.csv`` and the per-sequence CSV into ``inputs.out``,
    prints the tables as the official script does (and writes the report)."""
    start = time.time()
    metrics = evaluate(inputs.jobs, workers or os.cpu_count() or 1)
    g_path, s_path = write_csvs(metrics, inputs.out, set_label)
    print(f"Global results saved in {g_path}")
    print(f"Per-sequence results saved in {s_path}")
    print_tables(metrics, set_label)
    print(f"\nTotal time: {time.time() - start:.2f} s")
    if report:
        from evaluation.report import build_report  # matplotlib only when a report is asked for
        path = build_report(metrics, inputs.gt_root, inputs.pred_root, os.path.join(inputs.out, "report"),
                            inputs.image_root, title=os.path.basename(inputs.out.rstrip("/")))
        print(f"report: {path}")
    return metrics


def score_davis(davis_path: str, set_name: str, results_path: str, single_object: bool = False,
                workers: int | None = None, report: bool = False) -> dict:
    """A DAVIS results folder: ``set_name`` of ImageSets/2017 (of 2016 with ``single_object``; the
    files are then named ``<set>2016``)."""
    inputs = davis_inputs(davis_path, set_name, results_path, single_object)
    return score(inputs, set_name + ("2016" if single_object else ""), workers, report)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scoring_flags(p)
    add_bool_flag(p, "--report", False, help="also write <results>/report/index.html")
    args = p.parse_args(argv)
    label = args.set + ("2016" if args.davis2016 and not args.gt else "")
    score(scoring_inputs(args), label, args.workers, args.report)


if __name__ == "__main__":
    run_cli(main, "no CSV was written")
