"""evaluation.davis_metrics against a direct, per-frame per-object computation of what the official
toolkit computes, written differently: seg2bmap pixel by pixel, boundary matching by a Euclidean
distance transform instead of a disk dilation, CSVs through pandas to_csv."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage.morphology import disk as sk_disk

from evaluation import davis_metrics, jf
from evaluation.official_jf import f_measure, j_measure, official_csvs, official_evaluate, seg2bmap, stats
from util.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------- the obvious way
def ref_seg2bmap(seg):
    """Berkeley seg2bmap as its definition reads, pixel by pixel: a pixel is on the boundary when
    one of its east, south and south-east neighbours that lie inside the image has another label."""
    h, w = seg.shape
    b = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            neighbours = [(y, x + 1), (y + 1, x), (y + 1, x + 1)]
            b[y, x] = any(seg[ny, nx] != seg[y, x] for ny, nx in neighbours if ny < h and nx < w)
    return b


# ----------------------------------------------------------------- synthetic data
def _save(path, labels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = Image.fromarray(labels.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] * 64)
    img.save(path)


def make_dataset(root, sequences, h=60, w=90, seed=0):
    """sequences: {name: (n_frames, n_objects)}. Moving discs / boxes with edge cases."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    for name, (n, k) in sequences.items():
        for t in range(n):
            gt = np.zeros((h, w), np.uint8)
            pred = np.zeros((h, w), np.uint8)
            for obj in range(1, k + 1):
                cy, cx = 10 + 8 * obj + t % 7, 10 + 15 * obj + (2 * t) % 11
                r = 4 + obj
                if not (obj == 2 and t % 3 == 1):  # object 2 missing in some frames
                    gt[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = obj
                dy, dx = rng.integers(-3, 4, 2)
                if not (obj == 1 and t % 4 == 2):  # empty prediction sometimes
                    pred[(yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= (r + rng.integers(-2, 3)) ** 2] = obj
            if t % 5 == 3:
                gt[0:3, 0:w] = 255                      # void band
            if k >= 2 and t % 6 == 0:
                gt[h - 1, w - 1] = 1                    # a one-pixel object part
                pred[h - 2:, w - 2:] = 2
            if t % 9 == 4:
                gt[:] = 0                               # an empty ground-truth frame
            _save(os.path.join(root, "Annotations", "480p", name, f"{t:05d}.png"), gt)
            _save(os.path.join(root, "pred", name, f"{t:05d}.png"), pred)
    os.makedirs(os.path.join(root, "ImageSets", "2017"), exist_ok=True)
    with open(os.path.join(root, "ImageSets", "2017", "val.txt"), "w") as f:
        f.write("\n".join(sequences) + "\n")


def test_matches_official_algorithm_byte_for_byte(tmp_path):
    seqs = {"alpha": (3, 1), "bravo": (12, 3), "charlie": (7, 2), "delta": (9, 4)}
    make_dataset(str(tmp_path), seqs)
    # Touching objects in one frame of bravo.
    touching = np.zeros((60, 90), np.uint8)
    touching[20:40, 10:30], touching[20:40, 30:50] = 1, 2
    _save(str(tmp_path / "Annotations/480p/bravo/00004.png"), touching)
    metrics = jf.evaluate(jf.davis_jobs(str(tmp_path), "val", str(tmp_path / "pred")), workers=2)
    g_path, s_path = jf.write_csvs(metrics, str(tmp_path / "out"), "val")
    expected_g, expected_s = official_csvs(official_evaluate(str(tmp_path / "Annotations/480p"), str(tmp_path / "pred"), seqs))
    assert open(g_path).read() == expected_g
    assert open(s_path).read() == expected_s
    assert expected_s.count("\n") == 1 + 1 + 3 + 2 + 4


@pytest.mark.parametrize("seed", range(6))
def test_frame_scores_equal_the_whole_frame_definitions(seed):
    """Per frame and object, J and F (computed on crops) equal the definitions on the whole frame:
    objects touching every edge and corner, void, an unknown gt id, absent and empty objects."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(20, 45, 2)
    gt, pred = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    for obj, (y, x) in zip((1, 2, 3), [(0, rng.integers(w)), (rng.integers(h), w - 4), (rng.integers(h), rng.integers(w))]):
        size = rng.integers(3, 9, 2)                                   # ragged blobs in small boxes
        blob = rng.random(size) < 0.7
        gt[y:y + size[0], x:x + size[1]][blob[:h - y, :w - x]] = obj
        dy, dx = rng.integers(-2, 3, 2)
        y, x = np.clip(y + dy, 0, h - 1), np.clip(x + dx, 0, w - 1)
        pred[y:y + size[0], x:x + size[1]][(rng.random(size) < 0.7)[:h - y, :w - x]] = obj
    gt[h - 1, w - 1], pred[h - 2:, :2] = 1, 2                          # corners
    gt[rng.random((h, w)) < 0.01] = 255                                # void pixels
    gt[h // 2, rng.integers(w)] = 7                                    # an id that is not an object
    object_ids = np.array([1, 2, 3, 4])                                # 4: in neither map
    radius = int(np.ceil(0.008 * np.linalg.norm((h, w))))
    j, f, predicted = jf.frame_scores(gt, pred, object_ids, jf.disk(radius), radius)
    for k, obj in enumerate(object_ids):
        assert j[k] == pytest.approx(j_measure(gt == obj, pred == obj), abs=1e-12)
        assert f[k] == pytest.approx(f_measure(pred == obj, gt == obj), abs=1e-12)
    assert set(predicted.tolist()) == set(np.unique(pred).tolist())


def test_label_pairs_count_exactly_beyond_float32_counts():
    """Frames of 2^24 pixels or more are counted in integers (cv2.calcHist counts in float32)."""
    gt = np.ones((4100, 4100), np.uint8)
    pred = np.zeros_like(gt)
    pred[1:, 1:] = 2                                        # 4099^2 > 2^24 pixels in one bin
    pairs = jf.label_pairs(gt, pred)
    codes, counts = np.unique(gt.astype(np.int64) * 256 + pred, return_counts=True)
    expected = dict(zip(codes.tolist(), counts.tolist()))
    expected.pop(0, None)                                   # both 0: not counted
    assert {int(k): int(pairs.flat[k]) for k in np.flatnonzero(pairs)} == expected


@pytest.mark.parametrize("seed", range(4))
def test_boundaries_and_disk_against_the_definitions(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((13, 17)) < 0.4 + 0.1 * seed
    mask[5:9, 4:12] = seed % 2 == 0          # a block touching nothing, or a hole
    np.testing.assert_array_equal(jf.boundaries(mask), ref_seg2bmap(mask))
    np.testing.assert_array_equal(seg2bmap(mask), ref_seg2bmap(mask))
    for radius in (1, 3, 8):
        np.testing.assert_array_equal(jf.disk(radius), sk_disk(radius))


def test_long_sequence_decay_keeps_official_binning():
    values = np.linspace(1, 0, 300)
    expected = stats(values)
    assert jf.statistics(values) == pytest.approx(expected, nan_ok=True)
    # Past 256 frames the official uint8 bin indices wrap: the decay is not first - last quarter.
    honest = values[:75].mean() - values[-75:].mean()
    decay = jf.statistics(values)[2]
    assert np.isnan(decay) or abs(decay - honest) > 0.1


@pytest.mark.slow
def test_command_line_and_generic_mode(tmp_path):
    make_dataset(str(tmp_path), {"a": (5, 2), "b": (6, 1)})
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-m", "evaluation.davis_metrics", "--davis_path", str(tmp_path), "--set", "val",
                          "--results_path", str(tmp_path / "pred"), "--workers", "1"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "Global results for val" in out.stdout
    davis_csv = (tmp_path / "pred" / "per-sequence_results-val.csv").read_text()
    generic = subprocess.run([sys.executable, "-m", "evaluation.davis_metrics", "--gt", str(tmp_path / "Annotations/480p"),
                              "--pred", str(tmp_path / "pred"), "--results_path", str(tmp_path / "g")],
                             capture_output=True, text=True, env=env, cwd=ROOT)
    assert generic.returncode == 0, generic.stderr
    assert (tmp_path / "g" / "per-sequence_results-val.csv").read_text() == davis_csv


def test_objects_appearing_later_are_scored_in_generic_mode(tmp_path):
    gt_frames = [np.zeros((40, 40), np.uint8) for _ in range(5)]
    for t in range(5):
        gt_frames[t][5:15, 5:15] = 1
        if t >= 2:
            gt_frames[t][20:30, 20:30] = 3  # id 3 enters on frame 2
    for t, g in enumerate(gt_frames):
        _save(str(tmp_path / "gt/s" / f"{t:05d}.png"), g)
        _save(str(tmp_path / "pr/s" / f"{t:05d}.png"), np.where(g == 3, 0, g))  # object 3 missed
    metrics = jf.evaluate(jf.generic_jobs(str(tmp_path / "gt"), str(tmp_path / "pr")))
    assert metrics["J"]["M_per_object"] == pytest.approx({"s_1": 1.0, "s_3": 1 / 3})


@pytest.mark.parametrize("problem,message", [
    ("missing_seq", "no predictions for sequence b"),
    ("missing_frame", "00002.png: prediction of sequence a not found"),
    ("size", "prediction is 20x10, ground truth is 90x60"),
    ("extra_object", "a/00001.png: prediction has object id 5, ground truth has 2 object(s)"),
    ("rgb", "is an RGB image, not an indexed (palette) PNG"),
    ("short", "b: 2 annotated frames"),
])
def test_bad_input_is_one_clear_error_and_no_csv(tmp_path, problem, message):
    make_dataset(str(tmp_path), {"a": (5, 2), "b": (2 if problem == "short" else 4, 1)})
    pred = tmp_path / "pred"
    if problem == "missing_seq":
        for f in (pred / "b").iterdir():
            f.unlink()
        (pred / "b").rmdir()
    elif problem == "missing_frame":
        (pred / "a" / "00002.png").unlink()
    elif problem == "size":
        _save(str(pred / "a" / "00001.png"), np.zeros((10, 20), np.uint8))
    elif problem == "extra_object":
        _save(str(pred / "a" / "00001.png"), np.full((60, 90), 5, np.uint8))
    elif problem == "rgb":
        Image.new("RGB", (90, 60)).save(pred / "a" / "00001.png")
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        davis_metrics.main(["--davis_path", str(tmp_path), "--results_path", str(pred), "--workers", "1"])
    assert not list(pred.glob("*.csv"))
