"""J&F for semi-supervised VOS, computing exactly what davis2017-evaluation computes (docs/method.md, section 8).
The command line is ``python -m evaluation.davis_metrics``.

Same numbers and byte-identical CSVs as the official toolkit, much faster: each PNG is read once;
per frame everything runs inside the box around all non-zero labels, J of all objects comes from
one joint label histogram, and each object's boundaries are found and dilated only inside its own
box (one disk kernel); sequences run over processes.
"""
from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from dataset.davis import davis_root, read_split
from dataset.palette_io import read_label_png
from util.cli import add_bool_flag
from util.errors import InputError
from util.publish import write_bytes

GLOBAL_COLUMNS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
SEQUENCE_COLUMNS = ["Sequence", "J-Mean", "F-Mean"]
BOUNDARY_THRESHOLD = 0.008


# ---------------------------------------------------------------------------- per frame
def disk(radius: int) -> np.ndarray:
    """skimage.morphology.disk: pixels with x^2 + y^2 <= r^2, as uint8."""
    r = np.arange(-radius, radius + 1)
    return (r[None] ** 2 + r[:, None] ** 2 <= radius**2).astype(np.uint8)


def boundaries(mask: np.ndarray) -> np.ndarray:
    """Berkeley seg2bmap (1-pixel boundary, as davis2017-evaluation) of a [H, W] bool mask."""
    e = np.zeros_like(mask)
    s = np.zeros_like(mask)
    se = np.zeros_like(mask)
    e[:, :-1] = mask[:, 1:]
    s[:-1, :] = mask[1:, :]
    se[:-1, :-1] = mask[1:, 1:]
    b = mask ^ e | mask ^ s | mask ^ se
    b[-1, :] = mask[-1, :] ^ e[-1, :]
    b[:, -1] = mask[:, -1] ^ s[:, -1]
    b[-1, -1] = 0
    return b


