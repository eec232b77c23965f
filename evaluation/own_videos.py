"""J&F of people's own annotated videos (dataset/annotated.py), first-frame protocol, in memory:
what fine-tuning validates on and what the fine-tuning benchmark scores.

Each video is propagated forward from its first annotated frame, that frame's mask the only input;
every later annotated frame is scored (J and F of each object as the DAVIS toolkit computes them,
evaluation/jf.py), objects being the ids of the first mask. J&F = (mean J + mean F) / 2 over the
videos' objects.
"""
from __future__ import annotations

import math

import numpy as np

from dataset.annotated import AnnotatedVideo
from dataset.frames import FrameSource
from dataset.masks import read_user_mask
from evaluation.jf import BOUNDARY_THRESHOLD, disk, frame_scores
from util.labels import object_ids


def score_videos(videos: list[AnnotatedVideo], predictor=None) -> dict:
    """-> {"J&F", "J", "F", "videos": {name: J&F}}; ``predictor`` None: copy the first mask to
    every frame (the baseline a model must beat)."""
    js, fs, per_video = [], [], {}
    for video in videos:
        first, *scored = video.annotated
        start = read_user_mask(video.masks[first]).labels
        ids = np.array(object_ids(start), dtype=np.int64)
        truth = {t: read_user_mask(video.masks[t]).labels for t in scored}
        predicted = {}
        if predictor is None:
            predicted = {t: start for t in scored}
        elif scored:
            session = predictor.open(FrameSource(video.name, paths=video.frames))
            session.add_mask(first, start)
            wanted = set(scored)
            for result in session.propagate(first, "forward", max(scored)):
                if result.index in wanted:
                    predicted[result.index] = result.labels()
        j_video, f_video = [], []
        if scored and len(ids):
            radius = math.ceil(BOUNDARY_THRESHOLD * np.linalg.norm(start.shape))
            kernel = disk(radius)
            scores = [frame_scores(truth[t], predicted[t], ids, kernel, radius)[:2] for t in scored]
            j_video = np.mean([s[0] for s in scores], axis=0)
            f_video = np.mean([s[1] for s in scores], axis=0)
            js.extend(j_video)
            fs.extend(f_video)
            per_video[video.name] = round(float((np.mean(j_video) + np.mean(f_video)) / 2) * 100, 2)
    j, f = (float(np.mean(v)) * 100 if v else float("nan") for v in (js, fs))
    return {"J&F": round((j + f) / 2, 2), "J": round(j, 2), "F": round(f, 2), "videos": per_video}
