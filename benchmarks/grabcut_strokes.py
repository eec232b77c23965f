"""Do + / − strokes make the studio's GrabCut mask better?  `python -m benchmarks.grabcut_strokes --data DIR`

DIR: a folder in the generic layout (JPEGImages/<video>/*.jpg, Annotations/<video>/*.png). On each
video's first frame a simulated user draws the box around the true object (5% margin), then up to
``--strokes`` strokes, each in the middle of the largest wrong region (a + stroke where the object is
missed, a − stroke where background is taken; the stroke's radius fits inside that region, at most 10
pixels). Two ways to use the strokes are compared: GrabCut started again from the box with every
stroke so far (the studio before), and GrabCut started from the current mask with the strokes as
hard constraints (the studio now). Prints the mean IoU with the truth after the box and after each
stroke, and how many strokes made the mask worse.
"""
from __future__ import annotations

import argparse
import json
import os

import cv2
import numpy as np

from dataset.palette_io import read_label_png, read_rgb
from studio.grabcut import run_grabcut


def _box(truth: np.ndarray) -> tuple[int, int, int, int]:
    x, y, w, h = cv2.boundingRect(truth.astype(np.uint8))
    mx, my = round(0.05 * w) + 2, round(0.05 * h) + 2
    return x - mx, y - my, x + w + mx, y + h + my


def _stroke(mask: np.ndarray, truth: np.ndarray) -> tuple[str, tuple[int, int, int]] | None:
    """The simulated user's next stroke: in the largest wrong region, at its innermost point."""
    best = None
    for kind, wrong in (("foreground", truth & ~mask), ("background", mask & ~truth)):
        count, regions, stats, _ = cv2.connectedComponentsWithStats(wrong.astype(np.uint8))
        for r in range(1, count):
            if best is None or stats[r, cv2.CC_STAT_AREA] > best[0]:
                best = (stats[r, cv2.CC_STAT_AREA], kind, regions == r)
    if best is None or best[0] < 20:
        return None
    _, kind, region = best
    distance = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(distance.argmax()), distance.shape)
    return kind, (int(x), int(y), int(max(1, min(10, distance[y, x] - 1))))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def session(rgb: np.ndarray, truth: np.ndarray, strokes: int, refine: bool) -> list[float]:
    box = _box(truth)
    points = {"foreground": [], "background": []}
    mask = run_grabcut(rgb, box, [], []) > 0
    ious = [_iou(mask, truth)]
    for _ in range(strokes):
        step = _stroke(mask, truth)
        if step is not None:
            points[step[0]].append(step[1])
            mask = run_grabcut(rgb, box, points["foreground"], points["background"], mask if refine else None) > 0
        ious.append(_iou(mask, truth))
    return ious


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--strokes", type=int, default=3)
    args = p.parse_args(argv)
    videos = sorted(os.listdir(os.path.join(args.data, "JPEGImages")))
    table = {"from the box again": [], "refining the current mask": []}
    per_video = {}
    for name in videos:
        frames = sorted(os.listdir(os.path.join(args.data, "JPEGImages", name)))
        rgb = read_rgb(os.path.join(args.data, "JPEGImages", name, frames[0]))
        truth = read_label_png(os.path.join(args.data, "Annotations", name, os.path.splitext(frames[0])[0] + ".png")) > 0
        per_video[name] = {}
        for mode, refine in (("from the box again", False), ("refining the current mask", True)):
            ious = session(rgb, truth, args.strokes, refine)
            table[mode].append(ious)
            per_video[name][mode] = [round(v, 3) for v in ious]
    summary = {mode: [round(float(np.mean([r[i] for r in rows])), 3) for i in range(args.strokes + 1)]
               for mode, rows in table.items()}
    worse = {mode: sum(b < a - 0.01 for r in rows for a, b in zip(r, r[1:])) for mode, rows in table.items()}
    print(json.dumps({"videos": len(videos), "mean IoU after the box, then each stroke": summary,
                      "strokes that lowered the IoU by more than 0.01": worse, "per video": per_video}, indent=1))


if __name__ == "__main__":
    main()
