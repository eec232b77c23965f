"""Fine-tuning on one's own annotated videos: train_simvos.py --finetune, on the synthetic generator's
data (a family the start checkpoint never saw), sparse annotations, studio workspaces, --minutes,
exact resume and bad input."""
import json
import os
import random
import re
import time

import numpy as np
import pytest
from PIL import Image

from dataset.annotated import AnnotatedVideo, find_annotated_videos
from dataset.palette_io import write_label_png
from dataset.synthetic_rich import make_glyph_video
from dataset.vos_pairs import AnnotatedPairDataset
from tests.conftest import write_sidecar_checkpoint
from training.finetune import crop_size_for
from util.errors import InputError


def write_videos(root, count, every=1, seed=0, frames=12, size=(64, 96)):
    """Glyph videos (the generator's family that a start checkpoint here never saw), generic layout;
    a mask on every ``every``-th frame."""
    rng = np.random.default_rng(seed)
    for v in range(count):
        rgb, labels = make_glyph_video(rng, frames, *size, int(rng.integers(1, 3)))
        for t, (frame, label) in enumerate(zip(rgb, labels)):
            os.makedirs(root / "JPEGImages" / f"v{v}", exist_ok=True)
            os.makedirs(root / "Annotations" / f"v{v}", exist_ok=True)
            Image.fromarray(frame).save(root / "JPEGImages" / f"v{v}" / f"{t:05d}.jpg", quality=95)
            if t % every == 0:
                write_label_png(str(root / "Annotations" / f"v{v}" / f"{t:05d}.png"), label)
    return root


@pytest.fixture(scope="module")
def start_checkpoint(tmp_path_factory):
    """A checkpoint in our training's format (bare state_dict + sidecar), trained on nothing."""
    folder = tmp_path_factory.mktemp("start")
    path = str(folder / "start.pth")
    write_sidecar_checkpoint(path)
    return path


def test_pairs_come_from_annotated_frames_only(tmp_path):
    videos = find_annotated_videos([write_videos(tmp_path / "d", 2, every=4)])
    assert [v.annotated for v in videos] == [[0, 4, 8]] * 2
    dataset = AnnotatedPairDataset(videos, max_jump=4, size=32, static=0.3)
    rng = random.Random(0)
    pairs = [dataset.frames_of(videos[0], rng) for _ in range(200)]
    assert all(a in (0, 4, 8) and b in (0, 4, 8) and abs(a - b) <= 4 for a, b in pairs)
    assert any(a == b for a, b in pairs) and any(a != b for a, b in pairs)   # static pairs and real ones
    item = dataset[0, 7]
    assert item["frames"].shape == (2, 3, 32, 32) and item["masks"].shape == (2, 2, 32, 32)


def test_a_studio_workspace_gives_its_annotations_never_its_results(tmp_path):
    from studio.store import Workspace, save_png_atomic
    data = write_videos(tmp_path / "d", 1, every=1)
    workspace = Workspace(str(tmp_path / "ws"))
    session = workspace.create(str(data / "JPEGImages" / "v0"), "clip", owned=False)
    labels = np.asarray(Image.open(data / "Annotations" / "v0" / "00000.png"))
    for t in (0, 6):
        save_png_atomic(session.path("masks", t), labels)
    for t in (1, 2, 3):
        save_png_atomic(session.path("results", t), labels)
    (video,) = find_annotated_videos([str(tmp_path / "ws")])
    assert video.annotated == [0, 6] and len(video.frames) == 12 and session.id in video.name
    assert video.frames[0].endswith(os.path.join(session.id, "frames", "00000.jpg"))


@pytest.mark.parametrize("height, width, crop", [(240, 427, 192), (480, 854, 384), (1080, 1920, 384), (64, 96, 48),
                                                  (30, 40, 48)])
def test_crops_give_objects_the_scale_inference_sees(tmp_path, height, width, crop):
    """384-pixel crops for frames processed at 480 (the published pair), the same ratio below,
    multiples of the patch; the median video decides."""
    paths = []
    for i, (h, w) in enumerate([(height, width), (height, width), (2000, 3000)]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (w, h)).save(paths[-1])
    videos = [AnnotatedVideo(f"v{i}", [path], {0: path}) for i, path in enumerate(paths)]
    assert crop_size_for(videos[:1]) == crop_size_for(videos) == crop