def _grown(rect: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[slice, slice]:
    """A cv2.boundingRect (x, y, w, h), grown by one pixel, inside the image, as slices.

    seg2bmap on this crop equals seg2bmap on the whole image restricted to it: boundary pixels
    lie at most one pixel above/left of the object, and the crop's added last row/column is empty
    (or is the image's own last row/column), so the special last-row/column rules agree."""
    x, y, w, h = rect
    return slice(max(y - 1, 0), min(y + h + 1, shape[0])), slice(max(x - 1, 0), min(x + w + 1, shape[1]))


def _count_matched(source: np.ndarray, target: np.ndarray, kernel: np.ndarray, radius: int) -> int:
    """Pixels of ``source`` within the kernel of a ``target`` pixel: sum(source * dilate(target)).

    Only the box around both maps (plus the radius) is dilated: outside it the result is zero.
    """
    x, y, w, h = cv2.boundingRect((source | target).view(np.uint8))
    r0, r1 = max(y - radius, 0), min(y + h + radius, source.shape[0])
    c0, c1 = max(x - radius, 0), min(x + w + radius, source.shape[1])
    dilated = cv2.dilate(target[r0:r1, c0:c1].view(np.uint8), kernel)
    return int(np.count_nonzero(source[r0:r1, c0:c1] & dilated.astype(bool)))


def f_measure(pred_b: np.ndarray, gt_b: np.ndarray, kernel: np.ndarray, radius: int) -> float:
    """F of two boundary maps, with the official special cases and float operations."""
    n_fg, n_gt = int(np.count_nonzero(pred_b)), int(np.count_nonzero(gt_b))
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision = _count_matched(pred_b, gt_b, kernel, radius) / float(n_fg)
        recall = _count_matched(gt_b, pred_b, kernel, radius) / float(n_gt)
    if precision + recall == 0:
        return 0
    return 2 * precision * recall / (precision + recall)


def content_box(gt: np.ndarray, pred: np.ndarray) -> tuple[slice, slice]:
    """The box around every non-zero pixel of two [H, W] uint8 label maps, grown as :func:`_grown`:
    scores computed on this crop equal those on the whole frame (outside it both maps are 0)."""
    return _grown(cv2.boundingRect(cv2.bitwise_or(gt, pred)), gt.shape)


def label_pairs(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Joint histogram of two uint8 label maps [H, W] -> [256, 256] float64 counts (gt, pred), in
    one pass (cv2.calcHist: float32 counts, exact below 2^24 pixels). Pixels where both are 0 are
    not counted: they never change a score."""
    if gt.size < 1 << 24:
        pairs = cv2.calcHist([gt, pred], [0, 1], None, [256, 256], [0, 256, 0, 256]).astype(np.float64)
    else:
        pairs = np.bincount(gt.astype(np.intp).ravel() * 256 + pred.ravel(), minlength=256 * 256).reshape(256, 256)
    pairs[0, 0] = 0
    return pairs


def frame_scores(gt: np.ndarray, pred: np.ndarray, object_ids: np.ndarray, kernel: np.ndarray,
                 radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """J and F of each object on one frame, and the label ids that ``pred`` holds:
    gt, pred [H, W] uint8 label maps -> (J [K], F [K], ids).

    Labels not in ``object_ids`` (0, void 255, unknown ids) count as background. Everything is
    computed inside :func:`content_box`, boundaries inside each object's own box (exact, see
    :func:`_grown`).
    """
    box = content_box(gt, pred)
    gt, pred = gt[box], pred[box]
    pairs = label_pairs(gt, pred)
    inter = pairs[object_ids, object_ids]
    gt_area, pred_area = pairs[object_ids].sum(1), pairs[:, object_ids].sum(0)
    union = gt_area + pred_area - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        j = inter / union
    j[np.isclose(union, 0)] = 1
    f = np.ones(len(object_ids), dtype=np.float64)  # both boundaries empty: precision = recall = 1
    for k, obj in enumerate(object_ids):
        if gt_area[k] == 0 and pred_area[k] == 0:
            continue
        g_mask, p_mask = gt == obj, pred == obj
        crop = _grown(cv2.boundingRect((g_mask | p_mask).view(np.uint8)), gt.shape)
        f[k] = f_measure(boundaries(p_mask[crop]), boundaries(g_mask[crop]), kernel, radius)
    return j, f, np.flatnonzero(pairs.sum(0))


# ---------------------------------------------------------------------------- per sequence
@dataclass
class SequenceJob:
    name: str
    gt_paths: list[str]         # all annotated frames, in order
    pred_dir: str
    mode: str = "davis"         # davis: objects 1..max(first gt); generic: all gt ids; single: fg vs bg


def evaluate_sequence(job: SequenceJob) -> tuple[str, np.ndarray, list[str], np.ndarray, np.ndarray]:
    """-> (name, object numbers [K], scored frame stems [T], J [K, T], F [K, T]) over the scored
    frames (all but the first and the last)."""
    if len(job.gt_paths) < 3:
        raise InputError(f"{job.name}: {len(job.gt_paths)} annotated frames; the semi-supervised protocol "
                         "scores frames 1..n-2, so a sequence needs at least 3")
    scored = job.gt_paths[1:-1]
    first = read_label_png(job.gt_paths[0], "ground truth")
    first = np.where(first == 255, 0, first)
    gts = [read_label_png(p, "ground truth") for p in scored]
    preds = []
    for path in scored:
        pred_path = os.path.join(job.pred_dir, os.path.basename(path))
        preds.append(read_label_png(pred_path, f"prediction of sequence {job.name}"))
        if preds[-1].shape != gts[len(preds) - 1].shape:
            raise InputError(f"{pred_path}: prediction is {preds[-1].shape[1]}x{preds[-1].shape[0]}, "
                             f"ground truth is {gts[len(preds) - 1].shape[1]}x{gts[len(preds) - 1].shape[0]}")
    if job.mode == "single":
        gts = [(g != 0).astype(np.uint8) for g in gts]
        preds = [(p != 0).astype(np.uint8) for p in preds]
        object_ids = np.array([1])
    elif job.mode == "generic":
        ids = set()
        for g in [first] + gts + [read_label_png(job.gt_paths[-1], "ground truth")]:
            ids.update(np.unique(g).tolist())
        object_ids = np.array(sorted(ids - {0, 255}), dtype=np.int64)
    else:
        object_ids = np.arange(1, int(first.max()) + 1)
    unknown = np.ones(256, dtype=bool)
    unknown[object_ids] = False
    unknown[0] = False
    radius = math.ceil(BOUNDARY_THRESHOLD * np.linalg.norm(gts[0].shape))
    kernel = disk(radius)
    j = np.zeros((len(object_ids), len(scored)))
    f = np.zeros((len(object_ids), len(scored)))
    for t, (path, g, p) in enumerate(zip(scored, gts, preds)):
        j[:, t], f[:, t], predicted = frame_scores(g, p, object_ids, kernel, radius)
        extra = predicted[unknown[predicted]]
        if len(extra):
            raise InputError(f"{job.name}/{os.path.basename(path)}: prediction has object id {int(extra.max())}, "
                             f"ground truth has {len(object_ids)} object(s)")
    stems = [os.path.splitext(os.path.basename(p))[0] for p in scored]
    return job.name, object_ids if job.mode == "generic" else np.arange(1, len(object_ids) + 1), stems, j, f


@dataclass
class SequenceScores:
    """Per-frame scores of one sequence: objects [K] (their ids), frames [T] (scored stems),
    J and F [K, T]."""

    objects: list[int]
    frames: list[str]
    J: np.ndarray
    F: np.ndarray


def statistics(values: np.ndarray) -> tuple[float, float, float]:
    """(Mean, Recall, Decay) as davis2017-evaluation's db_statistics, including its uint8 bin
    indices (which wrap around past 256 frames: kept so that results stay identical)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(values)
        recall = np.nanmean(values > 0.5)
    ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8)
    bins = [values[ids[i]:ids[i + 1] + 1] for i in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return mean, recall, decay


# ---------------------------------------------------------------------------- all
def evaluate(jobs: list[SequenceJob], workers: int = 1) -> dict:
    """-> {'J': {'M','R','D': lists, 'M_per_object': {seq_k: value}}, 'F': likewise,
    'frames': {seq: SequenceScores}} (the per-frame numbers, for reports)."""
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(evaluate_sequence, jobs, chunksize=1))
    else:
        results = [evaluate_sequence(job) for job in jobs]
    metrics = {m: {"M": [], "R": [], "D": [], "M_per_object": {}} for m in ("J", "F")}
    metrics["frames"] = {name: SequenceScores(list(map(int, numbers)), stems, j, f)
                         for name, numbers, stems, j, f in results}
    for name, numbers, _, j, f in results:
        for k, number in enumerate(numbers):
            for key, values in (("J", j[k]), ("F", f[k])):
                mean, recall, decay = statistics(values)
                metrics[key]["M"].append(mean)
                metrics[key]["R"].append(recall)
                metrics[key]["D"].append(decay)
                metrics[key]["M_per_object"][f"{name}_{number}"] = mean
    return metrics


