"""Independent objects: each object segmented against the background only equals a session that
holds that object alone (the independent computation: one session per object)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from inference_core import SimVOSPredictor
from model import build_model
from tests.conftest import tiny_config


def _overlapping_video(n=5, h=64, w=96):
    """Frames and per-object boolean masks: object 1 a big box, object 2 inside it (a 'hand' that
    covers whole token cells, where a joint encoding gives its pixels to the box), object 3
    appears on frame 2 and overlaps object 1."""
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)]
    yy, xx = np.mgrid[:h, :w]
    person = (yy > 3) & (yy < 60) & (xx > 7) & (xx < 60)
    hand = (yy >= 16) & (yy < 48) & (xx >= 16) & (xx < 48)
    late = (yy > 8) & (yy < 40) & (xx > 50) & (xx < 90)
    return frames, {0: {1: person, 2: hand}, 2: {3: late}}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model(tiny_config(token_learner=True)).eval()  # prototypes: weights shared between masks
    with torch.no_grad():
        net.stcn_decoder.pred.weight.mul_(5)
    return net


def _run(model, frames, annotations, independent, only=None):
    predictor = SimVOSPredictor(model, "cpu", max_objects_per_batch=1, independent_objects=independent)
    video = predictor.open(frames)
    for index, masks in annotations.items():
        chosen = {i: m for i, m in masks.items() if only is None or i == only}
        if chosen:
            video.add_mask(index, chosen, complete=False)
    return list(video.propagate(0, "forward"))


def test_independent_objects_equal_each_object_alone(model):
    frames, annotations = _overlapping_video()
    together = _run(model, frames, annotations, independent=True)
    for obj in (1, 2, 3):
        alone = _run(model, frames, annotations, independent=False, only=obj)
        for joint, single in zip(together, alone):
            assert joint.index == single.index
            if obj not in single.object_ids:
                assert obj not in joint.object_ids
                continue
            own = joint.probs[1 + joint.object_ids.index(obj)]
            torch.testing.assert_close(own, single.probs[1 + single.object_ids.index(obj)], rtol=0, atol=1e-5)
            mask = joint.object_masks()[joint.object_ids.index(obj)]
            np.testing.assert_array_equal(mask, single.labels() == obj)


def test_overlaps_are_kept_and_the_label_map_rule(model):
    frames, annotations = _overlapping_video()
    results = _run(model, frames, annotations, independent=True)
    first = results[0].object_masks()
    np.testing.assert_array_equal(first[0], annotations[0][1])   # the annotated frame answers with both masks
    np.testing.assert_array_equal(first[1], annotations[0][2])
    for result in results:
        masks, probs = result.object_masks(), result.probs[1:].numpy()
        labels = result.labels()
        claimed = masks.any(0)
        np.testing.assert_array_equal(labels == 0, ~claimed)
        best = np.array(result.object_ids)[probs.argmax(0)]
        np.testing.assert_array_equal(labels[claimed], best[claimed])   # the most confident object wins


def test_default_still_competes(model):
    frames, annotations = _overlapping_video()
    joint = _run(model, frames, annotations, independent=False)
    assert not joint[0].independent
    masks = joint[0].object_masks()
    assert not (masks[0] & masks[1]).any()    # a label map: the hand takes its pixels from the person


def test_own_video_outputs_keep_overlaps(tmp_path):
    from outputs.formats import ResultWriter
    _, annotations = _overlapping_video()
    person, hand = annotations[0][1], annotations[0][2]
    labels = np.where(hand, 2, np.where(person, 1, 0)).astype(np.uint8)
    writer = ResultWriter(str(tmp_path), ["palette", "objects", "coco"], ["00000"], [0.0], [1, 2], {"video": "v"})
    writer.write_frame(0, labels, None, {1: person, 2: hand})
    writer.finish()
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "objects/1/00000.png")) > 0, person)   # hand included
    areas = {a["track_id"]: a["area"] for a in json.loads((tmp_path / "coco.json").read_text())["annotations"]}
    assert areas == {1: int(person.sum()), 2: int(hand.sum())}