@pytest.mark.parametrize("problem, message", [
    ("empty", "no videos in it"), ("no frames", "a video without frames"),
    ("size", "mask is 10x10 but its frame 00000.jpg is 96x64"), ("one mask", "1 annotated frame(s); fine-tuning needs at least 2"),
    ("layout", "neither a studio workspace"),
])
def test_bad_folders_are_one_clear_line(tmp_path, problem, message):
    root = tmp_path / "d"
    if problem == "empty":
        (root / "JPEGImages").mkdir(parents=True)
    elif problem == "layout":
        root.mkdir()
    else:
        write_videos(root, 1, every=1 if problem != "one mask" else 100)
        if problem == "no frames":
            (root / "JPEGImages" / "v9").mkdir()
        if problem == "size":
            write_label_png(str(root / "Annotations" / "v0" / "00000.png"), np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match=re.escape(message)):
        find_annotated_videos([str(root)])


def test_bad_input_on_the_command_line(tmp_path, start_checkpoint, capsys):
    import train_simvos
    from util.cli import run_cli

    def refused(data, checkpoint, *extra):
        """The script's exit status and stderr (its entry: run_cli(main))."""
        with pytest.raises(SystemExit) as stop:
            run_cli(lambda: train_simvos.main(finetune_argv(data, checkpoint, tmp_path / "s", "--iterations", "1", *extra)))
        return stop.value.code, capsys.readouterr().err
    data = write_videos(tmp_path / "d", 3, frames=4, size=(48, 64))
    code, err = refused([data], start_checkpoint, "--variant", "simvos_bs")
    assert code == 2 and "trained with other model flags" in err and "hint" in err
    code, err = refused([data], str(tmp_path / "none.pth"))
    assert code == 2 and "--load_network not found" in err
    code, err = refused([tmp_path / "nothing"], start_checkpoint)
    assert code == 2 and "folder not found" in err.strip().splitlines()[-1]


def finetune_argv(data, checkpoint, saves, *extra):
    return ["--id", "ft", "--finetune", *map(str, data), "--load_network", str(checkpoint), "--num_workers", "0",
            "--no_amp", "--device", "cpu", "--save_dir", str(saves), "--log_dir", str(saves / "runs"), *extra]


def test_the_events_stream_follows_a_finetune(tmp_path, start_checkpoint):
    """Planned first, the validation before and at every --val_every (best when it became the
    best), progress per logged iteration, each saved file, finished with the kept weights."""
    import train_simvos
    from util.run_events import EventReader, Finished, Planned, Progress, Saved, Validation
    data = write_videos(tmp_path / "d", 3, frames=6, size=(48, 64))
    events = str(tmp_path / "events.jsonl")
    train_simvos.main(finetune_argv([data], start_checkpoint, tmp_path / "s", "--iterations", "2", "--val_videos", "1",
                                    "--val_every", "1", "--log_every", "1", "--save_every", "100", "--events", events))
    got = EventReader(events).read()
    folder = tmp_path / "s" / "ft"
    assert got[0] == Planned(2, None) and isinstance(got[-1], Finished)
    assert [(e.iteration, e.total) for e in got if isinstance(e, Progress)] == [(1, 2), (2, 2)]
    validations = [e for e in got if isinstance(e, Validation)]
    assert [e.iteration for e in validations] == [0, 1, 2] and validations[0].best
    best = max(validations, key=lambda e: e.jf)
    assert best.best and all(e.best == (e.jf > max([v.jf for v in validations[:i]], default=-1))
                             for i, e in enumerate(validations))
    kept = [e for e in got if isinstance(e, Saved) and e.path == str(folder / "finetuned.pth")]
    assert len(kept) == sum(e.best for e in validations)
    assert got[-1] == Finished(2, "done", str(folder / "finetuned.pth"), best.jf)


def test_sigterm_stops_a_finetune_with_its_best_weights(tmp_path, start_checkpoint):
    """As the studio cancels a fine-tune: the state is saved, finished says stopped and gives the
    weights kept so far (the best validated), and the signal handlers before the run are back."""
    import signal
    import threading

    import train_simvos
    from util.run_events import EventReader, Finished, Progress, Validation
    data = write_videos(tmp_path / "d", 3, frames=4, size=(48, 64))
    events = str(tmp_path / "events.jsonl")

    def stop_once_training():
        reader, deadline = EventReader(events), time.time() + 120
        while not any(isinstance(e, Progress) for e in reader.read()) and time.time() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
    before = signal.getsignal(signal.SIGTERM)
    stopper = threading.Thread(target=stop_once_training, daemon=True)
    stopper.start()
    train_simvos.main(finetune_argv([data], start_checkpoint, tmp_path / "s", "--iterations", "100000", "--val_videos",
                                    "1", "--log_every", "1", "--events", events))
    stopper.join()
    assert signal.getsignal(signal.SIGTERM) is before
    got = EventReader(events).read()
    start = next(e for e in got if isinstance(e, Validation))
    end = got[-1]
    assert end == Finished(end.iteration, "stopped", str(tmp_path / "s" / "ft" / "finetuned.pth"), start.jf)
    assert end.iteration >= 1 and (tmp_path / "s" / "ft" / f"checkpoint_{end.iteration}.pth").is_file()


