"""Sharded evaluation: ranks of torchrun and job-array shards write what one process writes."""
import filecmp
import itertools
import os
import subprocess
import sys
import zipfile

import pytest
import torch

import submit_eval_davis_ours_all as eval_davis
import submit_eval_youtube
from dataset.synthetic import make_davis_dataset, make_youtube_dataset
from evaluation.sharding import balance
from model import build_model, config_from_flags
from util.errors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["--backbone_type", "vit_tiny", "--layer_index", "0", "--device", "cpu"]

pytestmark = pytest.mark.slow  # launchers, subprocesses, resumes


@pytest.mark.parametrize("costs,count", [([10, 9, 8, 7, 6, 5, 1], 2), ([5, 5, 5, 4, 4, 3, 3, 3], 3), ([1, 2], 4)])
def test_balance_is_a_deterministic_partition_close_to_the_best(costs, count):
    shares = balance(costs, count)
    assert shares == balance(costs, count) and len(shares) == count
    assert sorted(i for share in shares for i in share) == list(range(len(costs)))
    best = min(max(sum(c for c, s in zip(costs, assignment) if s == r) for r in range(count))
               for assignment in itertools.product(range(count), repeat=len(costs)))
    worst = max(sum(costs[i] for i in share) for share in shares)
    assert worst <= best * 4 / 3  # longest-first greedy (LPT) is within 4/3 of the optimum
    assert shares[0][0] == max(range(len(costs)), key=lambda i: (costs[i], -i))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("shard")
    make_davis_dataset(str(root / "trainval"), n_train=1, n_val=5, size=(40, 72), n_frames=5, seed=4)
    make_youtube_dataset(str(root / "yt"), n_train=1, n_valid=4, size=(40, 72), n_frames=11, seed=2)
    (root / "ckpts").mkdir()
    torch.manual_seed(0)
    model = build_model(config_from_flags("vit_tiny", train_img_size=64))
    with torch.no_grad():
        model.stcn_decoder.pred.weight.mul_(200)
    torch.save(model.state_dict(), root / "ckpts" / "tiny.pth")
    return root


def _davis_argv(data, out, *extra):
    return ["--model_path", str(data / "ckpts"), "--davis_path", str(data), "--output", str(out), *FLAGS, *extra]


