"""Scores of MOSE, LVOS, SA-V and generic results, with the numbers and files their official tools
write (J and F per frame as evaluation/jf.py computes them: the same as every one of these tools).

* MOSE, generic: davis2017-evaluation's CSVs over every annotated frame but the first and the last
  of each video (every object id of the ground truth: evaluation/jf.py's generic mode).
* LVOS: lvos-evaluation (LingyiHongfd, v2): for each object of ``<split>_meta.json``, the frames
  ``range(start, end, 5)`` but the first and the ``frame_nums``-th, in an array of ``frame_nums - 2``
  (unscored places stay 0); per object J, F and V (the spread of its per-frame J&F); the global
  means split into seen and unseen videos (``unseen_videos.txt`` of the split, when it has one; J&F
  = the mean of the four seen/unseen J and F means); per object ``<video>_<n>`` (n: its place in meta).
* SA-V: sav_evaluator.py (SAM 2): each object folder on its own, its annotated frames but the first and
  the last, a frame counted once the object was in its ground truth or prediction on a frame so far;
  per object the means of J and F in percent; global means over all objects; ``results.csv``.

    python -m evaluation.vos_scores --dataset lvos --data_root ../LVOS --split valid --results out/ckpt
"""
from __future__ import annotations

import argparse
import functools
import math
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from dataset.benchmarks import BENCHMARKS, DEFAULT_SPLITS, BenchmarkRoot, open_benchmark, sav_objects
from dataset.palette_io import read_label_png
from evaluation.jf import (BOUNDARY_THRESHOLD, SequenceJob, boundaries, content_box, csv_number, disk, evaluate,
                           f_measure, write_csvs)
from util.cli import run_cli
from util.errors import InputError
from util.publish import write_bytes

LVOS_STEP = 5   # LVOS annotates every 5th frame


# ---------------------------------------------------------------------------- frames
@functools.lru_cache(maxsize=8)
def _kernel(radius: int) -> np.ndarray:
    return disk(radius)


