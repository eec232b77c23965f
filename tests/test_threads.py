"""Overlapped I/O keeps order, raises errors where they belong, stops its thread, and changes no output."""
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from dataset.davis import VideoSequence
from dataset.palette_io import write_label_png
from dataset.synthetic import make_video
from evaluation.runner import segment_sequence
from inference_core import SimVOSPredictor
from model import build_model
from tests.conftest import tiny_config
from util.threads import BackgroundWriter, prefetched


def test_prefetched_keeps_order_and_raises_the_producers_error_in_place():
    def items():
        for i in range(5):
            time.sleep(0.01 * (i % 2))
            yield i
        raise OSError("frame 5 is broken")
    seen = []
    with pytest.raises(OSError, match="frame 5"):
        for item in prefetched(items(), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_closing_early_stops_the_reader():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1
    before = threading.active_count()
    gen = prefetched(endless(), depth=3)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    gen.close()
    time.sleep(0.2)
    assert threading.active_count() == before and len(produced) <= 3 + 3 + 1   # bounded read-ahead


def test_background_writer_runs_in_order_and_reports_the_first_error():
    out = []
    with BackgroundWriter(depth=2) as writer:
        for i in range(20):
            writer.submit(out.append, i)
    assert out == list(range(20))
    writer = BackgroundWriter()
    writer.submit(lambda: 1 / 0)
    writer.submit(out.append, "never")
    with pytest.raises(ZeroDivisionError):
        writer.close()
    assert "never" not in out


@pytest.mark.parametrize("overlap", [True, False])
def test_overlap_changes_no_output_and_void_stays_void(tmp_path, overlap):
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    frames, labels = make_video(np.random.default_rng(2), 6, 48, 64, 2)
    paths = []
    for t, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"{t:05d}.jpg")
        paths.append(str(tmp_path / f"{t:05d}.jpg"))
    first = labels[0].copy()
    first[:4, :4] = 255                                    # a DAVIS void region: not an object
    write_label_png(str(tmp_path / "first.png"), first)
    seq = VideoSequence("v", paths, {0: str(tmp_path / "first.png")})
    outputs = {}
    for flag in (overlap, not overlap):
        predictor = SimVOSPredictor(model, "cpu", size=-1, overlap_io=flag)
        segment_sequence(predictor, seq, str(tmp_path / f"out{flag}"))
        outputs[flag] = [np.array(Image.open(tmp_path / f"out{flag}/v/{t:05d}.png")) for t in range(6)]
    for a, b in zip(outputs[True], outputs[False]):
        np.testing.assert_array_equal(a, b)
    assert 255 not in np.unique(np.concatenate([o.ravel() for o in outputs[True]]))
