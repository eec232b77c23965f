"""Does a second annotation in the middle of a video help more with the keyframe memory than with
the published one?  `python -m benchmarks.keyframes [--checkpoint demo_output/checkpoints/demo.pth]`

On the demo's DAVIS-layout val split and its never-trained glyph transfer set (make demo first), each
video is segmented forward three ways: the first frame's annotation only; plus the ground truth of
the middle frame as a second annotation, with the published memory (the correction replaces the
first reference); and the same with the keyframe memory (both stay references). J&F as the DAVIS
protocol scores it (the annotated frames are scored like the others: perfect in the last two).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile

from dataset.davis import davis_root, davis_sequence, davis_split
from dataset.frames import iter_frames
from dataset.palette_io import read_label_png, write_label_png
from evaluation.jf import davis_jobs, evaluate, result_tables
from inference_core.predictor import build_predictor
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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=os.path.join(ROOT, "demo_output", "checkpoints", "demo.pth"))
    args = p.parse_args(argv)
    config = resolve_config(None, recorded_model_flags(args.checkpoint) or {})
    predictor = build_predictor(args.checkpoint, config, "cpu")
    table = {name: {case: score(predictor, path, memory, middle) for case, memory, middle in CASES}
             for name, path in SETS.items()}
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
