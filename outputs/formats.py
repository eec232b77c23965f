"""What a segmented video is saved as, written frame by frame as results arrive (any order).

| kind      | where (under the output folder)          | what                                                  |
| palette   | ``<name>/<stem>.png``                    | indexed PNG label maps, DAVIS palette (DAVIS format)   |
| objects   | ``<name>_objects/<id>/<stem>.png``       | one binary PNG (0 / 255) per object and frame          |
| coco      | ``<name>_coco.json``                     | a COCO dataset file (below)                           |
| probs     | ``<name>_probs/<stem>.npz``              | float16 probabilities [K+1, H, W] + the object ids     |
| overlay   | ``<name>_overlay.mp4`` / ``.gif``         | H.264 (yuv420p) at the input's timing, or a GIF        |

The COCO file is a dataset file that ``pycocotools.coco.COCO(path)`` loads, with TAO's video fields
(the video-COCO layout that keeps identities as ``track_id``):

* ``info``: the video's name, frame count, fps, width and height, ``description``;
* ``videos``: one entry (id 1: name, width, height, fps, length);
* ``images``: one per frame: ``id`` (frame index + 1), ``file_name`` (``<name>/<frame file>``: the
  input's own frame file for a folder of frames, ``<name>/<frame number %05d>.jpg`` for a video file,
  as ``ffmpeg -i clip.mp4 -start_number 0 clip/%05d.jpg`` extracts it), width, height, ``video_id``,
  ``frame_index`` (0-based) and ``time`` (seconds);
* ``categories``: one, ``{"id": 1, "name": "object"}``: the objects of video object segmentation
  have no class, only an identity;
* ``tracks``: one per object: ``id`` = the object id (its value in the label maps), category 1;
* ``annotations``: one per frame and object present there (none where the object is absent):
  ``id``, ``image_id``, ``category_id`` 1, ``track_id`` (the object id), ``video_id``,
  ``segmentation`` (compressed RLE, ``counts`` a str), ``area`` (pixels), ``bbox`` ([x, y, w, h],
  pixels) and ``iscrowd`` 0.
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


COCO_CATEGORY = {"id": 1, "name": "object", "supercategory": "object"}


def rle_encode(mask: np.ndarray) -> dict:
    """[H, W] bool -> COCO RLE {'size': [H, W], 'counts': str} (pycocotools)."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


class CocoVideo:
    """The COCO dataset file of one video (the module docstring's layout), filled frame by frame
    in any order; ``dataset()`` -> the JSON-ready dict."""

    def __init__(self, info: dict, file_names: list[str], times: list[float], objects: list[int]):
        self.info, self.file_names, self.times, self.objects = info, file_names, times, objects
        self.images: list[dict] = []
        self.annotations: list[dict] = []

    def add_frame(self, index: int, labels: np.ndarray, own_masks: dict[int, np.ndarray] | None = None) -> None:
        """labels [H, W] uint8: the frame's image entry and one annotation per object present;
        own_masks: {id: [H, W] bool} of independent objects (overlaps kept) instead of ``labels``."""
        height, width = labels.shape
        self.images.append({"id": index + 1, "file_name": self.file_names[index], "width": width,
                            "height": height, "video_id": 1, "frame_index": index,
                            "time": round(self.times[index], 6)})
        for obj in self.objects:
            mask = labels == obj if own_masks is None else own_masks.get(obj, np.zeros(labels.shape, bool))
            area = int(mask.sum())
            if area:
                x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
                self.annotations.append({"image_id": index + 1, "category_id": COCO_CATEGORY["id"],
                                         "track_id": obj, "video_id": 1, "segmentation": rle_encode(mask),
                                         "area": area, "bbox": [x, y, w, h], "iscrowd": 0})

    def dataset(self) -> dict:
        images = sorted(self.images, key=lambda image: image["id"])
        annotations = sorted(self.annotations, key=lambda a: (a["image_id"], a["track_id"]))
        width, height = (images[0]["width"], images[0]["height"]) if images else (None, None)
        info = {"description": f"SimVOS segmentation of {self.info.get('video')}",
                **self.info, "width": width, "height": height}
        video = {"id": 1, "name": info.get("video"), "width": width, "height": height,
                 "fps": info.get("fps"), "length": len(images)}
        return {"info": info, "licenses": [], "videos": [video], "images": images,
                "annotations": [{"id": i + 1, **a} for i, a in enumerate(annotations)],
                "categories": [COCO_CATEGORY],
                "tracks": [{"id": obj, "category_id": COCO_CATEGORY["id"], "video_id": 1} for obj in self.objects]}


class ResultWriter:
    """Writes each frame's label map (and probabilities) into a staging folder (``stage``), kinds as
    asked (``SAVE_KINDS``); ``finish()`` writes the COCO file. Nothing is read back: results may come in any order."""

    def __init__(self, stage: str, kinds: list[str], stems: list[str], times: list[float], objects: list[int],
                 info: dict, frame_files: list[str] | None = None):
        """objects: every object id of the video (each gets a mask on every frame, empty where it is
        not tracked yet); info: the video's name (``video``), ``frames``, ``fps``...: the COCO file's
        ``info``; frame_files: the frames' file names (default: ``<stem>.jpg``), for the COCO file."""
        self.stage, self.kinds, self.stems = stage, kinds, stems
        self.objects = objects
        files = frame_files or [stem + ".jpg" for stem in stems]
        self.coco = CocoVideo(info, [f"{info.get('video')}/{f}" for f in files], times, objects)
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
            self.coco.add_frame(index, labels, own_masks)

    def finish(self) -> None:
        if "coco" in self.kinds:
            with open(os.path.join(self.stage, "coco.json"), "w") as f:
                json.dump(self.coco.dataset(), f)

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
