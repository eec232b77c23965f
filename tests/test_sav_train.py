"""dataset/sav_train.py: SA-V training videos (mp4 + masklet RLEs) as a VOS-layout folder."""
import json
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from dataset.sav_train import main
from dataset.vos_pairs import VOSFolder, vos_folder_videos
from util.errors import InputError


def _mp4(path, frames):
    import av
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 24)
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 24)
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)


def _rle(mask):
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def test_annotated_frames_and_label_maps(tmp_path):
    h, w, n = 32, 48, 10
    rng = np.random.default_rng(0)
    _mp4(tmp_path / "sav_1.mp4", [rng.integers(0, 255, (h, w, 3), dtype=np.uint8) for _ in range(n)])
    yy, xx = np.mgrid[:h, :w]
    person = [(yy > 4) & (yy < 28) & (xx > 4 + k) & (xx < 30 + k) for k in range(3)]
    hand = [(yy > 10) & (yy < 20) & (xx > 10 + k) & (xx < 20 + k) if k else np.zeros((h, w), bool) for k in range(3)]
    masklets = [[_rle(person[k]), _rle(hand[k])] for k in range(3)]      # annotated frames 0, 4, 8
    (tmp_path / "sav_1_manual.json").write_text(json.dumps({"masklet": masklets}))
    main(["--sav_dir", str(tmp_path), "--output", str(tmp_path / "out")])
    assert sorted(p.name for p in (tmp_path / "out/JPEGImages/sav_1").iterdir()) == ["00000.jpg", "00004.jpg", "00008.jpg"]
    for k, stem in enumerate(("00000", "00004", "00008")):
        expected = np.where(hand[k], 2, np.where(person[k], 1, 0))        # the later masklet over the earlier
        np.testing.assert_array_equal(np.array(Image.open(tmp_path / "out/Annotations/sav_1" / f"{stem}.png")), expected)
    videos = vos_folder_videos(VOSFolder("sav", str(tmp_path / "out"), 1))
    assert [v.name for v in videos] == ["sav_1"] and len(videos[0].frames) == 3
    assert [p.name for p in (tmp_path / "out/JPEGImages").iterdir()] == ["sav_1"]     # nothing staged is left
    stamp = (tmp_path / "out/Annotations/sav_1/00004.png").stat().st_mtime_ns
    main(["--sav_dir", str(tmp_path), "--output", str(tmp_path / "out")])             # converted videos are skipped
    assert (tmp_path / "out/Annotations/sav_1/00004.png").stat().st_mtime_ns == stamp
    (tmp_path / "sav_2.mp4").write_bytes((tmp_path / "sav_1.mp4").read_bytes())
    with pytest.raises(InputError, match="sav_2_manual.json: annotation file of sav_2.mp4 not found"):
        main(["--sav_dir", str(tmp_path), "--output", str(tmp_path / "out")])
