"""Own videos as people make them: real H.264 files (rotation, variable frame rate), every mask kind,
--size, the whole-video plans, keyframe memory, the exports (a COCO file pycocotools loads), re-runs, and bad input."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import segment_video
from dataset.masks import read_user_mask
from dataset.palette_io import write_label_png
from dataset.synthetic import make_video
from dataset.video_io import VideoWriter, codec_name, probe_video, read_video
from inference_core import SimVOSPredictor
from inference_core.directions import choices
from model import build_model
from tests.conftest import tiny_config
from util.errors import InputError

FLAGS = ["--backbone_type", "vit_tiny", "--layer_index", "0", "--device", "cpu"]


def write_h264(path, frames, times=None, rotation=0):
    """An H.264 MP4 made with PyAV (the encoder of the tests is independent of our writer)."""
    import av
    from fractions import Fraction
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts, frame.time_base = round((times[i] if times else i / 10) * 1000), Fraction(1, 1000)
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode():
            out.mux(p)


def _blocks(h=48, w=64, n=4):
    """Frames with a bright top-left quadrant (orientation is visible through compression)."""
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), 40 + 10 * i, np.uint8)
        f[: h // 2, : w // 2] = 230
        frames.append(f)
    return frames


def test_rotation_metadata_is_applied_and_frames_are_counted_by_decoding(tmp_path):
    write_h264(tmp_path / "r.mp4", _blocks(), rotation=90)  # 90 degrees counter-clockwise to display
    info = probe_video(str(tmp_path / "r.mp4"))
    assert (info.frames, info.width, info.height, info.rotation) == (4, 48, 64, 90)
    frames = [f for _, f in read_video(info, range(4))]
    assert frames[0].shape == (64, 48, 3)
    # np.rot90 turns counter-clockwise: the bright top-left quadrant goes to the bottom-left.
    expected = np.rot90(_blocks()[0])
    assert np.abs(frames[0].astype(int) - expected).mean() < 8
    backwards = [i for i, _ in read_video(info, range(3, -1, -1))]
    assert backwards == [3, 2, 1, 0]


def test_variable_frame_rate_timestamps_are_kept_in_the_overlay(tmp_path):
    times = [0.0, 0.1, 0.15, 0.4, 0.5]
    write_h264(tmp_path / "vfr.mp4", _blocks(n=5), times=times)
    info = probe_video(str(tmp_path / "vfr.mp4"))
    np.testing.assert_allclose(info.times, times, atol=1e-3)
    with VideoWriter(str(tmp_path / "copy.mp4"), info.fps, 64, 48) as writer:
        for (i, frame), t in zip(read_video(info, range(5)), info.times):
            writer.write(frame, t)
    again = probe_video(str(tmp_path / "copy.mp4"))
    np.testing.assert_allclose(again.times, times, atol=2e-3)
    assert codec_name(str(tmp_path / "copy.mp4")) == "h264"


def _rgba_colours():
    img = np.zeros((20, 30, 3), np.uint8)
    img[2:8, 2:10] = (250, 10, 10)
    img[10:18, 15:25] = (10, 200, 30)
    return img


@pytest.mark.parametrize("kind", ["indexed", "grey255", "bilevel", "rgb", "rgb_palette"])
def test_every_mask_kind_is_read_as_object_ids(tmp_path, kind):
    square = np.zeros((20, 30), np.uint8)
    square[5:15, 5:12] = 1
    path = str(tmp_path / "m.png")
    if kind == "indexed":
        write_label_png(path, square * 3)
        expected, objects = square * 3, [3]
    elif kind == "grey255":
        Image.fromarray(square * 255, mode="L").save(path)
        expected, objects = square, [1]
    elif kind == "bilevel":
        Image.fromarray(square.astype(bool)).convert("1").save(path)
        expected, objects = square, [1]
    elif kind == "rgb":
        Image.fromarray(_rgba_colours()).save(path)
        colours = _rgba_colours()
        # ascending (R, G, B): the green object first
        expected = np.where((colours == (10, 200, 30)).all(-1), 1, np.where((colours == (250, 10, 10)).all(-1), 2, 0))
        objects = [1, 2]
    else:
        write_label_png(str(tmp_path / "p.png"), square * 2)
        Image.open(tmp_path / "p.png").convert("RGB").save(path)  # DAVIS colours keep their ids
        expected, objects = square * 2, [2]
    mask = read_user_mask(path)
    np.testing.assert_array_equal(mask.labels, expected)
    assert mask.objects == objects
    assert mask.describe(path).startswith("m.png: ")


def test_anti_aliased_and_jpeg_masks_are_refused(tmp_path):
    smooth = np.clip(np.add.outer(np.arange(40), np.arange(60)) * 3, 0, 255).astype(np.uint8)
    Image.fromarray(np.stack([smooth, 255 - smooth, smooth // 2], -1)).save(tmp_path / "aa.png")
    with pytest.raises(InputError, match="aa.png: RGB mask with .* colours: anti-aliased"):
        read_user_mask(str(tmp_path / "aa.png"))
    Image.fromarray(smooth).save(tmp_path / "grey.png")
    with pytest.raises(InputError, match="grey.png: not a label map \\(looks like a photo\\)"):
        read_user_mask(str(tmp_path / "grey.png"))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "m.jpg")
    with pytest.raises(InputError, match="m.jpg: JPEG masks are refused"):
        read_user_mask(str(tmp_path / "m.jpg"))


def test_a_greyscale_photo_is_not_a_label_map_and_real_masks_still_are(tmp_path):
    rng = np.random.default_rng(0)
    # A photo with 45 grey levels (fewer than MAX_OBJECTS), spread up to 225: once read as 45 objects.
    photo = (rng.integers(0, 46, (40, 60)) * 5).astype(np.uint8)
    assert len(np.unique(photo[photo > 0])) == 45
    Image.fromarray(photo, mode="L").save(tmp_path / "photo.png")
    with pytest.raises(InputError, match="photo.png: not a label map \\(looks like a photo\\): a greyscale image with 45 "
                                         "grey levels, 9.% of neighbouring pixels differ"):
        read_user_mask(str(tmp_path / "photo.png"))
    # A dark photo (every value a small number) is not flat regions.
    dark = rng.integers(0, 20, (40, 60)).astype(np.uint8)
    Image.fromarray(dark, mode="L").save(tmp_path / "dark.png")
    with pytest.raises(InputError, match="dark.png: not a label map \\(looks like a photo\\): .* of neighbouring pixels differ"):
        read_user_mask(str(tmp_path / "dark.png"))
    # Objects drawn in grey levels are refused with what a mask is.
    levels = np.zeros((40, 60), np.uint8)
    levels[5:20, 5:20], levels[25:35, 30:50] = 128, 255
    Image.fromarray(levels, mode="L").save(tmp_path / "levels.png")
    with pytest.raises(InputError, match="levels.png: not a label map: object id 128 is outside 1-64 .* one small id per object"):
        read_user_mask(str(tmp_path / "levels.png"))
    # A greyscale label map of ids 1-3, a 0/255 mask and a bilevel mask are read.
    labels = (levels > 0).astype(np.uint8) + (levels == 255)
    labels[30:38, 2:10] = 3
    Image.fromarray(labels, mode="L").save(tmp_path / "ids.png")
    mask = read_user_mask(str(tmp_path / "ids.png"))
    assert mask.kind == "greyscale label map" and mask.objects == [1, 2, 3]
    np.testing.assert_array_equal(mask.labels, labels)
    Image.fromarray((labels > 0).astype(np.uint8) * 255, mode="L").save(tmp_path / "white.png")
    np.testing.assert_array_equal(read_user_mask(str(tmp_path / "white.png")).labels, labels > 0)
    Image.fromarray(labels > 0).convert("1").save(tmp_path / "bilevel.png")
    np.testing.assert_array_equal(read_user_mask(str(tmp_path / "bilevel.png")).labels, labels > 0)


def _video(n=8, h=48, w=64, k=2, seed=3):
    return make_video(np.random.default_rng(seed), n, h, w, k)


def test_size_processes_smaller_and_answers_at_the_input_size():
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    frames, labels = _video(h=96, w=128)
    seen = []
    hook = model.patch_embed.register_forward_hook(lambda m, args, out: seen.append(tuple(args[0].shape[-2:])))
    results = list(SimVOSPredictor(model, "cpu", size=48).segment_video(frames, {0: labels[0]}))
    hook.remove()
    assert set(seen) == {(48, 64)}
    assert all(r.probs.shape[-2:] == (96, 128) for r in results)
    np.testing.assert_array_equal(results[0].labels(), labels[0])
    full = list(SimVOSPredictor(model, "cpu", size=-1).segment_video(frames[:2], {0: labels[0]}))
    assert full[1].probs.shape[-2:] == (96, 128)


def test_the_nearest_plan_takes_each_frame_from_the_nearest_annotation():
    """A test's own statement of the rule, against one forward and one backward run."""
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    frames, labels = _video(n=9)
    only1 = np.where(labels[1] == 1, 1, 0).astype(np.uint8)
    masks = {1: only1, 6: labels[6]}            # object 1 on frames 1 and 6, object 2 on frame 6 only
    predictor = SimVOSPredictor(model, "cpu")
    fwd = {r.index: r for r in predictor.segment_video(frames, masks, "forward")}
    bwd = {r.index: r for r in predictor.segment_video(frames, masks, "backward")}
    nearest = list(predictor.segment_video(frames, masks, "nearest"))
    assert sorted(r.index for r in nearest) == list(range(9))
    for r in nearest:
        t = r.index
        # object 1: nearest of frames 1 and 6 (ties forward); object 2: backward before 6, forward after
        pass1 = "f" if t >= 1 and (t >= 6 or t - 1 <= 6 - t) else "b"
        pass2 = "f" if t >= 6 else "b"
        if pass1 == pass2:
            expected = (fwd if pass1 == "f" else bwd)[t]
            assert r.object_ids == expected.object_ids
            torch.testing.assert_close(r.probs, expected.probs)
        else:
            assert r.object_ids == [1, 2]
            source = {1: fwd[t] if pass1 == "f" else bwd[t], 2: fwd[t] if pass2 == "f" else bwd[t]}
            p = torch.stack([source[o].probs[1 + source[o].object_ids.index(o)] for o in (1, 2)])
            expected = torch.cat([(1 - p.sum(0)).clamp(min=0)[None], p])
            torch.testing.assert_close(r.probs, expected / expected.sum(0), atol=2e-3, rtol=1e-3)
    assert choices({1: [1], 6: [1, 2]}, 9)[3] == {1: "f", 2: "b"}
    assert choices({1: [1], 6: [1, 2]}, 9)[4] == {1: "b", 2: "b"}


