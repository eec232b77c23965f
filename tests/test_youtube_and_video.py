"""submit_eval_youtube.py (late objects, sparse output, zip) and segment_video.py on folders."""
import json
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

import segment_video
import submit_eval_youtube
from dataset.palette_io import write_label_png
from dataset.synthetic import YOUTUBE_STRIDE, make_video, make_youtube_dataset
from dataset.vos_pairs import scan_videos
from util.errors import InputError

FLAGS = ["--backbone_type", "vit_tiny", "--layer_index", "0", "--device", "cpu"]


def make_youtube(root, n=9):
    frames, labels = make_video(np.random.default_rng(5), n, 48, 64, 2)
    meta = {"videos": {"vidA": {"objects": {"1": {"category": "x", "frames": ["00000", "00002"]},
                                            "2": {"category": "y", "frames": ["00004", "00006"]}}}}}
    for t in range(n):
        Image.fromarray(frames[t]).save(_mk(root / "all_frames/valid_all_frames/JPEGImages/vidA") / f"{t:05d}.jpg")
        if t % 2 == 0:
            Image.fromarray(frames[t]).save(_mk(root / "valid/JPEGImages/vidA") / f"{t:05d}.jpg")
    write_label_png(str(_mk(root / "valid/Annotations/vidA") / "00000.png"), np.where(labels[0] == 1, 1, 0).astype(np.uint8))
    # The annotation where object 2 starts also shows object 1: only object 2 is taken from it.
    write_label_png(str(root / "valid/Annotations/vidA/00004.png"), labels[4])
    (root / "valid/meta.json").write_text(json.dumps(meta))
    return labels


def _mk(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_youtube_late_objects_sparse_output_and_zip(tmp_path, checkpoint):
    labels = make_youtube(tmp_path / "yv")
    submit_eval_youtube.main(["--model_path", str(checkpoint), "--yv_path", str(tmp_path / "yv"),
                              "--output", str(tmp_path / "out"), *FLAGS])
    ann = tmp_path / "out/tiny/Annotations/vidA"
    assert sorted(os.listdir(ann)) == [f"{t:05d}.png" for t in range(0, 9, 2)]
    before = np.array(Image.open(ann / "00002.png"))
    assert 2 not in np.unique(before)                           # object 2 does not exist yet
    at = np.array(Image.open(ann / "00004.png"))
    np.testing.assert_array_equal(at == 2, labels[4] == 2)     # its annotation is reproduced
    with zipfile.ZipFile(tmp_path / "out/tiny/tiny.zip") as z:
        assert sorted(z.namelist()) == [f"Annotations/vidA/{t:05d}.png" for t in range(0, 9, 2)]


def test_synthetic_youtube_layout_with_late_objects_runs_end_to_end(tmp_path, checkpoint):
    root = tmp_path / "yv"
    make_youtube_dataset(str(root), n_train=2, n_valid=3, size=(48, 64), n_frames=16, seed=4)
    train = scan_videos(str(root / "train/JPEGImages"), str(root / "train/Annotations"))
    assert [len(v.frames) for v in train] == [4, 4]            # frames 0, 5, 10, 15
    meta = json.loads((root / "valid/meta.json").read_text())["videos"]
    late = 0
    for name, info in meta.items():
        truth = {t: np.array(Image.open(root / f"valid_ground_truth/{name}/{t:05d}.png")) for t in range(0, 16, YOUTUBE_STRIDE)}
        assert len(os.listdir(root / f"all_frames/valid_all_frames/JPEGImages/{name}")) == 16
        assert sorted(os.listdir(root / f"valid/JPEGImages/{name}")) == [f"{t:05d}.jpg" for t in range(0, 16, YOUTUBE_STRIDE)]
        for obj, o in info["objects"].items():
            first = int(o["frames"][0])
            visible = [t for t in range(0, 16, YOUTUBE_STRIDE) if (truth[t] == int(obj)).any()]
            assert [int(f) for f in o["frames"]] == visible
            ann = np.array(Image.open(root / f"valid/Annotations/{name}/{first:05d}.png"))
            np.testing.assert_array_equal(ann == int(obj), truth[first] == int(obj))
            starting = {int(k) for k, q in info["objects"].items() if q["frames"][0] == o["frames"][0]}
            assert set(np.unique(ann)) - {0} == starting          # only the objects that start there
            late += first > 0
    assert late > 0, "the seed should give at least one object entering later"
    submit_eval_youtube.main(["--model_path", str(checkpoint), "--yv_path", str(root), "--output", str(tmp_path / "out"), *FLAGS])
    for name, info in meta.items():
        for obj, o in info["objects"].items():
            for t in range(0, int(o["frames"][0]), YOUTUBE_STRIDE):   # no prediction before an object starts
                assert int(obj) not in np.unique(np.array(Image.open(tmp_path / f"out/tiny/Annotations/{name}/{t:05d}.png")))


def test_youtube_missing_all_frames_is_a_clear_error(tmp_path, checkpoint):
    make_youtube(tmp_path / "yv")
    import shutil
    shutil.rmtree(tmp_path / "yv/all_frames")
    with pytest.raises(InputError, match="valid_all_frames/JPEGImages: folder not found"):
        submit_eval_youtube.main(["--model_path", str(checkpoint), "--yv_path", str(tmp_path / "yv"),
                                  "--output", str(tmp_path / "out"), *FLAGS])


def test_segment_video_needs_a_mask(tmp_path, checkpoint):
    (tmp_path / "frames").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "frames/a.jpg")
    with pytest.raises(InputError, match="give --mask"):
        segment_video.main(["--checkpoint", str(checkpoint), "--input", str(tmp_path / "frames"),
                            "--output", str(tmp_path / "o"), *FLAGS])


def test_segment_folder_with_masks_dir_for_a_later_object(tmp_path, checkpoint):
    frames, labels = make_video(np.random.default_rng(4), 5, 48, 64, 2)
    for t, f in enumerate(frames):
        Image.fromarray(f).save(_mk(tmp_path / "frames") / f"{t:05d}.jpg")
    write_label_png(str(_mk(tmp_path / "masks") / "00000.png"), np.where(labels[0] == 1, 1, 0).astype(np.uint8))
    write_label_png(str(tmp_path / "masks" / "00002.png"), np.where(labels[2] == 2, 2, 0).astype(np.uint8))
    segment_video.main(["--checkpoint", str(checkpoint), "--input", str(tmp_path / "frames"), "--masks_dir",
                        str(tmp_path / "masks"), "--output", str(tmp_path / "out"), "--overlay", "none", *FLAGS])
    out = [np.array(Image.open(tmp_path / "out/frames" / f"{t:05d}.png")) for t in range(5)]
    assert 2 not in np.unique(out[1])
    np.testing.assert_array_equal(out[2] == 2, labels[2] == 2)
