"""The official J&F algorithm restated from its definitions (docs/method.md, section 8), independent
of evaluation/jf.py: whole frames, boundaries from the seg2bmap neighbour rule, matches from a
Euclidean distance transform instead of a dilation, statistics written out. The reference the
tests check evaluation/jf.py against (byte-identical CSVs) and the benchmarks time."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
from PIL import Image
from scipy.ndimage import distance_transform_edt

GLOBAL_COLUMNS = ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
SEQUENCE_COLUMNS = ["Sequence", "J-Mean", "F-Mean"]


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """Berkeley seg2bmap as its definition reads: a pixel is on the boundary when one of its east,
    south and south-east neighbours that lie inside the image has another label."""
    b = np.zeros(seg.shape, bool)
    b[:, :-1] |= seg[:, :-1] != seg[:, 1:]
    b[:-1, :] |= seg[:-1, :] != seg[1:, :]
    b[:-1, :-1] |= seg[:-1, :-1] != seg[1:, 1:]
    return b


def matched(source: np.ndarray, target: np.ndarray, radius: float) -> int:
    """Pixels of ``source`` within Euclidean distance ``radius`` of a ``target`` pixel."""
    if not target.any():
        return 0
    return int(np.sum(source & (distance_transform_edt(~target) <= radius)))


def f_measure(fg: np.ndarray, gt: np.ndarray) -> float:
    """An empty boundary map makes its own ratio 1, which gives the toolkit's special cases."""
    radius = np.ceil(0.008 * np.linalg.norm(fg.shape))
    fb, gb = seg2bmap(fg), seg2bmap(gt)
    p = matched(fb, gb, radius) / fb.sum() if fb.any() else 1.0
    r = matched(gb, fb, radius) / gb.sum() if gb.any() else 1.0
    return 0 if p + r == 0 else 2 * p * r / (p + r)


def j_measure(gt: np.ndarray, fg: np.ndarray) -> float:
    inter, union = np.sum(gt & fg), np.sum(gt | fg)
    return 1 if np.isclose(union, 0) else inter / union


def stats(v: np.ndarray) -> tuple[float, float, float]:
    """Mean, recall (> 0.5), decay over 4 bins (uint8 bin indices, as the toolkit)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m, o = np.nanmean(v), np.nanmean(v > 0.5)
        ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.uint8)
        bins = [v[ids[i]:ids[i + 1] + 1] for i in range(4)]
        d = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return m, o, d


def official_evaluate(gt_root: str, pred_root: str, names: list[str]) -> pd.DataFrame:
    """-> one row per object: Sequence, then Mean / Recall / Decay of J and of F."""
    rows = []
    for name in names:
        files = sorted(os.listdir(os.path.join(gt_root, name)))
        gts = [np.array(Image.open(os.path.join(gt_root, name, f))) for f in files]
        n_obj = int(np.where(gts[0] == 255, 0, gts[0]).max())
        preds = [np.array(Image.open(os.path.join(pred_root, name, f))) for f in files[1:-1]]
        for k in range(1, n_obj + 1):
            js = np.array([j_measure(g == k, p == k) for g, p in zip(gts[1:-1], preds)], dtype=float)
            fs = np.array([f_measure(p == k, g == k) for g, p in zip(gts[1:-1], preds)], dtype=float)
            rows.append([f"{name}_{k}", *stats(js), *stats(fs)])
    return pd.DataFrame(rows, columns=["Sequence", "JM", "JR", "JD", "FM", "FR", "FD"])


def official_csvs(objects: pd.DataFrame) -> tuple[str, str]:
    """The two CSV texts the toolkit writes for these objects."""
    means = objects.drop(columns="Sequence").astype(float).mean(skipna=False)  # np.mean, as the toolkit
    g = [[(means["JM"] + means["FM"]) / 2.0, *means[["JM", "JR", "JD", "FM", "FR", "FD"]]]]
    table_g = pd.DataFrame(data=g, columns=GLOBAL_COLUMNS)
    table_s = objects[["Sequence", "JM", "FM"]].set_axis(SEQUENCE_COLUMNS, axis=1)
    return table_g.to_csv(index=False, float_format="%.3f"), table_s.to_csv(index=False, float_format="%.3f")