def test_keyframe_memory_keeps_every_annotation_as_a_reference():
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    frames, labels = _video(n=6, k=1)
    tokens = model.grid_size(torch.zeros(1, 3, 48, 64))[0] * model.grid_size(torch.zeros(1, 3, 48, 64))[1]
    for policy, refs in (("published", 1), ("keyframes", 2)):
        video = SimVOSPredictor(model, "cpu", memory=policy).open(frames)
        video.add_mask(0, labels[0])
        video.add_mask(2, labels[2])
        for result in video.propagate(0, "forward", 4):
            pass
        assert video.core.memory.reference_frames(1) == ([0, 2] if refs == 2 else [2])
        assert video.core.memory.read(1).shape[0] == (refs + 1) * tokens


def test_the_api_takes_what_people_pass_and_refuses_the_rest():
    model = build_model(tiny_config()).eval()
    frames, labels = _video(n=3)
    people = [Image.fromarray(frames[0]), frames[1].mean(-1).astype(np.uint8), frames[2]]   # PIL, greyscale
    video = SimVOSPredictor(model, "cpu").open(people)
    video.add_mask(0, Image.fromarray(labels[0], mode="L"))
    assert [r.index for r in video.propagate(0, "forward")] == [0, 1, 2]
    for bad, message in ((frames[2] / 255.0, "frame 2: expected uint8 pixels"),
                         (frames[2][..., :2], r"expected shape \[H, W, 3\]"),
                         (frames[2][:48, :32], "frame 2 is 32x48 but the video's frames are 64x48")):
        video = SimVOSPredictor(model, "cpu").open([frames[0], frames[1], bad])
        video.add_mask(0, labels[0])
        with pytest.raises(InputError, match=message):
            list(video.propagate(0, "forward"))
    with pytest.raises(InputError, match="integer object ids"):
        SimVOSPredictor(model, "cpu").open(frames).add_mask(2, labels[2].astype(np.float32))


