"""What a segmented video is saved as, written frame by frame as results arrive (any order).

| kind      | where (under the output folder)          | what                                                  |
| palette   | ``<name>/<stem>.png``                    | indexed PNG label maps, DAVIS palette (DAVIS format)   |
| objects   | ``<name>_objects/<id>/<stem>.png``       | one binary PNG (0 / 255) per object and frame          |
| coco      | ``<name>_coco.json``                     | COCO RLE: one record per frame and object (index, time)|
| probs     | ``<name>_probs/<stem>.npz``              | float16 probabilities [K+1, H, W] + the object ids     |
| overlay   | ``<name>_overlay.mp4`` / ``.gif``         | H.264 (yuv420p) at the input's timing, or a GIF        |
"""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
from PIL import Image

from dataset.palette_io import DAVIS_PALETTE, write_label_png
from util.publish import replace

SAVE_KINDS = ("palette", "objects", "coco", "probs")
COLOURS = np.array(DAVIS_PALETTE, dtype=np.float32).reshape(256, 3)


def overlay(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """[H, W, 3] uint8 frame + [H, W] labels -> blended frame with black object contours."""
    out = rgb.astype(np.float32)
    fg = labels > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * COLOURS[labels[fg]]
    edges = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    out[edges] = 0
    return out.astype(np.uint8)


def output_paths(out: str, name: str) -> dict[str, str]:
    """Final location of each kind of output of video ``name``."""
    return {"palette": os.path.join(out, name), "objects": os.path.join(out, f"{name}_objects"),
            "coco": os.path.join(out, f"{name}_coco.json"), "probs": os.path.join(out, f"{name}_probs")}


def rle_encode(mask: np.ndarray) -> dict:
    """[H, W] bool -> COCO RLE {'size': [H, W], 'counts': str} (pycocotools)."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


class ResultWriter:
    """Writes each frame's label map (and probabilities) into a staging folder (``stage``), kinds as
    asked (``SAVE_KINDS``); ``finish()`` writes the COCO file. Nothing is read back: results may come in any order."""

    def __init__(self, stage: str, kinds: list[str], stems: list[str], times: list[float], objects: list[int],
                 info: dict):
        """objects: every object id of the video (each gets a mask / record on every frame, empty
        where it is not tracked yet)."""
        self.stage, self.kinds, self.stems, self.times, self.info = stage, kinds, stems, times, info
        self.objects = objects
        self.records: list[dict] = []
        os.makedirs(os.path.join(stage, "palette"), exist_ok=True)
        for kind in ("objects", "probs"):
            if kind in kinds:
                os.makedirs(os.path.join(stage, kind), exist_ok=True)

    def write_frame(self, index: int, labels: np.ndarray, probs: tuple[np.ndarray, list[int]] | None,
                    own_masks: dict[int, np.ndarray] | None = None) -> None:
        """labels [H, W] uint8; probs: (float16 [K+1, H, W], object ids) when probabilities are saved;
        own_masks: {id: [H, W] bool} of independent objects (overlaps kept), for the objects and coco
        kinds (default: split from ``labels``). Host data only: this can run on a writer thread while
        the network computes the next frame."""
        def mask_of(obj: int) -> np.ndarray:
            if own_masks is None:
                return labels == obj
            return own_masks[obj] if obj in own_masks else np.zeros(labels.shape, bool)

        stem = self.stems[index]
        write_label_png(os.path.join(self.stage, "palette", stem + ".png"), labels)
        if "objects" in self.kinds:
            for obj in self.objects:
                folder = os.path.join(self.stage, "objects", str(obj))
                os.makedirs(folder, exist_ok=True)
                Image.fromarray(np.where(mask_of(obj), 255, 0).astype(np.uint8), mode="L").save(
                    os.path.join(folder, stem + ".png"))
        if "probs" in self.kinds:
            np.savez(os.path.join(self.stage, "probs", stem + ".npz"), probs=probs[0],
                     object_ids=np.array(probs[1], np.int32))
        if "coco" in self.kinds:
            for obj in self.objects:
                mask = mask_of(obj)
                x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
                self.records.append({"frame": index, "time": round(self.times[index], 6),
                                     "file_name": stem, "object_id": obj, "area": int(mask.sum()),
                                     "bbox": [x, y, w, h], "segmentation": rle_encode(mask)})

    def finish(self) -> None:
        if "coco" in self.kinds:
            self.records.sort(key=lambda r: (r["frame"], r["object_id"]))
            with open(os.path.join(self.stage, "coco.json"), "w") as f:
                json.dump({**self.info, "annotations": self.records}, f)

    def publish(self, out: str, name: str) -> dict[str, str]:
        """Moves the staged outputs to their final places (replacing older ones); -> those places."""
        final = output_paths(out, name)
        staged = {"palette": "palette", "objects": "objects", "coco": "coco.json", "probs": "probs"}
        placed = {}
        for kind in ["palette", *[k for k in self.kinds if k != "palette"]]:
            source = os.path.join(self.stage, staged[kind])
            if not os.path.exists(source):
                continue
            replace(source, final[kind])
            placed[kind] = final[kind]
        return placed