def csv_number(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else "%.3f" % value


def result_tables(metrics: dict) -> tuple[list[str], list[list]]:
    J, F = metrics["J"], metrics["F"]
    g = [(np.mean(J["M"]) + np.mean(F["M"])) / 2.0, np.mean(J["M"]), np.mean(J["R"]), np.mean(J["D"]),
         np.mean(F["M"]), np.mean(F["R"]), np.mean(F["D"])]
    per_seq = [[name, J["M_per_object"][name], F["M_per_object"][name]] for name in J["M_per_object"]]
    return g, per_seq


def write_csvs(metrics: dict, out_dir: str, set_name: str) -> tuple[str, str]:
    """global_results-<set>.csv and per-sequence_results-<set>.csv, formatted as pandas writes
    them in the official toolkit (float_format '%.3f', no index). Written atomically."""
    g, per_seq = result_tables(metrics)
    files = {
        f"global_results-{set_name}.csv": ",".join(GLOBAL_COLUMNS) + "\n" + ",".join(csv_number(v) for v in g) + "\n",
        f"per-sequence_results-{set_name}.csv": ",".join(SEQUENCE_COLUMNS) + "\n"
        + "".join(f"{n},{csv_number(jm)},{csv_number(fm)}\n" for n, jm, fm in per_seq),
    }
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, text in files.items():
        path = os.path.join(out_dir, name)
        write_bytes(path, text.encode())  # shards may score together: one temporary file each
        paths.append(path)
    return paths[0], paths[1]


def print_tables(metrics: dict, set_name: str) -> None:
    """The two tables as the official script prints them (pandas ``to_string(index=False)``)."""
    import pandas as pd
    g, per_seq = result_tables(metrics)
    print(f"--------------------------- Global results for {set_name} ---------------------------")
    print(pd.DataFrame(data=np.reshape(np.array(g), [1, len(g)]), columns=GLOBAL_COLUMNS).to_string(index=False))
    print(f"\n---------- Per sequence results for {set_name} ----------")
    print(pd.DataFrame(data=per_seq, columns=SEQUENCE_COLUMNS).to_string(index=False))


# ---------------------------------------------------------------------------- datasets
def davis_jobs(davis_root: str, set_name: str, results_path: str, single_object: bool = False,
               year: str = "2017") -> list[SequenceJob]:
    names = read_split(os.path.join(davis_root, "ImageSets", "2016" if single_object else year, f"{set_name}.txt"))
    jobs = []
    for name in names:
        gt_dir = os.path.join(davis_root, "Annotations", "480p", name)
        if not os.path.isdir(gt_dir):
            raise InputError(f"{gt_dir}: ground-truth folder of sequence {name} not found")
        pred_dir = os.path.join(results_path, name)
        if not os.path.isdir(pred_dir):
            raise InputError(f"{pred_dir}: no predictions for sequence {name}")
        gt_paths = sorted(os.path.join(gt_dir, f) for f in os.listdir(gt_dir) if f.endswith(".png"))
        jobs.append(SequenceJob(name, gt_paths, pred_dir, "single" if single_object else "davis"))
    return jobs


def generic_jobs(gt_root: str, pred_root: str) -> list[SequenceJob]:
    if not os.path.isdir(gt_root):
        raise InputError(f"{gt_root}: --gt folder not found")
    jobs = []
    for name in sorted(os.listdir(gt_root)):
        gt_dir = os.path.join(gt_root, name)
        if not os.path.isdir(gt_dir):
            continue
        pred_dir = os.path.join(pred_root, name)
        if not os.path.isdir(pred_dir):
            raise InputError(f"{pred_dir}: no predictions for sequence {name}")
        gt_paths = sorted(os.path.join(gt_dir, f) for f in os.listdir(gt_dir) if f.endswith(".png"))
        jobs.append(SequenceJob(name, gt_paths, pred_dir, "generic"))
    if not jobs:
        raise InputError(f"{gt_root}: no sequence folders")
    return jobs


# ---------------------------------------------------------------------------- command-line inputs
@dataclass
class ScoringInputs:
    jobs: list[SequenceJob]
    out: str                    # where the CSVs (and a report) go
    gt_root: str
    pred_root: str
    image_root: str | None      # frames, for overlays (DAVIS mode)


def add_scoring_flags(p) -> None:
    """The davis2017-evaluation flags (--davis_path --set --results_path --task) and the generic mode."""
    p.add_argument("--davis_path", help="the DAVIS/2017 folder, or its trainval/ folder (Annotations/480p, ImageSets, JPEGImages)")
    p.add_argument("--set", default="val", choices=["train", "val", "test-dev"])
    p.add_argument("--task", default="semi-supervised", choices=["semi-supervised"])
    p.add_argument("--results_path", help="folder of <sequence>/<frame>.png predictions; CSVs are written here")
    add_bool_flag(p, "--davis2016", False, help="DAVIS-2016: one object (all labels merged), ImageSets/2016")
    p.add_argument("--gt", help="generic mode: folder of <sequence>/<frame>.png ground truth")
    p.add_argument("--pred", help="generic mode: folder of <sequence>/<frame>.png predictions (default --results_path)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)


def scoring_inputs(args, pred: str | None = None) -> ScoringInputs:
    """Jobs and folders of the flags of :func:`add_scoring_flags` (``pred`` replaces the predictions)."""
    if args.gt:
        pred_root = pred or args.pred or args.results_path
        if not pred_root:
            raise InputError("generic mode needs --pred (or --results_path) with --gt")
        return ScoringInputs(generic_jobs(args.gt, pred_root), args.results_path or pred_root, args.gt, pred_root, None)
    if args.pred:
        raise InputError("--pred needs --gt (generic mode); with --davis_path give --results_path")
    if not (args.davis_path and args.results_path):
        raise InputError("give --davis_path and --results_path (or --gt and --pred)")
    return davis_inputs(args.davis_path, args.set, args.results_path, args.davis2016, pred)


def davis_inputs(davis_path: str, set_name: str, results_path: str, single_object: bool = False,
                 pred: str | None = None) -> ScoringInputs:
    """``davis_path``: the DAVIS/2017 folder or its trainval/ (test-dev/) folder."""
    root = davis_root(davis_path, "test-dev" if set_name == "test-dev" else "trainval")
    pred_root = pred or results_path
    return ScoringInputs(davis_jobs(root, set_name, pred_root, single_object), results_path,
                         os.path.join(root, "Annotations", "480p"), pred_root, os.path.join(root, "JPEGImages", "480p"))