def _segment(args):
    segment_video.main(args)


def _check_coco(path, name, file_names, palette, fps):
    """pycocotools loads the COCO file; its masks are the label PNGs of the same run, per object."""
    from pycocotools.coco import COCO
    coco = COCO(str(path))
    raw = json.loads(path.read_text())
    assert raw["info"]["video"] == name and raw["info"]["fps"] == pytest.approx(fps)
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["object"]
    assert sorted(coco.getImgIds()) == list(range(1, len(palette) + 1))
    objects = sorted({int(v) for labels in palette for v in np.unique(labels)} - {0})
    assert [t["id"] for t in raw["tracks"]] == objects
    for image_id in coco.getImgIds():
        image = coco.loadImgs(image_id)[0]
        t = image["frame_index"]
        assert image["file_name"] == file_names[t] and (image["height"], image["width"]) == palette[t].shape
        assert image["time"] == pytest.approx(t / fps, abs=1e-3)
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert all(isinstance(a["segmentation"]["counts"], str) and a["iscrowd"] == 0 for a in annotations)
        masks = {a["track_id"]: coco.annToMask(a) for a in annotations}
        for obj in objects:
            expected = palette[t] == obj
            np.testing.assert_array_equal(masks.get(obj, np.zeros_like(expected)), expected)
            if obj in masks:
                a = next(a for a in annotations if a["track_id"] == obj)
                ys, xs = np.nonzero(expected)
                assert a["area"] == expected.sum() and a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                                                    ys.max() - ys.min() + 1]


