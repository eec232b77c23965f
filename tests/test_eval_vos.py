"""submit_eval_vos.py and evaluation/vos_scores.py on tiny synthetic MOSE, LVOS, SA-V and generic
sets: the layouts each official tool reads, the protocols, and the scores against an independent
computation written here (numpy J, evaluation/official_jf.py's distance-transform F)."""
import csv
import json
import math
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import submit_eval_vos
from dataset.benchmarks import load_video, open_benchmark
from evaluation.official_jf import f_measure as reference_f
from evaluation.vos_scores import score_results
from model import build_model, config_from_flags
from tests.vos_layouts import make_folder_set, make_lvos_set, make_sav_set
from util.errors import InputError

FLAGS = ["--backbone_type", "vit_tiny", "--layer_index", "0", "--device", "cpu"]


def reference_j(gt, pred):
    union = np.sum(gt | pred)
    return 1.0 if union == 0 else np.sum(gt & pred) / union


def _noisy(labels, rng):
    """A prediction: the ground truth shifted by a pixel or two, an object dropped on one frame."""
    pred = np.roll(labels, int(rng.integers(-2, 3)), axis=1)
    if rng.random() < 0.3:
        pred = np.where(pred == 1, 0, pred)
    return pred.astype(np.uint8)


def _write(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = Image.fromarray(array.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    img.save(path)


def _rows(path):
    with open(path) as f:
        return list(csv.reader(f))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = build_model(config_from_flags("vit_tiny", train_img_size=64))
    with torch.no_grad():
        model.stcn_decoder.pred.weight.mul_(200)
    torch.save(model.state_dict(), folder / "tiny.pth")
    return folder


def _run(ckpt, dataset, root, out, *extra):
    submit_eval_vos.main(["--dataset", dataset, "--data_root", str(root), "--model_path", str(ckpt),
                          "--output", str(out), *FLAGS, *extra])


# ---------------------------------------------------------------------------- scores
def test_lvos_scores_as_lvos_evaluation(tmp_path):
    gt = make_lvos_set(str(tmp_path / "valid"))
    rng = np.random.default_rng(0)
    results = tmp_path / "res"
    preds = {}
    for video, labels in gt.items():
        preds[video] = [_noisy(lab, rng) for lab in labels]
        for t, p in enumerate(preds[video]):
            _write(str(results / video / f"{t + 1:08d}.png"), p)
    bench = open_benchmark("lvos", str(tmp_path), "valid")
    score_results(bench, str(results), "valid")
    expected, groups = {}, {True: [], False: []}
    for video in sorted(gt):
        for n, (obj, start) in enumerate(((1, 1), (2, 4))):
            frames = list(range(start, 22, 5))        # frame numbers, first and last not scored
            js = [reference_j(gt[video][t - 1] == obj, preds[video][t - 1] == obj) for t in frames[1:-1]]
            fs = [reference_f(preds[video][t - 1] == obj, gt[video][t - 1] == obj) for t in frames[1:-1]]
            jf = (np.array(js) + np.array(fs)) / 2
            v = math.sqrt(round(float(np.sum((jf - jf.mean()) ** 2) / len(jf)), 4))
            expected[f"{video}_{n + 1}"] = (np.mean(js), np.mean(fs), v)
            groups[video == "v2"].append((np.mean(js), np.mean(fs), v))
    rows = _rows(results / "per-sequence_results-valid.csv")
    assert rows[0] == ["Sequence", "J-Mean", "F-Mean", "V-Mean"]
    assert {r[0]: tuple(map(float, r[1:])) for r in rows[1:]} == \
        {k: tuple(float("%.3f" % x) for x in v) for k, v in expected.items()}
    seen, unseen = np.mean(groups[False], axis=0), np.mean(groups[True], axis=0)
    head, values = _rows(results / "global_results-valid.csv")
    assert head[:4] == ["J&F-Mean", "J-Mean", "J-seen-Mean", "J-unseen-Mean"]
    assert float(values[0]) == float("%.3f" % ((seen[0] + seen[1] + unseen[0] + unseen[1]) / 4))
    assert float(values[2]) == float("%.3f" % seen[0]) and float(values[9]) == float("%.3f" % unseen[2])


def test_sav_scores_as_sav_evaluator(tmp_path):
    gt = make_sav_set(str(tmp_path / "sav_val"))
    rng = np.random.default_rng(1)
    results = tmp_path / "res"
    expected = []
    for video in sorted(gt):
        for folder, masks in gt[video].items():
            js, fs, started = [], [], False
            for t in range(0, 17, 4):
                pred = np.roll(masks[t], int(rng.integers(-2, 3)), axis=0) if t != 8 else np.zeros_like(masks[t])
                _write(str(results / video / folder / f"{t:05d}.png"), pred)
                if 0 < t < 16:          # first and last annotated frames skipped
                    started |= bool(masks[t].any() or pred.any())
                    if started:         # frames before the object is anywhere do not count
                        js.append(reference_j(masks[t], pred))
                        fs.append(reference_f(pred, masks[t]))
            expected.append((video, folder, np.mean(js) * 100, np.mean(fs) * 100))
    bench = open_benchmark("sav", str(tmp_path / "sav_val"), "val")
    score_results(bench, str(results), "val")
    lines = (results / "results.csv").read_text().splitlines()
    j, f = np.mean([e[2] for e in expected]), np.mean([e[3] for e in expected])
    assert lines[0] == "sequence    ,obj,  J&F,    J,    F"
    assert lines[1] == f"Global score,   , {(j + f) / 2:.1f}, {j:.1f}, {f:.1f}"
    for line, (video, folder, oj, of) in zip(lines[2:], expected):
        assert line == f"{video:<12},{folder}, {(oj + of) / 2:>4.1f}, {oj:>4.1f}, {of:>4.1f}"


def test_generic_scores_as_davis(tmp_path):
    gt = make_folder_set(str(tmp_path / "set"))
    rng = np.random.default_rng(2)
    results = tmp_path / "res"
    per_object = {}
    for video, labels in gt.items():
        preds = [_noisy(lab, rng) for lab in labels]
        for t, p in enumerate(preds):
            _write(str(results / video / f"{t:05d}.png"), p)
        for obj in (1, 2):
            js = [reference_j(g == obj, p == obj) for g, p in zip(labels[1:-1], preds[1:-1])]
            fs = [reference_f(p == obj, g == obj) for g, p in zip(labels[1:-1], preds[1:-1])]
            per_object[f"{video}_{obj}"] = (float("%.3f" % np.mean(js)), float("%.3f" % np.mean(fs)))
    score_results(open_benchmark("generic", str(tmp_path / "set"), None), str(results), "all")
    rows = _rows(results / "per-sequence_results-all.csv")
    assert {r[0]: (float(r[1]), float(r[2])) for r in rows[1:]} == per_object


def test_results_of_another_layout_are_one_line(tmp_path):
    make_sav_set(str(tmp_path / "sav_val"))
    make_lvos_set(str(tmp_path / "valid"))
    sav_like = tmp_path / "res" / "v1" / "000"
    _write(str(sav_like / "00000001.png"), np.zeros((32, 40)))
    with pytest.raises(InputError, match="per-object folders .SA-V's layout."):
        score_results(open_benchmark("lvos", str(tmp_path), "valid"), str(tmp_path / "res"), "valid")
    _write(str(tmp_path / "res2" / "sav_1" / "00000.png"), np.zeros((32, 40)))
    with pytest.raises(InputError, match="label-map PNGs, not SA-V's"):
        score_results(open_benchmark("sav", str(tmp_path / "sav_val"), "val"), str(tmp_path / "res2"), "val")


@pytest.mark.parametrize("dataset,message", [
    ("lvos", "no valid_meta.json in .*: is this an LVOS split?"),
    ("sav", "no sav_val.txt in .*: is this an SA-V val split?"),
    ("mose", "no JPEGImages in .*: is this a MOSE split"),
    ("generic", "no JPEGImages in .*"),
])
def test_a_folder_of_another_layout_is_one_line(tmp_path, dataset, message):
    make_folder_set(str(tmp_path / "other" / "somewhere"), videos=("a",), n=3)
    with pytest.raises(InputError, match=message):
        open_benchmark(dataset, str(tmp_path / "other"), None if dataset == "generic" else {
            "lvos": "valid", "sav": "val", "mose": "valid"}[dataset])


# ---------------------------------------------------------------------------- protocols
def test_protocols_start_each_object_on_its_first_mask(tmp_path):
    make_lvos_set(str(tmp_path / "valid"), videos=("v1",))
    seq = load_video(open_benchmark("lvos", str(tmp_path), "valid"), "v1")
    assert seq.annotation_objects == {0: [1], 3: [2]}    # the dense later annotations are not used
    make_folder_set(str(tmp_path / "g"), videos=("a",), dense=False)
    generic = open_benchmark("generic", str(tmp_path / "g"), None)
    assert load_video(generic, "a").annotations == {0: str(tmp_path / "g/Annotations/a/00000.png")}
    assert load_video(generic, "a", all_masks=True).annotation_objects == {0: [1], 3: [2]}
    make_sav_set(str(tmp_path / "sav_val"), videos=("s",))
    seq = load_video(open_benchmark("sav", str(tmp_path / "sav_val"), "val"), "s")
    assert sorted(seq.object_annotations) == [0, 8] and list(seq.object_annotations[8]) == [2]


# ---------------------------------------------------------------------------- the command
def test_sav_command_writes_per_object_pngs_independently_and_scores(ckpt, tmp_path, capsys):
    make_sav_set(str(tmp_path / "sav_val"), videos=("s",), n=13)
    _run(ckpt, "sav", tmp_path / "sav_val", tmp_path / "out", "--score")
    out = tmp_path / "out" / "tiny"
    assert sorted(os.listdir(out / "s")) == ["000", "001"]
    assert sorted(os.listdir(out / "s" / "001")) == [f"{t:05d}.png" for t in range(13)]
    for folder, stem in (("000", "00000"), ("001", "00008")):    # each object's first mask, as given
        given = np.array(Image.open(tmp_path / "sav_val/Annotations_6fps/s" / folder / f"{stem}.png"))
        np.testing.assert_array_equal(np.array(Image.open(out / "s" / folder / f"{stem}.png")), given)
    assert not np.array(Image.open(out / "s" / "001" / "00004.png")).any()    # the hand before it appears
    assert (out / "results.csv").exists() and (out / "global_results-val.csv").exists()
    printed = capsys.readouterr().out
    assert "objects segmented independently" in printed
    assert '"independent_objects": true' in (out / "protocol.json").read_text()


def test_mose_and_lvos_commands_write_their_layouts(ckpt, tmp_path):
    make_folder_set(str(tmp_path / "mose" / "valid"), videos=("m",), n=6, dense=False)
    _run(ckpt, "mose", tmp_path / "mose", tmp_path / "out")
    out = tmp_path / "out" / "tiny"
    assert sorted(os.listdir(out / "Annotations" / "m")) == [f"{t:05d}.png" for t in range(6)]
    with zipfile.ZipFile(out / "tiny.zip") as z:
        assert sorted(z.namelist()) == [f"Annotations/m/{t:05d}.png" for t in range(6)]
    late = np.array(Image.open(out / "Annotations/m/00003.png"))
    assert 2 in late and 2 not in np.array(Image.open(out / "Annotations/m/00002.png"))   # object 2 from its first mask
    make_lvos_set(str(tmp_path / "lvos" / "valid"), videos=("v1",), n=16)
    _run(ckpt, "lvos", tmp_path / "lvos", tmp_path / "out_l", "--score")
    assert len(os.listdir(tmp_path / "out_l/tiny/v1")) == 16    # every frame
    assert (tmp_path / "out_l/tiny/global_results-valid.csv").exists()


def test_shards_write_what_one_process_writes(ckpt, tmp_path):
    make_folder_set(str(tmp_path / "g"), videos=("a", "b", "c"), n=5)
    _run(ckpt, "generic", tmp_path / "g", tmp_path / "one")
    for shard in (0, 1):
        _run(ckpt, "generic", tmp_path / "g", tmp_path / "two", "--num_shards", "2", "--shard_id", str(shard))
    for video in ("a", "b", "c"):
        names = sorted(os.listdir(tmp_path / "one/tiny" / video))
        assert names == sorted(os.listdir(tmp_path / "two/tiny" / video)) and len(names) == 5
        for name in names:
            np.testing.assert_array_equal(np.array(Image.open(tmp_path / "one/tiny" / video / name)),
                                          np.array(Image.open(tmp_path / "two/tiny" / video / name)))


def test_a_killed_long_video_continues_exactly_where_its_results_stop(ckpt, tmp_path, monkeypatch, capsys):
    import evaluation.runner as runner
    make_lvos_set(str(tmp_path / "valid"), videos=("v1",), n=16)
    flags = ["--overlap_io", "False", "--resume_every", "4"]
    _run(ckpt, "lvos", tmp_path, tmp_path / "whole", *flags)
    real, written = runner.write_label_png, []

    def killed_at_frame_11(path, labels):
        if len(written) == 10:
            raise KeyboardInterrupt
        written.append(path)
        real(path, labels)
    monkeypatch.setattr(runner, "write_label_png", killed_at_frame_11)
    with pytest.raises(KeyboardInterrupt):
        _run(ckpt, "lvos", tmp_path, tmp_path / "resumed", *flags)
    partial = tmp_path / "resumed/tiny/.v1.partial"
    assert len([f for f in os.listdir(partial) if f.endswith(".png")]) == 10 and (partial / "resume.pt").exists()
    monkeypatch.setattr(runner, "write_label_png", real)
    capsys.readouterr()
    _run(ckpt, "lvos", tmp_path, tmp_path / "resumed", *flags)
    assert "1 sequences (0 already done), 8 frames" in capsys.readouterr().out   # frames 9-16: after the point at 8
    assert not partial.exists()
    names = sorted(os.listdir(tmp_path / "whole/tiny/v1"))
    assert names == sorted(os.listdir(tmp_path / "resumed/tiny/v1")) and len(names) == 16
    for name in names:
        np.testing.assert_array_equal(np.array(Image.open(tmp_path / "whole/tiny/v1" / name)),
                                      np.array(Image.open(tmp_path / "resumed/tiny/v1" / name)))


def test_an_lvos_meta_with_too_few_frame_nums_is_one_line(tmp_path):
    make_lvos_set(str(tmp_path / "valid"), videos=("v1",), n=16)
    meta = json.loads((tmp_path / "valid/valid_meta.json").read_text())
    meta["videos"]["v1"]["objects"]["1"]["frame_range"]["frame_nums"] = 2     # start..end by 5 gives 4 frames
    (tmp_path / "valid/valid_meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="v1 object 1: frame_range start..end by 5 gives more frames"):
        score_results(open_benchmark("lvos", str(tmp_path), "valid"), str(tmp_path / "valid/Annotations"), "valid")


@pytest.mark.slow  # a launcher and two processes
def test_torchrun_ranks_write_what_one_process_writes_and_rank_0_scores(ckpt, tmp_path):
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    make_sav_set(str(tmp_path / "sav_val"), videos=("s1", "s2", "s3"), n=13)
    argv = ["--dataset", "sav", "--data_root", str(tmp_path / "sav_val"), "--model_path", str(ckpt), "--score", *FLAGS]
    _run(ckpt, "sav", tmp_path / "sav_val", tmp_path / "one", "--score")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "submit_eval_vos.py", *argv, "--output", str(tmp_path / "two")],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all 2 ranks:" in proc.stdout and proc.stdout.count("global_results-val.csv:") == 1
    for video in ("s1", "s2", "s3"):
        for folder in ("000", "001"):
            for name in sorted(os.listdir(tmp_path / "one/tiny" / video / folder)):
                np.testing.assert_array_equal(np.array(Image.open(tmp_path / "one/tiny" / video / folder / name)),
                                              np.array(Image.open(tmp_path / "two/tiny" / video / folder / name)))
    assert (tmp_path / "one/tiny/results.csv").read_text() == (tmp_path / "two/tiny/results.csv").read_text()


def test_davis_and_youtube_through_the_one_command(ckpt, tmp_path):
    from dataset.synthetic import make_davis_dataset, make_youtube_dataset
    make_davis_dataset(str(tmp_path / "DAVIS/trainval"), n_train=0, n_val=2, size=(32, 40), n_frames=4, seed=3)
    _run(ckpt, "davis17", tmp_path / "DAVIS", tmp_path / "d", "--score")
    assert sorted(os.listdir(tmp_path / "d/tiny/val000")) == [f"{t:05d}.png" for t in range(4)]
    assert _rows(tmp_path / "d/tiny/global_results-val.csv")[0][0] == "J&F-Mean"
    make_youtube_dataset(str(tmp_path / "yt"), n_train=1, n_valid=2, size=(32, 40), n_frames=11, seed=2)
    _run(ckpt, "youtube19", tmp_path / "yt", tmp_path / "y")
    with zipfile.ZipFile(tmp_path / "y/tiny/tiny.zip") as z:
        names = z.namelist()
    assert names and all(n.startswith("Annotations/") for n in names)
    with pytest.raises(InputError, match="no public ground truth"):
        _run(ckpt, "youtube19", tmp_path / "yt", tmp_path / "y", "--score")


def test_lvos_unseen_list_from_a_file(tmp_path):
    make_lvos_set(str(tmp_path / "valid"), videos=("v1", "v2"), unseen=())
    (tmp_path / "valid/unseen_videos.txt").unlink()
    assert open_benchmark("lvos", str(tmp_path), "valid").unseen is None
    (tmp_path / "list.txt").write_text("v1\n")
    assert open_benchmark("lvos", str(tmp_path), "valid", str(tmp_path / "list.txt")).unseen == {"v1"}
    with pytest.raises(InputError, match="nope.txt: split file not found"):
        open_benchmark("lvos", str(tmp_path), "valid", str(tmp_path / "nope.txt"))