def _torchrun(script, argv, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", script, *argv]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _same_tree(a, b):
    """Same files, same bytes (PNGs and CSVs), nothing else."""
    files_a = sorted(os.path.relpath(os.path.join(d, f), a) for d, _, fs in os.walk(a) for f in fs)
    files_b = sorted(os.path.relpath(os.path.join(d, f), b) for d, _, fs in os.walk(b) for f in fs)
    assert files_a == files_b
    _, mismatch, errors = filecmp.cmpfiles(a, b, files_a, shallow=False)
    assert mismatch == [] and errors == []


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    eval_davis.main(_davis_argv(data, out))
    return out


def test_torchrun_two_ranks_equal_one_process(data, single, tmp_path):
    proc = _torchrun("submit_eval_davis_ours_all.py", _davis_argv(data, tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    _same_tree(single / "tiny", tmp_path / "tiny")
    assert "all 2 ranks:" in proc.stdout and "slowest rank" in proc.stdout
    assert proc.stdout.count("Global results for val") == 1        # rank 0 alone scores


def test_job_array_shards_then_a_final_call_equal_one_process(data, single, tmp_path, capsys):
    eval_davis.main(_davis_argv(data, tmp_path, "--num_shards", "2", "--shard_id", "1"))
    first = capsys.readouterr().out
    assert "J&F not computed yet" in first and not (tmp_path / "tiny" / "global_results-val.csv").exists()
    written = sorted(p.name for p in (tmp_path / "tiny").iterdir())
    assert 0 < len(written) < 5
    eval_davis.main(_davis_argv(data, tmp_path, "--num_shards", "2", "--shard_id", "0"))
    assert "Global results for val" in capsys.readouterr().out      # the last shard to finish scores
    stamp = (tmp_path / "tiny" / "global_results-val.csv").stat().st_mtime_ns
    eval_davis.main(_davis_argv(data, tmp_path))                    # a final call: skips all, scores
    assert "(5 already done)" in capsys.readouterr().out
    assert (tmp_path / "tiny" / "global_results-val.csv").stat().st_mtime_ns != stamp
    _same_tree(single / "tiny", tmp_path / "tiny")


def test_a_failing_sequence_on_one_rank_fails_the_run_and_a_rerun_completes_it(data, single, tmp_path):
    import shutil
    tree = tmp_path / "data"
    shutil.copytree(data, tree)
    bad = tree / "trainval/JPEGImages/480p/val003/00002.jpg"
    good_bytes = bad.read_bytes()
    bad.write_bytes(b"\xff\xd8 broken")
    out = tmp_path / "out"
    proc = _torchrun("submit_eval_davis_ours_all.py", _davis_argv(tree, out))
    assert proc.returncode != 0
    assert "val003" in proc.stderr and "unreadable or corrupt image" in proc.stderr
    assert "another rank failed" in proc.stderr
    done = sorted(p.name for p in (out / "tiny").iterdir())
    assert done == ["val000", "val001", "val002", "val004"]          # nothing half-written, others complete
    stamps = {n: (out / "tiny" / n / "00004.png").stat().st_mtime_ns for n in done}
    bad.write_bytes(good_bytes)
    eval_davis.main(_davis_argv(tree, out))
    assert {n: (out / "tiny" / n / "00004.png").stat().st_mtime_ns for n in done} == stamps
    _same_tree(single / "tiny", out / "tiny")


def test_youtube_layout_sharded_equals_one_process(data, tmp_path):
    argv = ["--model_path", str(data / "ckpts"), "--yv_path", str(data / "yt"), *FLAGS]
    submit_eval_youtube.main(argv + ["--output", str(tmp_path / "one")])
    for shard in ("0", "1", "2"):
        submit_eval_youtube.main(argv + ["--output", str(tmp_path / "three"), "--num_shards", "3", "--shard_id", shard])
    _same_tree(tmp_path / "one/tiny/Annotations", tmp_path / "three/tiny/Annotations")
    zips = [zipfile.ZipFile(tmp_path / d / "tiny/tiny.zip") for d in ("one", "three")]
    assert zips[0].namelist() == zips[1].namelist() and len(zips[0].namelist()) > 4
    assert all(zips[0].read(n) == zips[1].read(n) for n in zips[0].namelist())


def test_bad_shard_flags_are_one_clear_error(data, tmp_path):
    with pytest.raises(InputError, match=r"--shard_id must be in \[0, 1\], got 2"):
        eval_davis.main(_davis_argv(data, tmp_path, "--num_shards", "2", "--shard_id", "2"))


def test_segment_video_several_inputs_sharded_equal_one_call(data, tmp_path):
    import segment_video
    davis = data / "trainval"
    inputs = [str(davis / "JPEGImages/480p" / n) for n in ("val000", "val001", "val002")]
    masks = [str(davis / "Annotations/480p" / n / "00000.png") for n in ("val000", "val001", "val002")]
    # H.264 files differ byte-wise between runs (encoder threads): the masks are compared
    argv = ["--checkpoint", str(data / "ckpts/tiny.pth"), "--input", *inputs, "--mask", *masks, "--overlay", "none", *FLAGS]
    segment_video.main(argv + ["--output", str(tmp_path / "one")])
    for shard in ("0", "1"):
        segment_video.main(argv + ["--output", str(tmp_path / "two"), "--num_shards", "2", "--shard_id", shard])
    _same_tree(tmp_path / "one", tmp_path / "two")
    assert sorted(os.listdir(tmp_path / "one")) == ["val000", "val001", "val002"]
    with pytest.raises(InputError, match="2 masks for 3 inputs"):
        segment_video.main(["--checkpoint", str(data / "ckpts/tiny.pth"), "--input", *inputs, "--mask", *masks[:2],
                            "--output", str(tmp_path / "x"), *FLAGS])