def test_segment_video_h264_every_export_and_reruns(tmp_path, checkpoint, capsys):
    frames, labels = _video(n=6)
    write_h264(tmp_path / "clip.mp4", frames)
    Image.fromarray(np.where(labels[0] > 0, 255, 0).astype(np.uint8), mode="L").save(tmp_path / "first.png")
    args = ["--checkpoint", str(checkpoint), "--input", str(tmp_path / "clip.mp4"), "--mask", str(tmp_path / "first.png"),
            "--output", str(tmp_path / "out"), "--save", "palette", "objects", "coco", "probs", *FLAGS]
    _segment(args)
    printed = capsys.readouterr().out
    assert "first.png: binary mask, 1 object, frame 0" in printed
    out = tmp_path / "out"
    pngs = sorted(os.listdir(out / "clip"))
    assert pngs == [f"{t:05d}.png" for t in range(6)]
    palette = [np.array(Image.open(out / "clip" / p)) for p in pngs]
    np.testing.assert_array_equal(palette[0], labels[0] > 0)
    assert sorted(os.listdir(out / "clip_objects")) == ["1"]
    for t, p in enumerate(pngs):
        np.testing.assert_array_equal(np.array(Image.open(out / "clip_objects/1" / p)) == 255, palette[t] == 1)
        saved = np.load(out / "clip_probs" / (p[:-4] + ".npz"))
        assert saved["probs"].dtype == np.float16 and list(saved["object_ids"]) == [1]
    _check_coco(out / "clip_coco.json", "clip", [f"clip/{t:05d}.jpg" for t in range(6)], palette, fps=10)
    assert codec_name(str(out / "clip_overlay.mp4")) == "h264"
    assert probe_video(str(out / "clip_overlay.mp4")).frames == 6
    assert not [f for f in os.listdir(out) if f.startswith(".")]
    stamp = os.path.getmtime(out / "clip/00003.png")
    _segment(args)
    assert "1 video(s) already complete" in capsys.readouterr().out
    assert os.path.getmtime(out / "clip/00003.png") == stamp
    _segment(args + ["--overwrite"])
    assert os.path.getmtime(out / "clip/00003.png") != stamp


def test_coco_export_of_a_frame_folder_loads_in_pycocotools(tmp_path, checkpoint):
    """Frames named by the user, two objects, the second absent from frame 2 on (a complete mask
    without it): no annotation where an object is absent, the frames' own file names."""
    frames, labels = _video(n=4)
    (tmp_path / "walk").mkdir()
    names = [f"frame_{t + 1:04d}.png" for t in range(4)]
    for t, name in enumerate(names):
        Image.fromarray(frames[t]).save(tmp_path / "walk" / name)
    (tmp_path / "masks").mkdir()
    write_label_png(str(tmp_path / "masks/frame_0001.png"), labels[0])
    write_label_png(str(tmp_path / "masks/frame_0003.png"), np.where(labels[2] == 1, 1, 0).astype(np.uint8))
    _segment(["--checkpoint", str(checkpoint), "--input", str(tmp_path / "walk"), "--masks_dir", str(tmp_path / "masks"),
              "--output", str(tmp_path / "out"), "--save", "coco", "--overlay", "none", *FLAGS])
    palette = [np.array(Image.open(tmp_path / "out/walk" / (n[:-4] + ".png"))) for n in names]
    assert set(np.unique(palette[0])) == {0, 1, 2} and 2 not in palette[2]
    _check_coco(tmp_path / "out/walk_coco.json", "walk", [f"walk/{n}" for n in names], palette, fps=24)


