"""The interactive session: predictor.open / add_mask / remove_object / propagate(start, direction, stop)."""
import numpy as np
import pytest
import torch

from inference_core import SimVOSPredictor
from inference_core.directions import VIDEO_PLANS
from model import build_model
from tests.conftest import tiny_config
from util.errors import InputError


def _video(n=6, h=40, w=72, k=3, seed=0):
    from dataset.synthetic import make_video
    return make_video(np.random.default_rng(seed), n, h, w, k)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model(tiny_config(token_learner=True)).eval()
    with torch.no_grad():
        net.stcn_decoder.pred.weight.mul_(5)  # probabilities away from 0.5
    return net


def _count_segments(model, monkeypatch) -> list[int]:
    calls = []
    real = model.segment

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(model, "segment", counted)
    return calls


def test_add_mask_encodes_and_segments_nothing(model, monkeypatch):
    frames, labels = _video()
    calls = _count_segments(model, monkeypatch)
    video = SimVOSPredictor(model, "cpu").open(frames)
    for t in (0, 2, 4):
        assert video.add_mask(t, labels[t]) == [int(v) for v in np.unique(labels[t]) if v]
    assert calls == [] and video.annotated_frames == [0, 2, 4]
    assert all(a.references for a in video.annotations.values())   # encoded when added
    results = list(video.propagate(4, "forward"))                  # frames 4 (annotated) and 5
    assert [r.index for r in results] == [4, 5] and len(calls) == 1


@pytest.mark.parametrize("start, direction, stop", [(0, "forward", None), (1, "forward", 3), (5, "backward", None),
                                                    (4, "backward", 2), (3, "forward", 3)])
def test_propagate_yields_exactly_start_to_stop(model, start, direction, stop):
    frames, labels = _video()
    video = SimVOSPredictor(model, "cpu").open(frames)
    video.add_mask(0, labels[0])
    video.add_mask(5, labels[5])
    step = 1 if direction == "forward" else -1
    end = stop if stop is not None else (len(frames) - 1 if step == 1 else 0)
    got = [r.index for r in video.propagate(start, direction, stop)]
    assert got == list(range(start, end + step, step))


def test_bad_walks_are_refused(model):
    frames, labels = _video()
    video = SimVOSPredictor(model, "cpu").open(frames)
    with pytest.raises(InputError, match="no annotated frame"):
        video.propagate()
    video.add_mask(1, labels[1])
    with pytest.raises(InputError, match="stop 0 is before start 1"):
        video.propagate(1, "forward", 0)
    with pytest.raises(InputError, match="outside the video"):
        video.propagate(6)
    with pytest.raises(InputError, match="direction must be one of forward, backward, got 'both'"):
        video.propagate(1, "both")
    with pytest.raises(InputError, match="plan must be one of forward, backward, nearest, got 'both'"):
        next(SimVOSPredictor(model, "cpu").segment_video(frames, {1: labels[1]}, "both"))


def test_a_start_without_annotation_is_segmented_from_the_references(model):
    """From frame 3, with frame 0 annotated: the memory is frame 0's reference alone, as for the
    frame right after the annotation in a video made of frames 0, 3, 4, 5."""
    frames, labels = _video()
    video = SimVOSPredictor(model, "cpu").open(frames)
    video.add_mask(0, labels[0])
    got = list(video.propagate(3, "forward"))
    short = SimVOSPredictor(model, "cpu").open([frames[0], *frames[3:]])
    short.add_mask(0, labels[0])
    expected = list(short.propagate(0, "forward"))[1:]
    assert [r.index for r in got] == [3, 4, 5]
    for a, b in zip(got, expected):
        assert a.object_ids == b.object_ids
        torch.testing.assert_close(a.probs, b.probs)


def test_a_complete_map_without_an_object_makes_it_absent(model):
    frames, labels = _video(k=2)
    assert set(np.unique(labels[1])) == {0, 1, 2}
    only_one = np.where(labels[1] == 1, 1, 0).astype(np.uint8)
    video = SimVOSPredictor(model, "cpu").open(frames)
    video.add_mask(0, labels[0])
    video.add_mask(1, only_one)
    results = list(video.propagate(0, "forward", 2))
    assert results[1].object_ids == [1, 2]
    assert float(results[1].probs[2].max()) < 1e-6     # zero, up to the aggregation's clamp
    np.testing.assert_array_equal(results[1].labels(), only_one)
    # The absent object's reference is now frame 1 with an empty mask (the published memory keeps one).
    assert video.core.memory.reference_frames(2) == [1] and video.core.memory.reference_frames(1) == [1]
    # YouTube-VOS's meaning keeps object 2 segmented on frame 1.
    partial = SimVOSPredictor(model, "cpu").open(frames)
    partial.add_mask(0, labels[0])
    partial.add_mask(1, only_one, complete=False)
    assert float(list(partial.propagate(0, "forward", 1))[1].probs[2].max()) > 0.5


def test_remove_object(model):
    frames, labels = _video(k=3)
    video = SimVOSPredictor(model, "cpu").open(frames)
    video.add_mask(0, labels[0])
    video.add_mask(3, labels[3])
    video.remove_object(2)
    assert video.objects == [1, 3]
    with pytest.raises(InputError, match="no object 2"):
        video.remove_object(2)
    got = list(video.propagate(0, "forward"))
    # The same as a session that never had object 2 (its pixels background).
    never = SimVOSPredictor(model, "cpu").open(frames)
    for t in (0, 3):
        never.add_mask(t, np.where(labels[t] == 2, 0, labels[t]).astype(np.uint8))
    expected = list(never.propagate(0, "forward"))
    for a, b in zip(got, expected):
        assert a.object_ids == [1, 3] == b.object_ids
        assert 2 not in a.labels()
        torch.testing.assert_close(a.probs, b.probs)
    assert 2 not in video.core.memory.references and 2 not in video.core.memory.previous


