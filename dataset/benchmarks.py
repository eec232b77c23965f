"""The layouts of the benchmarks evaluated beside DAVIS and YouTube-VOS, read as VideoSequences
(which frames, which masks introduce which objects where). Each reader checks its layout first and
names what is missing in one line.

* MOSE ``<root>/<split>/{JPEGImages,Annotations}/<video>/``, no meta.json: each object starts on
  the first of the video's annotation PNGs that holds it (YouTube-VOS's protocol).
* LVOS ``<root>/<split>/{JPEGImages,Annotations}/<video>/`` and ``<split>_meta.json`` (each
  object's ``frame_range``): each object starts on its first annotated frame (``start``); the
  later (dense) annotations of validation are not used.
* SA-V ``<root>/{JPEGImages_24fps,Annotations_6fps}/<video>/`` (``Annotations_6fps/<video>/<obj>/``
  one binary PNG per object and annotated frame) and ``sav_<split>.txt``: each object starts on its
  first non-empty 6 fps mask, frames at 24 fps.
* generic ``<root>/{JPEGImages,Annotations}/<video>/``: the first frame's mask, or with
  ``all_masks`` every mask, each object starting on the first one that holds it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from dataset.davis import IMAGE_EXTENSIONS, VideoSequence, list_frames, read_split
from dataset.palette_io import read_label_png
from util.errors import InputError
from util.labels import VOID, object_ids

BENCHMARKS = ("mose", "lvos", "sav", "generic")
DEFAULT_SPLITS = {"mose": "valid", "lvos": "valid", "sav": "val", "generic": "all"}   # generic: names the CSVs


@dataclass
class BenchmarkRoot:
    """A checked split folder: ``frames`` and ``masks`` (folders of per-video folders), the video
    names in order, and (LVOS) the meta.json objects {video: {object id: frame_range}}."""

    name: str              # mose, lvos, sav, generic
    root: str
    frames: str
    masks: str
    videos: list[str]
    meta: dict | None = None
    unseen: set[str] | None = None   # LVOS: the videos its unseen_videos.txt lists


def _folder_videos(folder: str) -> list[str]:
    return sorted(v for v in os.listdir(folder) if not v.startswith(".") and os.path.isdir(os.path.join(folder, v)))


def _split_folder(data_root: str, split: str | None, marker: str) -> str:
    """``data_root/split`` when it exists and ``data_root`` does not hold ``marker``, else ``data_root``."""
    if os.path.exists(os.path.join(data_root, marker)) or not split or not os.path.isdir(os.path.join(data_root, split)):
        return data_root
    return os.path.join(data_root, split)


def _need(path: str, what: str) -> None:
    if not os.path.exists(path):
        folder, name = os.path.split(path)
        raise InputError(f"no {name} in {folder or '.'}: is this {what}?")


def open_benchmark(name: str, data_root: str, split: str | None, unseen_list: str | None = None) -> BenchmarkRoot:
    """The split of benchmark ``name`` under ``data_root`` (the dataset root or the split folder);
    unseen_list (LVOS): the file naming its unseen videos (default: the split's unseen_videos.txt, if any)."""
    if not os.path.isdir(data_root):
        raise InputError(f"{data_root}: --data_root folder not found")
    split = split or DEFAULT_SPLITS[name]
    if name == "sav":
        listing = f"sav_{split}.txt"
        root = _split_folder(data_root, f"sav_{split}", listing)
        _need(os.path.join(root, listing), f"an SA-V {split} split")
        for sub in ("JPEGImages_24fps", "Annotations_6fps"):
            _need(os.path.join(root, sub), f"an SA-V {split} split")
        return BenchmarkRoot(name, root, os.path.join(root, "JPEGImages_24fps"), os.path.join(root, "Annotations_6fps"),
                             read_split(os.path.join(root, listing)))
    if name == "lvos":
        meta_name = f"{split}_meta.json"
        root = _split_folder(data_root, split, meta_name)
        _need(os.path.join(root, meta_name), "an LVOS split")
        for sub in ("JPEGImages", "Annotations"):
            _need(os.path.join(root, sub), "an LVOS split")
        meta = _lvos_meta(os.path.join(root, meta_name))
        unseen_path = unseen_list or os.path.join(root, "unseen_videos.txt")
        unseen = set(read_split(unseen_path)) if unseen_list or os.path.isfile(unseen_path) else None
        return BenchmarkRoot(name, root, os.path.join(root, "JPEGImages"), os.path.join(root, "Annotations"),
                             sorted(meta), meta, unseen)
    if name in ("mose", "generic"):
        root = _split_folder(data_root, split if name == "mose" else None, "JPEGImages")  # generic: the folder itself
        what = f"a MOSE split (with {split}/JPEGImages)" if name == "mose" else "a folder of JPEGImages/<video>/ and Annotations/<video>/"
        for sub in ("JPEGImages", "Annotations"):
            _need(os.path.join(root, sub), what)
        videos = _folder_videos(os.path.join(root, "JPEGImages"))
        if not videos:
            raise InputError(f"{os.path.join(root, 'JPEGImages')}: no video folders")
        return BenchmarkRoot(name, root, os.path.join(root, "JPEGImages"), os.path.join(root, "Annotations"), videos)
    raise ValueError(f"unknown benchmark {name!r}")


def _lvos_meta(path: str) -> dict[str, dict[int, dict]]:
    """{video: {object id: {'start', 'end', 'frame_nums'}}} in the file's object order."""
    try:
        with open(path) as f:
            videos = json.load(f)["videos"]
        return {video: {int(obj): {k: int(info["frame_range"][k]) for k in ("start", "end", "frame_nums")}
                        for obj, info in entry["objects"].items()}
                for video, entry in videos.items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not an LVOS meta file (videos -> objects -> frame_range: {exc})") from None


def count_frames(bench: BenchmarkRoot, video: str) -> int:
    folder = os.path.join(bench.frames, video)
    return sum(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(folder)) if os.path.isdir(folder) else 0


def sav_objects(bench: BenchmarkRoot, video: str) -> list[str]:
    """SA-V: the video's object folders (``000``, ``001``, ...), sorted as the evaluator sorts them."""
    folder = os.path.join(bench.masks, video)
    if not os.path.isdir(folder):
        raise InputError(f"{folder}: annotation folder of video {video} not found")
    names = _folder_videos(folder)
    if not names:
        raise InputError(f"{folder}: no object folders (SA-V keeps one folder of binary PNGs per object)")
    return names


def load_video(bench: BenchmarkRoot, video: str, all_masks: bool = False) -> VideoSequence:
    """The VideoSequence the benchmark's protocol segments (see the module docstring)."""
    frames = list_frames(os.path.join(bench.frames, video))
    index = {os.path.splitext(os.path.basename(f))[0]: i for i, f in enumerate(frames)}
    masks = os.path.join(bench.masks, video)
    if bench.name == "sav":
        return _sav_sequence(video, frames, index, masks, sav_objects(bench, video))
    if bench.name == "lvos":
        starts: dict[int, list[int]] = {}
        for obj, frame_range in bench.meta[video].items():
            stem = f"{frame_range['start']:08d}"
            if stem not in index:
                raise InputError(f"{video}: object {obj} starts on frame {stem}, which is not among its frames")
            starts.setdefault(index[stem], []).append(obj)
        annotations = {i: os.path.join(masks, frames_stem(frames[i]) + ".png") for i in starts}
        return VideoSequence(video, frames, annotations, {i: sorted(ids) for i, ids in starts.items()})
    if not os.path.isdir(masks):
        raise InputError(f"{masks}: annotation folder of video {video} not found")
    pngs = sorted(f for f in os.listdir(masks) if f.endswith(".png"))
    if bench.name == "generic" and not all_masks:
        first = os.path.join(masks, frames_stem(frames[0]) + ".png")
        if not os.path.isfile(first):
            raise InputError(f"{first}: first-frame mask of video {video} not found (--use_all_masks takes later ones)")
        return VideoSequence(video, frames, {0: first})
    annotations, objects, seen = {}, {}, set()
    for png in pngs:
        stem = os.path.splitext(png)[0]
        if stem not in index:
            raise InputError(f"{os.path.join(masks, png)}: no frame {stem} in {os.path.join(bench.frames, video)}")
        new = [i for i in object_ids(read_label_png(os.path.join(masks, png)), exclude=(VOID,)) if i not in seen]
        if new:
            annotations[index[stem]], objects[index[stem]] = os.path.join(masks, png), new
            seen.update(new)
    if not annotations:
        raise InputError(f"{masks}: no mask holds an object")
    return VideoSequence(video, frames, annotations, objects)


def frames_stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def sav_object_id(folder: str) -> int:
    """The session id of an SA-V object folder (``000`` -> 1): ids start at 1, 0 is the background."""
    return int(folder) + 1


def _sav_sequence(video: str, frames: list[str], index: dict[str, int], masks: str,
                  objects: list[str]) -> VideoSequence:
    """Each object from its first non-empty mask; masks on one frame may overlap."""
    starts: dict[int, dict[int, str]] = {}
    for folder in objects:
        if not folder.isdigit():
            raise InputError(f"{os.path.join(masks, folder)}: SA-V object folders are numbers (000, 001, ...)")
        for png in sorted(f for f in os.listdir(os.path.join(masks, folder)) if f.endswith(".png")):
            path = os.path.join(masks, folder, png)
            if np.any(read_label_png(path)):
                stem = os.path.splitext(png)[0]
                if stem not in index:
                    raise InputError(f"{path}: no frame {stem} in the video's 24 fps frames")
                starts.setdefault(index[stem], {})[sav_object_id(folder)] = path
                break
    if not starts:
        raise InputError(f"{masks}: every object's masks are empty")
    return VideoSequence(video, frames, {}, None, starts)