def test_segment_video_masks_dir_names_and_bad_inputs(tmp_path, checkpoint, capsys):
    frames, labels = _video(n=4)
    write_h264(tmp_path / "clip.mp4", frames)
    (tmp_path / "masks").mkdir()
    write_label_png(str(tmp_path / "masks/2.png"), labels[2])       # frame number without zeros is accepted
    base = ["--checkpoint", str(checkpoint), "--input", str(tmp_path / "clip.mp4"), "--overlay", "gif", *FLAGS]
    _segment(base + ["--masks_dir", str(tmp_path / "masks"), "--output", str(tmp_path / "o"), "--direction", "both"])
    printed = capsys.readouterr().out   # the plan's old name still works, with one note
    assert printed.count("--direction both is now called --direction nearest") == 1 and ", nearest, memory" in printed
    first = np.array(Image.open(tmp_path / "o/clip/00000.png"))
    assert set(np.unique(first)) - {0} and Image.open(tmp_path / "o/clip_overlay.gif").n_frames == 4
    write_label_png(str(tmp_path / "masks/first_frame.png"), labels[0])
    with pytest.raises(InputError, match="first_frame.png names no frame of .*looked for: 00000.png ... 00003.png"):
        _segment(base + ["--masks_dir", str(tmp_path / "masks"), "--output", str(tmp_path / "o2")])
    (tmp_path / "frames").mkdir()
    Image.fromarray(frames[0]).save(tmp_path / "frames/a.png")
    Image.fromarray(frames[1][:40]).save(tmp_path / "frames/b.png")
    write_label_png(str(tmp_path / "m0.png"), labels[0])
    with pytest.raises(InputError, match="b.png: frame 1 is 64x40 but the video's frames are 64x48"):
        _segment(["--checkpoint", str(checkpoint), "--input", str(tmp_path / "frames"), "--mask", str(tmp_path / "m0.png"),
                  "--output", str(tmp_path / "o3"), *FLAGS])
    assert not os.path.exists(tmp_path / "o3/frames")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty.mp4: empty file, not a video"):
        _segment(base + ["--mask", str(tmp_path / "m0.png"), "--input", str(tmp_path / "empty.mp4"), "--output", str(tmp_path / "o4")])