def test_removing_the_only_object_of_a_complete_annotation_keeps_it_as_nothing_here(model):
    frames, labels = _video(k=2)
    only_two = np.where(labels[3] == 2, 2, 0).astype(np.uint8)
    video = SimVOSPredictor(model, "cpu").open(frames)
    video.add_mask(0, labels[0])
    video.add_mask(3, only_two)                       # frame 3: object 2 only, object 1 absent
    video.add_mask(5, only_two, complete=False)       # frame 5: adds object 2, says nothing of 1
    video.remove_object(2)
    assert video.objects == [1] and video.annotated_frames == [0, 3]
    got = list(video.propagate(0, "forward"))
    # An independent session given frame 3 as an empty complete annotation from the start.
    given = SimVOSPredictor(model, "cpu").open(frames)
    given.add_mask(0, np.where(labels[0] == 2, 0, labels[0]).astype(np.uint8))
    given.add_mask(3, np.zeros_like(labels[3]))
    expected = list(given.propagate(0, "forward"))
    assert [r.index for r in got] == [r.index for r in expected] == list(range(6))
    for a, b in zip(got, expected):
        assert a.object_ids == b.object_ids == [1]
        torch.testing.assert_close(a.probs, b.probs)
    assert not got[3].labels().any()                   # nothing here: object 1 absent on frame 3


def test_remove_mask_and_changes_during_a_walk(model):
    frames, labels = _video()
    video = SimVOSPredictor(model, "cpu").open(frames)
    video.add_mask(0, labels[0])
    walk = video.propagate(0, "forward")
    next(walk)
    video.add_mask(2, labels[2])
    with pytest.raises(RuntimeError, match="changed during a propagation"):
        next(walk)
    video.remove_mask(2)
    with pytest.raises(InputError, match="frame 2 has no annotation"):
        video.remove_mask(2)
    assert video.annotated_frames == [0]


@pytest.mark.parametrize("plan", VIDEO_PLANS)
@pytest.mark.parametrize("case", ["objects", "zeros"])
def test_every_plan_yields_every_frame_when_no_object_is_taken(model, plan, case):
    frames, labels = _video()
    masks = {0: labels[0], 3: labels[3]} if case == "objects" else {0: np.zeros_like(labels[0])}
    objects = {0: [7], 3: [7]} if case == "objects" else None
    results = list(SimVOSPredictor(model, "cpu").segment_video(frames, masks, plan, objects=objects))
    assert sorted(r.index for r in results) == list(range(len(frames)))
    assert all(r.object_ids == [] and not r.labels().any() for r in results)


def test_a_video_file_is_read_on_demand_both_ways(model, tmp_path):
    from dataset.video_io import VideoWriter
    frames, labels = _video(n=8)
    path = str(tmp_path / "clip.mp4")
    with VideoWriter(path, 10.0, frames[0].shape[1], frames[0].shape[0]) as writer:
        for frame in frames:
            writer.write(frame)
    predictor = SimVOSPredictor(model, "cpu")
    video = predictor.open(path)
    assert len(video) == 8
    video.add_mask(7, labels[7])
    backward = [r.index for r in video.propagate(7, "backward")]
    assert backward == list(range(7, -1, -1))
    from dataset.frames import open_input
    decoded = [rgb for _, rgb in open_input(path).read()]
    in_memory = predictor.open(decoded)
    in_memory.add_mask(7, labels[7])
    for a, b in zip(video.propagate(7, "backward"), in_memory.propagate(7, "backward")):
        torch.testing.assert_close(a.probs, b.probs)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "4", True])
def test_a_bad_max_keyframes_is_an_input_error_wherever_it_comes_from(model, bad):
    from inference_core.memory import make_memory
    with pytest.raises(InputError, match="max_keyframes must be an integer of at least 1"):
        SimVOSPredictor(model, "cpu", memory="keyframes", max_keyframes=bad)
    with pytest.raises(InputError, match="max_keyframes must be an integer of at least 1"):
        SimVOSPredictor(model, "cpu").open(np.zeros((2, 16, 16, 3), np.uint8), memory="keyframes", max_keyframes=bad)
    with pytest.raises(InputError, match="max_keyframes"):
        make_memory("keyframes", bad)


@pytest.mark.parametrize("bad", [0, -2, True, 1.5, "480"])
def test_a_bad_processing_size_is_an_input_error_wherever_it_comes_from(model, bad):
    with pytest.raises(InputError, match="size must be a positive number of pixels .* or -1"):
        SimVOSPredictor(model, "cpu", size=bad)
    with pytest.raises(InputError, match="size must be a positive number of pixels .* or -1"):
        SimVOSPredictor(model, "cpu").open(np.zeros((2, 16, 16, 3), np.uint8), size=bad)


def test_keyframe_memory_starts_with_every_annotation_nearest_last(model):
    frames, labels = _video(n=8)
    video = SimVOSPredictor(model, "cpu", memory="keyframes", max_keyframes=8).open(frames)
    for t in (0, 2, 6, 7):
        video.add_mask(t, labels[t])
    walk = video.propagate(3, "forward")
    next(walk)
    # Farthest from frame 3 first: 7, then 0 and 6 (a tie: the earlier frame first), the nearest, 2, last.
    assert video.core.memory.reference_frames(1) == [7, 0, 6, 2]
    published = SimVOSPredictor(model, "cpu").open(frames)
    for t in (0, 2, 6, 7):
        published.add_mask(t, labels[t])
    walk = published.propagate(3, "forward")
    next(walk)
    assert published.core.memory.reference_frames(1) == [2]
