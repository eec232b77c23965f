"""--vos_datasets NAME:DIR:WEIGHT[:MAX_JUMP]: any VOS-layout folder added to the training mix."""
import os

import pytest

from dataset.vos_pairs import VOSFolder, parse_vos_folder, vos_folder_videos
from tests.vos_layouts import make_folder_set
from training.cli import parse_args
from training.config import resolve_config
from training.data import build_datasets
from util.errors import InputError


@pytest.mark.parametrize("spec,folder", [
    ("mose:../MOSE/train:1", VOSFolder("mose", "../MOSE/train", 1)),
    ("burst:/d/a:b/train:3:5", VOSFolder("burst", "/d/a:b/train", 3, 5)),
])
def test_specs(spec, folder):
    assert parse_vos_folder(spec) == folder


@pytest.mark.parametrize("spec", ["mose", "mose:DIR", "mose:DIR:0", ":DIR:1", "mose:DIR:x", "mose:DIR:1:0"])
def test_bad_specs_are_one_line(spec):
    with pytest.raises(InputError, match="expected NAME:DIR:WEIGHT"):
        parse_vos_folder(spec)


def test_sparse_annotations_give_their_annotated_frames(tmp_path):
    make_folder_set(str(tmp_path / "m"), videos=("a", "b"), n=6, dense=False)    # masks on frames 0 and 3 only
    videos = vos_folder_videos(VOSFolder("mose", str(tmp_path / "m"), 1))
    assert [v.name for v in videos] == ["a", "b"]
    assert [os.path.basename(f) for f in videos[0].frames] == ["00000.jpg", "00003.jpg"]
    with pytest.raises(InputError, match="no JPEGImages in .*: is --vos_datasets x:.* a VOS-layout folder"):
        vos_folder_videos(VOSFolder("x", str(tmp_path), 1))


def test_the_mix_adds_each_folder_weight_times(davis_root, tmp_path):
    make_folder_set(str(tmp_path / "m"), videos=("a", "b", "c"), n=6)
    base = ["--backbone_type", "vit_tiny", "--pretrained", "none", "--yv_root", "none", "--davis_root", str(davis_root),
            "--img_size", "32"]
    plain, plain_sizes = build_datasets(resolve_config(parse_args(base), "cpu").data, 32)
    mixed_data = resolve_config(parse_args(base + ["--vos_datasets", f"mose:{tmp_path / 'm'}:2"]), "cpu").data
    mixed, sizes = build_datasets(mixed_data, 32)
    assert sizes["mose_videos"] == 3 and len(mixed) == len(plain) + 2 * 3
    sample = mixed[(len(mixed) - 1, 7)]                  # the last item: a pair of the added folder
    assert sample["name"] in ("a", "b", "c") and sample["frames"].shape[-2:] == (32, 32)