def test_a_truncated_video_keeps_its_decodable_frames(tmp_path, checkpoint, capsys):
    """An MKV cut short (a recording that stopped) decodes up to the cut: those frames are used, and
    the cut is reported; an MP4 that lost its index at the end is one clear line."""
    frames, labels = _video(n=30)
    write_h264(tmp_path / "clip.mkv", frames)
    data = (tmp_path / "clip.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) // 2])
    write_label_png(str(tmp_path / "m0.png"), labels[0])
    info = probe_video(str(tmp_path / "cut.mkv"))
    assert 0 < info.frames < 30
    _segment(["--checkpoint", str(checkpoint), "--input", str(tmp_path / "cut.mkv"), "--mask", str(tmp_path / "m0.png"),
              "--output", str(tmp_path / "o"), "--overlay", "none", *FLAGS])
    assert len(os.listdir(tmp_path / "o/cut")) == info.frames
    write_h264(tmp_path / "clip.mp4", frames)
    data = (tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.mp4: .*incomplete") as info:
        probe_video(str(tmp_path / "cut.mp4"))
    assert "\n" not in str(info.value)


def test_frames_as_displayed_exif_cmyk_16bit(tmp_path):
    from dataset.palette_io import read_rgb
    rgb = _blocks(n=1)[0]
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    img.save(tmp_path / "e.jpg", exif=exif, quality=95)
    shown = read_rgb(str(tmp_path / "e.jpg"))
    assert shown.shape == (64, 48, 3)
    assert np.abs(shown.astype(int) - np.rot90(rgb, k=-1)).mean() < 8
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    assert np.abs(read_rgb(str(tmp_path / "c.jpg")).astype(int) - rgb).mean() < 12
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(read_rgb(str(tmp_path / "g16.png"))[..., 0], rgb[..., 0])


def test_dataset_masks_read_bilevel_pngs_as_zero_one(tmp_path):
    """A bilevel (mode '1') PNG is 0/1 labels in the datasets' reader too (it used to become 255, void)."""
    from dataset.palette_io import read_label_png
    square = np.zeros((10, 12), bool)
    square[2:6, 3:9] = True
    Image.fromarray(square).convert("1").save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    np.testing.assert_array_equal(read_label_png(str(tmp_path / "b.png")), square.astype(np.uint8))


def test_bad_input_to_segment_video_is_one_line_and_leaves_no_output_folder(tmp_path, checkpoint):
    frames, labels = _video(n=3)
    (tmp_path / "clip").mkdir()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / "clip" / f"{t:03d}.png")
    write_label_png(str(tmp_path / "m0.png"), labels[0])
    photo = (np.random.default_rng(0).integers(0, 46, labels[0].shape) * 5).astype(np.uint8)
    Image.fromarray(photo, mode="L").save(tmp_path / "photo.png")
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (tmp_path / "taken").write_text("a file where the output folder would go\n")
    base = ["--input", str(tmp_path / "clip"), *FLAGS]
    good = ["--checkpoint", str(checkpoint), "--mask", str(tmp_path / "m0.png")]
    cases = [
        (["--checkpoint", str(checkpoint), "--mask", str(tmp_path / "photo.png")], "out/a",
         "photo.png: not a label map \\(looks like a photo\\)"),
        (["--checkpoint", str(tmp_path / "passwd"), "--mask", str(tmp_path / "m0.png")], "out/b",
         "passwd: this is a text file, not a PyTorch checkpoint"),
        (good + ["--size", "0"], "out/c", "--size must be a positive number of pixels .* or -1 .*, got 0"),
        (good + ["--size", "-5"], "out/d", "--size must be a positive number"),
        (good, "taken", "taken: --output is a file, not a folder"),
        (good, "taken/sub", "taken/sub: --output cannot be made"),
    ]
    for flags, output, message in cases:
        with pytest.raises(InputError, match=message) as info:
            _segment(base + flags + ["--output", str(tmp_path / output)])
        assert "\n" not in str(info.value)
        assert not os.path.exists(tmp_path / "out"), output   # not even the parent made for it
    assert (tmp_path / "taken").read_text() == "a file where the output folder would go\n"
    # A video of one pixel is segmented like any other.
    (tmp_path / "dot").mkdir()
    for t in range(2):
        Image.fromarray(np.full((1, 1, 3), 200, np.uint8)).save(tmp_path / "dot" / f"{t}.png")
    Image.fromarray(np.full((1, 1), 255, np.uint8), mode="L").save(tmp_path / "dot.png")
    _segment(["--checkpoint", str(checkpoint), "--input", str(tmp_path / "dot"), "--mask", str(tmp_path / "dot.png"),
              "--output", str(tmp_path / "dots"), "--overlay", "none", *FLAGS])
    written = [np.array(Image.open(tmp_path / "dots/dot" / f"{t}.png")) for t in range(2)]
    assert [w.shape for w in written] == [(1, 1), (1, 1)] and written[0].tolist() == [[1]]


def test_a_text_file_as_checkpoint_exits_with_one_line_and_no_traceback(tmp_path):
    import subprocess
    import sys
    (tmp_path / "notes.pth").write_text("these are my notes, not weights\n")
    (tmp_path / "frames").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "frames/0.png")
    Image.fromarray(np.full((8, 8), 255, np.uint8), mode="L").save(tmp_path / "m.png")
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "segment_video.py")
    done = subprocess.run([sys.executable, script, "--checkpoint", str(tmp_path / "notes.pth"), "--input", str(tmp_path / "frames"),
                           "--mask", str(tmp_path / "m.png"), "--output", str(tmp_path / "out"), *FLAGS],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'notes.pth'}: this is a text file, not a PyTorch checkpoint (.pth)"
    assert not os.path.exists(tmp_path / "out")
