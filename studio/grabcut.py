"""GrabCut for the studio's box and stroke tools (OpenCV), on one frame."""
from __future__ import annotations

import cv2
import numpy as np

from util.errors import InputError


def run_grabcut(rgb: np.ndarray, box, foreground, background, current: np.ndarray | None = None) -> np.ndarray:
    """The object in ``box`` [x0, y0, x1, y1] by GrabCut; strokes (x, y, radius) are hard
    constraints. With the object's ``current`` mask [H, W] bool, GrabCut starts from it (probably
    foreground inside it, probably background elsewhere in the box) and the strokes refine it."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    x0, x1 = sorted((max(0, min(x0, w - 1)), max(0, min(x1, w - 1))))
    y0, y1 = sorted((max(0, min(y0, h - 1)), max(0, min(y1, h - 1))))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise InputError("the GrabCut box is too small (draw a box around the object)")
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    mask[y0:y1 + 1, x0:x1 + 1] = cv2.GC_PR_FGD if current is None else cv2.GC_PR_BGD
    if current is not None:
        inside = np.zeros((h, w), bool)
        inside[y0:y1 + 1, x0:x1 + 1] = True
        mask[current & inside] = cv2.GC_PR_FGD
    for points, value in ((foreground, cv2.GC_FGD), (background, cv2.GC_BGD)):
        for x, y, radius in points:
            cv2.circle(mask, (x, y), radius, int(value), -1)
    if not ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).any():
        return np.zeros((h, w), np.uint8)
    if ((mask == cv2.GC_BGD) | (mask == cv2.GC_PR_BGD)).any():
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), mask, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    return np.where((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), 255, 0).astype(np.uint8)