def test_a_refused_finetune_reports_failed(tmp_path, start_checkpoint):
    import train_simvos
    from util.run_events import EventReader, Failed
    data = write_videos(tmp_path / "d", 1, frames=4, size=(48, 64), every=100)
    events = str(tmp_path / "events.jsonl")
    with pytest.raises(InputError, match="1 annotated frame") as refused:
        train_simvos.main(finetune_argv([data], start_checkpoint, tmp_path / "s", "--iterations", "2", "--events", events))
    assert EventReader(events).read() == [Failed(str(refused.value), None)]
    missing = str(tmp_path / "none.pth")
    with pytest.raises(InputError, match="--load_network not found"):
        train_simvos.main(finetune_argv([data], missing, tmp_path / "s", "--events", events))
    assert EventReader(events).read()[-1].file == missing


def test_jpeg_masks_are_refused_naming_the_file(tmp_path, start_checkpoint):
    import train_simvos
    data = write_videos(tmp_path / "d", 2, frames=4, size=(48, 64))
    mask = data / "Annotations" / "v1" / "00002.png"
    Image.open(mask).convert("RGB").save(data / "Annotations" / "v1" / "00002.jpg")
    os.remove(mask)
    with pytest.raises(InputError, match=re.escape(f"{data / 'Annotations' / 'v1' / '00002.jpg'}: JPEG masks are refused")):
        train_simvos.main(finetune_argv([data], start_checkpoint, tmp_path / "s", "--iterations", "2"))
    assert not (tmp_path / "s").exists()


def test_a_mask_broken_under_a_run_is_one_line_naming_it(tmp_path, start_checkpoint):
    """Masks replaced by text while a data-loader worker reads them: the run stops with the file and
    the reason in one line and a failed event (not the worker's traceback), its iterations saved."""
    import threading

    import train_simvos
    from util.run_events import EventReader, Failed, Progress
    data = write_videos(tmp_path / "d", 2, frames=4, size=(48, 64))
    events = str(tmp_path / "events.jsonl")
    argv = finetune_argv([data], start_checkpoint, tmp_path / "s", "--iterations", "100000", "--log_every", "1",
                         "--events", events)
    argv[argv.index("--num_workers") + 1] = "1"

    def break_the_masks_once_training():
        reader, deadline = EventReader(events), time.time() + 120
        while not any(isinstance(e, Progress) for e in reader.read()) and time.time() < deadline:
            time.sleep(0.05)
        for mask in (data / "Annotations").glob("*/*.png"):
            mask.write_text("not an image any more")
    breaker = threading.Thread(target=break_the_masks_once_training, daemon=True)
    breaker.start()
    with pytest.raises(InputError) as stopped:
        train_simvos.main(argv)
    breaker.join()
    message = str(stopped.value)
    assert re.match(rf"{re.escape(str(data / 'Annotations'))}/v\d/\d+\.png: unreadable mask", message), message
    assert "\n" not in message and "Caught" not in message
    assert EventReader(events).read()[-1] == Failed(message, stopped.value.path)
    assert stopped.value.path.startswith(str(data / "Annotations")) and stopped.value.path.endswith(".png")
    at = int(re.search(r"stopped at iteration (\d+)", message).group(1))
    assert at >= 1 and (tmp_path / "s" / "ft" / f"checkpoint_{at}.pth").is_file()


def test_validation_keeps_the_best_weights(tmp_path, start_checkpoint, capsys):
    """Validated on 1 held-out video at iterations 0, 2 and 4: the weights kept score the best J&F of
    those, scored independently. (That fine-tuning improves held-out videos: benchmarks/finetune_synthetic.py.)"""
    import train_simvos
    from evaluation.own_videos import score_videos
    from inference_core import SimVOSPredictor
    data = write_videos(tmp_path / "d", 3, every=2, seed=3, frames=6, size=(48, 64))
    train_simvos.main(finetune_argv([data], start_checkpoint, tmp_path / "s", "--iterations", "4", "--val_videos", "1",
                                    "--val_every", "2", "--log_every", "2"))
    out = capsys.readouterr().out
    assert re.search(r"it 2/4 .*ETA", out) and "fine-tuned: validation J&F" in out
    validations = {int(it): float(jf) for jf, it in re.findall(r"validation J&F ([\d.]+) at iteration (\d+)", out)}
    assert sorted(validations) == [0, 2, 4]
    weights = tmp_path / "s" / "ft" / "finetuned.pth"
    assert weights.is_file() and (tmp_path / "s" / "ft" / "finetuned.json").is_file()
    held_out = find_annotated_videos([str(data)])[-1:]
    kept = score_videos(held_out, SimVOSPredictor.from_checkpoint(str(weights), device="cpu"))["J&F"]  # flags from its sidecar
    assert kept == pytest.approx(max(validations.values()), abs=0.006)


