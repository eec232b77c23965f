"""SA-V training videos as a VOS-layout folder, for ``train_simvos.py --vos_datasets sav:OUT:1``.

SA-V train ships ``<video>.mp4`` (24 fps) with ``<video>_manual.json`` (and ``_auto.json``): its
``masklet`` list holds, for every annotated frame (every 4th frame: 6 fps), one COCO RLE per
object. This writes ``OUT/JPEGImages/<video>/<frame>.jpg`` for the annotated frames (named by their
24 fps index) and ``OUT/Annotations/<video>/<frame>.png`` label maps: masklet i is object i + 1;
where masklets overlap, the later one wins (a label map holds one object per pixel).

    python -m dataset.sav_train --sav_dir sav_train/sav_000 --output sav_vos [--auto]

Each video is written into a staging folder and moved into place when complete; converted videos
are skipped on a re-run.
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
from PIL import Image

from dataset.palette_io import write_label_png
from dataset.video_io import probe_video, read_video
from util.cli import add_bool_flag, run_cli
from util.errors import InputError
from util.publish import remove_leftovers, replace, staging

ANNOTATION_STEP = 4   # SA-V annotates every 4th frame of its 24 fps videos


def read_masklets(path: str) -> list[list[dict]]:
    """[annotated frame][object] COCO RLEs of an SA-V annotation file."""
    try:
        with open(path) as f:
            masklets = json.load(f)["masklet"]
        if not isinstance(masklets, list):
            raise TypeError("masklet is not a list")
        return masklets
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not an SA-V annotation file ({exc})") from None


def label_map(rles: list[dict], first_id: int, labels: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Objects ``first_id``, ``first_id + 1``, ... of one frame's RLEs drawn into ``labels`` (a new
    [H, W] uint8 map when None), later objects over earlier ones."""
    from pycocotools import mask as mask_utils
    labels = np.zeros(shape, np.uint8) if labels is None else labels
    for k, rle in enumerate(rles):
        obj = first_id + k
        if obj > 255:
            raise InputError("more than 255 masklets in one video: a label map holds ids up to 255")
        labels[mask_utils.decode(rle) > 0] = obj
    return labels


def convert_video(mp4: str, annotation_files: list[str], out_root: str) -> int:
    """One video into ``out_root`` (see the module docstring); -> annotated frames written."""
    name = os.path.splitext(os.path.basename(mp4))[0]
    masklets = [read_masklets(path) for path in annotation_files]
    info = probe_video(mp4)
    count = max(len(m) for m in masklets)
    targets = {sub: os.path.join(out_root, sub, name) for sub in ("JPEGImages", "Annotations")}
    for sub in targets:
        os.makedirs(os.path.join(out_root, sub), exist_ok=True)
    written = 0
    with staging(targets["JPEGImages"]) as images, staging(targets["Annotations"]) as masks:
        for index, rgb in read_video(info, range(0, min(info.frames, count * ANNOTATION_STEP))):
            if index % ANNOTATION_STEP:
                continue
            k, labels, first = index // ANNOTATION_STEP, None, 1
            for frames in masklets:   # manual objects first, then automatic ones
                rles = frames[k] if k < len(frames) else []
                labels = label_map(rles, first, labels, rgb.shape[:2])
                first += max((len(f) for f in frames), default=0)
            stem = f"{index:05d}"
            Image.fromarray(rgb).save(os.path.join(images, stem + ".jpg"), quality=95)
            write_label_png(os.path.join(masks, stem + ".png"), labels)
            written += 1
        replace(images, targets["JPEGImages"])
        replace(masks, targets["Annotations"])
    return written


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sav_dir", required=True, help="a folder of SA-V training videos (<video>.mp4, <video>_manual.json)")
    p.add_argument("--output", required=True, help="the VOS-layout folder to write")
    add_bool_flag(p, "--auto", False, help="also the automatic masklets (<video>_auto.json), after the manual ones")
    args = p.parse_args(argv)
    if not os.path.isdir(args.sav_dir):
        raise InputError(f"{args.sav_dir}: --sav_dir folder not found")
    videos = sorted(f[:-4] for f in os.listdir(args.sav_dir) if f.endswith(".mp4"))
    if not videos:
        raise InputError(f"no .mp4 in {args.sav_dir}: is this a folder of SA-V training videos?")
    for sub in ("JPEGImages", "Annotations"):
        remove_leftovers(os.path.join(args.output, sub))   # what a killed run left staged
    done = 0
    for name in videos:
        if all(os.path.isdir(os.path.join(args.output, sub, name)) for sub in ("JPEGImages", "Annotations")):
            continue
        files = [os.path.join(args.sav_dir, f"{name}_{kind}.json") for kind in (["manual", "auto"] if args.auto else ["manual"])]
        files = [f for f in files if os.path.isfile(f)]
        if not files:
            raise InputError(f"{os.path.join(args.sav_dir, name + '_manual.json')}: annotation file of {name}.mp4 not found")
        done += convert_video(os.path.join(args.sav_dir, name + ".mp4"), files, args.output)
    print(f"{len(videos)} videos in {args.output} ({done} annotated frames written now)")


if __name__ == "__main__":
    run_cli(main, "converted videos are kept, the unfinished one was removed")
