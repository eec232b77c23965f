"""The evaluation report: its numbers are the J&F pass's, it picks the worst sequences, and the page
loads from disk in a real browser with every image and nothing fetched from the network."""
import csv
import json
import os
import shutil

import numpy as np
import pytest

import submit_eval_davis_ours_all as eval_davis
from dataset.palette_io import read_label_png, write_label_png
from dataset.synthetic import make_davis_dataset, make_youtube_dataset
from evaluation import davis_metrics, jf, report


def _shifted_predictions(gt_root, pred_root, names):
    """Predictions = ground truth shifted right by 0, 3, 6 ... pixels (one shift per sequence)."""
    for i, name in enumerate(names):
        for f in sorted(os.listdir(os.path.join(gt_root, name))):
            labels = read_label_png(os.path.join(gt_root, name, f))
            shifted = np.zeros_like(labels)
            shifted[:, 3 * i:] = labels[:, :labels.shape[1] - 3 * i]
            os.makedirs(os.path.join(pred_root, name), exist_ok=True)
            write_label_png(os.path.join(pred_root, name, f), shifted)


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    make_davis_dataset(str(root), n_train=1, n_val=4, size=(64, 96), n_frames=8, seed=7)
    names = open(root / "ImageSets/2017/val.txt").read().split()
    _shifted_predictions(str(root / "Annotations/480p"), str(root / "pred"), names[::-1])  # val003 exact ... val000 worst
    return root


def test_report_numbers_are_the_jf_passes_and_the_worst_sequence_is_the_lowest(davis):
    davis_metrics.main(["--davis_path", str(davis), "--results_path", str(davis / "pred"), "--workers", "1", "--report"])
    data = json.load(open(davis / "pred/report/data.json"))
    for job in jf.davis_jobs(str(davis), "val", str(davis / "pred")):
        name, objects, stems, j, f = jf.evaluate_sequence(job)
        seq = data["sequences"][name]
        assert seq["objects"] == objects.tolist() and seq["frames"] == stems
        np.testing.assert_array_equal(np.array(seq["J_per_frame"]), j)
        np.testing.assert_array_equal(np.array(seq["F_per_frame"]), f)
    # The per-sequence J&F from the official per-object CSV, averaged per sequence.
    per_seq = {}
    for row in csv.DictReader(open(davis / "pred/per-sequence_results-val.csv")):
        per_seq.setdefault(row["Sequence"].rsplit("_", 1)[0], []).append((float(row["J-Mean"]) + float(row["F-Mean"])) / 2)
    ordered = sorted(per_seq, key=lambda n: np.mean(per_seq[n]))
    assert data["worst"] == ordered[:4] and ordered[-1] == "val003"   # val003 is predicted exactly
    assert data["sequences"]["val003"]["J&F"] == pytest.approx(1.0)


def test_compare_lists_the_changes_largest_drop_first(davis, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(davis / "pred", other)
    for png in (other / "val003").iterdir():                  # worse (empty) where this one is exact
        write_label_png(str(png), np.zeros_like(read_label_png(str(png))))
    report.main(["--davis_path", str(davis), "--results_path", str(davis / "pred"), "--compare", str(other),
                 "--workers", "1", "--worst", "1"])
    page = open(davis / "pred/report/index.html").read()
    table = page[page.index('<table class="compare">'):]
    names = [cell for cell in ("val000", "val001", "val002", "val003") if cell in table]
    assert table.index("val003") > max(table.index(n) for n in names if n != "val003")  # the gain comes last


def test_eval_script_writes_the_report(tmp_path):
    import torch
    from model import build_model, config_from_flags
    make_davis_dataset(str(tmp_path / "trainval"), n_train=1, n_val=2, size=(40, 72), n_frames=5, seed=3)
    (tmp_path / "ckpts").mkdir()
    torch.save(build_model(config_from_flags("vit_tiny", train_img_size=64)).state_dict(), tmp_path / "ckpts/tiny.pth")
    eval_davis.main(["--model_path", str(tmp_path / "ckpts"), "--davis_path", str(tmp_path), "--output", str(tmp_path / "out"),
                     "--backbone_type", "vit_tiny", "--layer_index", "0", "--device", "cpu", "--report"])
    assert (tmp_path / "out/tiny/report/index.html").is_file()
    assert (tmp_path / "out/tiny/report/strip_val000.png").is_file()


@pytest.mark.slow
def test_the_page_loads_in_a_real_browser_from_disk(tmp_path, browser_page):
    yt = tmp_path / "yt"
    make_youtube_dataset(str(yt), n_train=1, n_valid=3, size=(64, 96), n_frames=21, seed=3)
    names = sorted(os.listdir(yt / "valid_ground_truth"))
    _shifted_predictions(str(yt / "valid_ground_truth"), str(tmp_path / "pred"), names)
    report.main(["--gt", str(yt / "valid_ground_truth"), "--pred", str(tmp_path / "pred"),
                 "--images", str(yt / "valid/JPEGImages"), "--workers", "1", "--worst", "2"])
    page = browser_page
    page.goto((tmp_path / "pred/report/index.html").as_uri(), wait_until="load")
    images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert len(images) == 1 + len(names) + 2 * 2                     # bars, timelines, 2 strips + 2 animations
    assert all(width > 0 for _, width in images), images
    assert page.requested and all(u.startswith("file://") for u in page.requested), page.requested  # nothing left the disk