def mask_scores(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(J, F) of two [H, W] bool masks: J 1 when both are empty; F davis2017-evaluation's boundary
    measure (the one all three tools use), its radius from the whole frame. Computed inside the box
    around both masks, which gives the whole frame's numbers (evaluation/jf.py's content_box)."""
    radius = math.ceil(BOUNDARY_THRESHOLD * np.linalg.norm(gt.shape))
    box = content_box(gt.view(np.uint8), pred.view(np.uint8))
    gt, pred = gt[box], pred[box]
    union = np.count_nonzero(gt | pred)
    j = 1.0 if union == 0 else np.count_nonzero(gt & pred) / union
    return j, f_measure(boundaries(pred), boundaries(gt), _kernel(radius), radius)


def _in_order(task, items: list, workers: int | None) -> list:
    """``[task(item) for item in items]``, over processes when there are several."""
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(items) > 1:
        with ProcessPoolExecutor(min(workers, len(items))) as pool:
            return list(pool.map(task, items, chunksize=1))
    return [task(item) for item in items]


def _prediction(path: str, shape: tuple[int, int]) -> np.ndarray:
    pred = read_label_png(path, "prediction")
    if pred.shape != shape:
        raise InputError(f"{path}: prediction is {pred.shape[1]}x{pred.shape[0]}, ground truth is {shape[1]}x{shape[0]}")
    return pred


def check_layout(bench: BenchmarkRoot, results: str) -> None:
    """One line when ``results`` is not this benchmark's layout (another benchmark's results). The
    first video tells the layout; a missing video or frame is named when it is read."""
    folder = os.path.join(results, bench.videos[0])
    if not os.path.isdir(folder):
        raise InputError(f"{folder}: no results for video {bench.videos[0]} (is {results} the {bench.name} "
                         "results of this split?)")
    nested = any(os.path.isdir(os.path.join(folder, entry)) for entry in os.listdir(folder))
    if bench.name == "sav" and not nested:
        raise InputError(f"{folder}: label-map PNGs, not SA-V's <video>/<object>/<frame>.png: results of another benchmark?")
    if bench.name != "sav" and nested:
        raise InputError(f"{folder}: per-object folders (SA-V's layout), not {bench.name}'s <video>/<frame>.png label maps")


# ---------------------------------------------------------------------------- MOSE, generic
def davis_style_jobs(bench: BenchmarkRoot, results: str) -> list[SequenceJob]:
    jobs = []
    for video in bench.videos:
        gt_dir = os.path.join(bench.masks, video)
        gt = sorted(os.path.join(gt_dir, f) for f in os.listdir(gt_dir) if f.endswith(".png")) if os.path.isdir(gt_dir) else []
        jobs.append(SequenceJob(video, gt, os.path.join(results, video), "generic"))
    return jobs


# ---------------------------------------------------------------------------- LVOS
def lvos_scored_frames(video: str, obj: int, frame_range: dict) -> list[tuple[int, int]]:
    """[(frame number, place in the object's array of frame_nums - 2)] that lvos-evaluation scores:
    ``range(start, end, 5)`` but its first element and its ``frame_nums``-th (1-based)."""
    count = frame_range["frame_nums"]
    scored = [(t, place - 1) for place, t in enumerate(range(frame_range["start"], frame_range["end"], LVOS_STEP))
              if place not in (0, count - 1)]
    if scored and scored[-1][1] >= count - 2:
        raise InputError(f"video {video} object {obj}: frame_range start..end by {LVOS_STEP} gives more frames than "
                         f"its frame_nums {count} (lvos-evaluation fails on it too)")
    return scored


def lvos_spread(j: np.ndarray, f: np.ndarray) -> float:
    """V: the root mean square deviation of the per-frame J&F from its mean (rounded as the tool)."""
    jf = (j + f) / 2
    return math.sqrt(round(float(np.nansum((np.nanmean(jf) - jf) ** 2) / len(jf)), 4))


def lvos_video_scores(bench: BenchmarkRoot, results: str, video: str) -> list[tuple[str, float, float, float]]:
    """[(<video>_<n>, J, F, V)] of the video's objects in meta order; each PNG is read once."""
    objects = bench.meta[video]
    arrays = {obj: (np.zeros(max(r["frame_nums"] - 2, 0)), np.zeros(max(r["frame_nums"] - 2, 0))) for obj, r in objects.items()}
    by_frame: dict[int, list[tuple[int, int]]] = {}
    for obj, frame_range in objects.items():
        for t, place in lvos_scored_frames(video, obj, frame_range):
            by_frame.setdefault(t, []).append((obj, place))
    for t in sorted(by_frame):
        stem = f"{t:08d}"
        gt = read_label_png(os.path.join(bench.masks, video, stem + ".png"), "ground truth")
        pred = _prediction(os.path.join(results, video, stem + ".png"), gt.shape)
        for obj, place in by_frame[t]:
            arrays[obj][0][place], arrays[obj][1][place] = mask_scores(gt == obj, pred == obj)
    return [(f"{video}_{n + 1}", float(np.nanmean(j)), float(np.nanmean(f)), lvos_spread(j, f))
            for n, (j, f) in enumerate(arrays.values())]


def score_lvos(bench: BenchmarkRoot, results: str, split: str, workers: int | None = None) -> tuple[str, str]:
    videos = sorted(bench.meta)
    rows, groups = [], {"seen": [], "unseen": []}
    for video, video_rows in zip(videos, _in_order(functools.partial(lvos_video_scores, bench, results), videos, workers)):
        rows += video_rows
        groups["unseen" if bench.unseen and video in bench.unseen else "seen"] += [r[1:] for r in video_rows]
    if bench.unseen is None:
        means = np.mean([r[1:] for r in rows], axis=0)
        header, values = ["J&F-Mean", "J-Mean", "F-Mean", "V-Mean"], [(means[0] + means[1]) / 2, *means]
    else:
        seen, unseen = (np.mean(groups[g], axis=0) if groups[g] else np.full(3, np.nan) for g in ("seen", "unseen"))
        header = ["J&F-Mean", "J-Mean", "J-seen-Mean", "J-unseen-Mean", "F-Mean", "F-seen-Mean", "F-unseen-Mean",
                  "V-Mean", "V-seen-Mean", "V-unseen-Mean"]
        values = [(seen[0] + seen[1] + unseen[0] + unseen[1]) / 4]
        for k in range(3):
            values += [(seen[k] + unseen[k]) / 2, seen[k], unseen[k]]
    table = "Sequence,J-Mean,F-Mean,V-Mean\n" + "".join(f"{n},{csv_number(a)},{csv_number(b)},{csv_number(c)}\n" for n, a, b, c in rows)
    return _write_pair(results, split, ",".join(header) + "\n" + ",".join(csv_number(v) for v in values) + "\n", table)


# ---------------------------------------------------------------------------- SA-V
def sav_object_scores(gt_dir: str, pred_dir: str) -> tuple[float, float]:
    """(J, F) in percent of one SA-V object folder, as sav_evaluator.py computes them."""
    frames = sorted(os.listdir(gt_dir))[1:-1]
    js, fs, seen_gt, seen_any = [], [], False, False
    for frame in frames:
        gt = read_label_png(os.path.join(gt_dir, frame), "ground truth") > 0
        pred = _prediction(os.path.join(pred_dir, frame), gt.shape) > 0
        seen_gt |= bool(gt.any())
        seen_any |= bool(gt.any() or pred.any())
        if seen_any:   # frames before the object was anywhere do not count
            j, f = mask_scores(gt, pred)
            js.append(j)
            fs.append(f)
    if not seen_gt:
        raise InputError(f"{gt_dir}: the object is empty on every scored frame (sav_evaluator.py fails on it too)")
    return float(np.mean(js)) * 100, float(np.mean(fs)) * 100


def sav_video_scores(bench: BenchmarkRoot, results: str, video: str) -> dict[str, tuple[float, float]]:
    """{object folder: (J, F) in percent} of one video."""
    return {o: sav_object_scores(os.path.join(bench.masks, video, o), os.path.join(results, video, o))
            for o in sav_objects(bench, video)}


def score_sav(bench: BenchmarkRoot, results: str, split: str, workers: int | None = None) -> tuple[str, str]:
    videos = sorted(bench.videos)
    objects = dict(zip(videos, _in_order(functools.partial(sav_video_scores, bench, results), videos, workers)))
    all_j = [s[0] for v in objects.values() for s in v.values()]
    all_f = [s[1] for v in objects.values() for s in v.values()]
    global_j, global_f = float(np.mean(all_j)), float(np.mean(all_f))
    global_jf = (global_j + global_f) / 2
    width = max(*[len(v) for v in objects], len("Global score"))
    text = f'{"sequence":<{width}},{"obj":>3}, {"J&F":>4}, {"J":>4}, {"F":>4}\n'
    text += f'{"Global score":<{width}},{"":>3}, {global_jf:.1f}, {global_j:.1f}, {global_f:.1f}\n'
    for video, scores in objects.items():
        for obj, (j, f) in scores.items():
            text += f"{video:<{width}},{obj:03}, {(j + f) / 2:>4.1f}, {j:>4.1f}, {f:>4.1f}\n"
    write_bytes(os.path.join(results, "results.csv"), text.encode())
    table = "Sequence,J-Mean,F-Mean\n" + "".join(f"{video}_{obj},{csv_number(j)},{csv_number(f)}\n"
                                                for video, scores in objects.items() for obj, (j, f) in scores.items())
    return _write_pair(results, split, f"J&F-Mean,J-Mean,F-Mean\n{csv_number(global_jf)},{csv_number(global_j)},{csv_number(global_f)}\n", table)


def _write_pair(results: str, split: str, global_text: str, table: str) -> tuple[str, str]:
    paths = os.path.join(results, f"global_results-{split}.csv"), os.path.join(results, f"per-sequence_results-{split}.csv")
    write_bytes(paths[0], global_text.encode())
    write_bytes(paths[1], table.encode())
    return paths


def score_results(bench: BenchmarkRoot, results: str, split: str, workers: int | None = None) -> tuple[str, str]:
    """Scores ``results`` (this benchmark's layout) as its official tool, over ``workers`` processes
    (default: one per CPU); -> the two CSV paths."""
    check_layout(bench, results)
    if bench.name == "lvos":
        paths = score_lvos(bench, results, split, workers)
    elif bench.name == "sav":
        paths = score_sav(bench, results, split, workers)
    else:
        metrics = evaluate(davis_style_jobs(bench, results), workers or os.cpu_count() or 1)
        paths = write_csvs(metrics, results, split)
    for path in paths:
        with open(path) as f:
            print(f"{os.path.basename(path)}:\n{f.read()}", end="")
    return paths


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=BENCHMARKS)
    p.add_argument("--data_root", required=True, help="the benchmark's folder (or its split's folder)")
    p.add_argument("--split", default=None, help="default: mose valid, lvos valid, sav val; generic: names the CSVs")
    p.add_argument("--results", required=True, help="the results folder (MOSE: its Annotations/ folder)")
    p.add_argument("--unseen_videos", default=None, help="lvos: the list of unseen videos (lvos-evaluation's "
                                                         "unseen_videos.txt; default: the split's own, if any)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    split = args.split or DEFAULT_SPLITS[args.dataset]
    score_results(open_benchmark(args.dataset, args.data_root, split, args.unseen_videos), args.results, split,
                  args.workers)


if __name__ == "__main__":
    run_cli(main, "no CSV was written")
