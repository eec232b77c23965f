"""The official davis2017-evaluation algorithm as it runs (for timing only): per frame and per
object, boundary maps of the whole frame, each dilated over the whole frame with the disk, and the
PNGs of a sequence read per object. Same numbers as evaluation.jf, much more work."""
from __future__ import annotations

import math
import os

import cv2
import numpy as np

from dataset.palette_io import read_label_png
from evaluation.jf import BOUNDARY_THRESHOLD, boundaries, disk, statistics


def _f_full_frame(pred: np.ndarray, gt: np.ndarray) -> float:
    radius = math.ceil(BOUNDARY_THRESHOLD * np.linalg.norm(pred.shape))
    kernel = disk(radius)
    pred_b, gt_b = boundaries(pred), boundaries(gt)
    pred_d, gt_d = cv2.dilate(pred_b.astype(np.uint8), kernel), cv2.dilate(gt_b.astype(np.uint8), kernel)
    n_pred, n_gt = pred_b.sum(), gt_b.sum()
    if n_pred == 0 or n_gt == 0:
        precision, recall = float(n_pred == 0), float(n_gt == 0)
    else:
        precision, recall = np.sum(pred_b * gt_d) / n_pred, np.sum(gt_b * pred_d) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def official_evaluate(gt_root: str, pred_root: str, names: list[str]) -> list[tuple]:
    """-> [(J mean, recall, decay), (F mean, recall, decay)] per object of the named sequences."""
    out = []
    for name in names:
        files = sorted(os.listdir(os.path.join(gt_root, name)))
        first = read_label_png(os.path.join(gt_root, name, files[0]))
        for k in range(1, int(np.where(first == 255, 0, first).max()) + 1):
            js, fs = [], []
            for f in files[1:-1]:
                gt = read_label_png(os.path.join(gt_root, name, f)) == k
                pred = read_label_png(os.path.join(pred_root, name, f)) == k
                union = np.sum(gt | pred)
                js.append(1.0 if union == 0 else np.sum(gt & pred) / union)
                fs.append(_f_full_frame(pred, gt))
            out.append((statistics(np.array(js)), statistics(np.array(fs))))
    return out