def simulated_seconds(done, elapsed, total, per_iteration, per_validation, at_end):
    """An independent walk through the rest of a run as the trainer makes it: iterations, a
    validation at each multiple of a quarter of the run (at least 1) before its end, the last save,
    one validation at the end."""
    every = max(1, total // 4)
    seconds = elapsed
    for it in range(done + 1, total + 1):
        seconds += per_iteration
        if it < total and it % every == 0:
            seconds += per_validation
    return seconds + at_end + per_validation


@pytest.mark.parametrize("budget, per_iteration, per_validation, at_end", [
    (600, 20.0, 104.0, 12.0),    # the 10-minute fine-tune of vit_base on a CPU: it used 5.2 minutes
    (600, 0.5, 30.0, 0.0), (60, 0.05, 2.0, 0.5), (1800, 3.0, 0.0, 0.0), (86400, 0.2, 100.0, 20.0)])
def test_a_minutes_budget_is_planned_to_be_used(budget, per_iteration, per_validation, at_end):
    from training.config import FinetuneSettings
    from training.finetune import PLAN_AFTER, PLAN_WARM, plan_iterations
    settings = FinetuneSettings(("d",), None, None, 1, None, budget / 60, 10)
    done = PLAN_WARM + PLAN_AFTER
    elapsed = per_validation + done * per_iteration          # the validation before, the iterations timed
    total = plan_iterations(done, elapsed, per_iteration, per_validation, budget, settings, at_end)
    planned = simulated_seconds(done, elapsed, total, per_iteration, per_validation, at_end)
    assert 0.9 * budget <= planned <= budget, (total, planned)
    assert simulated_seconds(done, elapsed, total + 1, per_iteration, per_validation, at_end) > budget


def test_a_budget_smaller_than_the_start_still_plans_one_more_iteration():
    from training.config import FinetuneSettings
    from training.finetune import plan_iterations
    settings = FinetuneSettings(("d",), None, None, 1, None, 1.0, 10)
    assert plan_iterations(7, 100.0, 5.0, 50.0, 60.0, settings) == 8


@pytest.mark.slow
def test_minutes_stop_in_time(tmp_path, start_checkpoint, capsys):
    """A 12-second budget with validation: planned from measured iterations and validations, ended
    within the budget (10% over at most: the step or validation under way), most of it used."""
    from util.run_events import EventReader, Finished, Planned, Validation
    data = write_videos(tmp_path / "d", 3, frames=6, size=(48, 64))
    events = str(tmp_path / "events.jsonl")
    import train_simvos
    train_simvos.main(finetune_argv([data], start_checkpoint, tmp_path / "s", "--minutes", "0.2", "--val_videos", "1",
                                    "--events", events))
    err = capsys.readouterr().err
    got = EventReader(events).read()
    assert isinstance(got[0], Validation) and got[0].iteration == 0
    # Planned after its first iterations, or (on a machine too busy to get that far) cut by the budget.
    planned = [e for e in got if isinstance(e, Planned)]
    assert isinstance(got[-1], Finished) and got[-1].reason in ("done", "budget")
    assert planned or got[-1].reason == "budget", err
    times = [json.loads(line)["time"] for line in open(events)]
    seconds = times[-1] - times[0]               # from the end of the validation before
    assert seconds <= 12 * 1.1, seconds
    assert seconds >= 12 * 0.6, seconds                # most of the budget (a loaded machine's margin)
    assert (tmp_path / "s" / "ft" / "finetuned.pth").is_file()


def test_an_interrupted_finetune_resumes_exactly(tmp_path, start_checkpoint, capsys):
    import train_simvos
    data = write_videos(tmp_path / "d", 3, every=3, frames=6, size=(48, 64))
    common = ["--iterations", "6", "--save_every", "3", "--seed", "5"]

    def run(saves, *extra) -> str:
        train_simvos.main(finetune_argv([data], start_checkpoint, saves, *common, *extra))
        return capsys.readouterr().out
    straight = run(tmp_path / "a")
    # As if the run had stopped after its state at iteration 3 was written.
    run(tmp_path / "b")
    for name in ("checkpoint_6.pth", "model_6.pth", "finetuned.pth"):
        os.remove(tmp_path / "b" / "ft" / name)
    resumed = run(tmp_path / "b", "--resume", "auto")
    assert "resumed from" in resumed and "at iteration 3" in resumed
    checksum = lambda out: re.search(r"weights checksum (\S+)", out).group(1)
    assert checksum(resumed) == checksum(straight)
