"""Does a second annotation in the middle of a video help more with the keyframe memory than with
the published one?  `python -m benchmarks.keyframes [--checkpoint demo_output/checkpoints/demo.pth]`

On the demo's DAVIS-layout val split and its never-trained glyph transfer set (make demo first), each
video is segmented forward three ways: the first frame's annotation only; plus the ground truth of
the middle frame as a second annotation, with the published memory (the correction replaces the
first reference); and the same with the keyframe memory (both stay references). J&F as the DAVIS
protocol scores it (the annotated frames are scored like the others: perfect in the last two).

`python -m benchmarks.keyframes --cost`: what more references cost instead (no data or checkpoint
needed): seconds per frame of a forward walk from the last of 9 annotated frames with the keyframe
memory, for each --max_keyframes limit (random vit_tiny weights, 427x240, CPU; rounds interleaved,
the best of each kept).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

from dataset.davis import davis_root, davis_sequence, davis_split
from dataset.frames import iter_frames
from dataset.palette_io import read_label_png, write_label_png
from evaluation.jf import davis_jobs, evaluate, result_tables
from dataset.synthetic import make_video
from inference_core.predictor import SimVOSPredictor, build_predictor
from model import build_model, config_from_flags
from model.variants import recorded_model_flags, resolve_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETS = {"demo val": os.path.join(ROOT, "data", "demo", "DAVIS", "2017"),
        "transfer (glyph)": os.path.join(ROOT, "data", "demo", "Transfer", "2017")}
CASES = (("first frame only", "published", False), ("+ middle, published memory", "published", True),
         ("+ middle, keyframe memory", "keyframes", True))


def score(predictor, davis_path: str, memory: str, middle: bool) -> float:
    root = davis_root(davis_path)
    names = davis_split(root, "2017/val.txt")
    with tempfile.TemporaryDirectory() as out:
        for name in names:
            seq = davis_sequence(root, name)
            frames = list(iter_frames(seq))
            masks = {0: read_label_png(seq.annotations[0])}
            if middle:
                mid = len(frames) // 2
                masks[mid] = read_label_png(os.path.join(root, "Annotations", "480p", name, seq.stems[mid] + ".png"))
            os.makedirs(os.path.join(out, name))
            for result in predictor.segment_video(frames, masks, memory=memory):
                write_label_png(os.path.join(out, name, seq.stems[result.index] + ".png"), result.labels())
        return float(result_tables(evaluate(davis_jobs(root, "val", out), 2))[0][0])


def seconds_per_frame(limits: tuple[int, ...] = (4, 8), rounds: int = 2, annotated: int = 9, walked: int = 5) -> dict:
    """{max_keyframes: best seconds per frame} of a forward walk of ``walked`` frames from the last of
    ``annotated`` annotated frames (2 objects, 427x240), random vit_tiny weights on the CPU."""
    torch.manual_seed(0)
    model = build_model(config_from_flags("vit_tiny", layer_index=0)).eval()
    frames, labels = make_video(np.random.default_rng(0), annotated + walked, 240, 427, 2)
    best = {limit: float("inf") for limit in limits}
    for _ in range(rounds):
        for limit in limits:
            video = SimVOSPredictor(model, "cpu", memory="keyframes", max_keyframes=limit).open(frames)
            for t in range(annotated):
                video.add_mask(t, labels[t])
            walk = video.propagate(annotated - 1, "forward")
            next(walk)  # the annotated start frame
            start = time.perf_counter()
            count = sum(1 for _ in walk)
            best[limit] = min(best[limit], (time.perf_counter() - start) / count)
    return best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=os.path.join(ROOT, "demo_output", "checkpoints", "demo.pth"))
    p.add_argument("--cost", action="store_true", help="seconds per frame by --max_keyframes limit instead")
    args = p.parse_args(argv)
    if args.cost:
        print(json.dumps(seconds_per_frame(), indent=1))
        return
    config = resolve_config(None, recorded_model_flags(args.checkpoint) or {})
    predictor = build_predictor(args.checkpoint, config, "cpu")
    table = {name: {case: score(predictor, path, memory, middle) for case, memory, middle in CASES}
             for name, path in SETS.items()}
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
