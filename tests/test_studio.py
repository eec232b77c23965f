"""The studio: the JSON API with FastAPI's test client (the whole flow, bad input, paths, a restart on
the same workspace). The token and the page in a real browser: tests/test_studio_page.py."""
import io
import os
import socket
import threading
import time
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from dataset.palette_io import read_label_png
from dataset.video_io import codec_name
from inference_core import SimVOSPredictor
from inference_core.memory import DEFAULT_MAX_KEYFRAMES
from model import build_model
from tests.conftest import ROOT, tiny_config, write_sidecar_checkpoint

pytest.importorskip("fastapi", reason="the studio needs FastAPI (requirements.txt)")
from fastapi.testclient import TestClient  # noqa: E402

from studio.app import create_app  # noqa: E402
from studio.jobs import JobRunner  # noqa: E402
from studio.store import Workspace, save_png_atomic  # noqa: E402

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def make_client(root, predictor, videos=None, max_upload_mb=64):
    workspace = Workspace(str(root), videos, max_upload_mb)
    app = create_app(workspace, JobRunner(predictor), TOKEN, {"demo_model": True, "published": False, "backbone": "vit_tiny"})
    return TestClient(app)


def png(labels) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(labels.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def wait(client, job, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = client.get(f"/api/jobs/{job}", headers=AUTH).json()
        if state["state"] in ("done", "failed", "cancelled"):
            return state
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def upload(client, path):
    with open(path, "rb") as f:
        return client.post("/api/sessions", files={"video": (os.path.basename(path), f, "video/mp4")}, headers=AUTH)


def test_the_whole_flow_and_a_restart_keeps_everything(tmp_path, predictor, clip):
    path, frames, labels = clip
    client = make_client(tmp_path / "ws", predictor)
    created = upload(client, path)
    assert created.status_code == 200
    session = created.json()
    assert {k: session[k] for k in ("frames", "width", "height")} == {"frames": 12, "width": 64, "height": 48}
    assert session["fps"] == pytest.approx(10, rel=1e-3)
    sid = session["id"]
    frame0 = np.asarray(Image.open(io.BytesIO(client.get(f"/api/sessions/{sid}/frames/00000.jpg", headers=AUTH).content)))
    assert frame0.shape == (48, 64, 3) and np.abs(frame0.astype(int) - frames[0]).mean() < 10
    assert client.get(f"/api/sessions/{sid}/masks/00003.png", headers=AUTH).status_code == 204  # no mask yet
    first = np.where(labels[0] > 0, labels[0], 0)
    assert client.put(f"/api/sessions/{sid}/masks/00000.png", content=png(first), headers=AUTH).json()["objects"] == [1, 2]
    job = client.post(f"/api/sessions/{sid}/propagate", json={"frame": 0, "direction": "forward"}, headers=AUTH).json()
    state = wait(client, job["job"])
    assert state["state"] == "done" and state["done"] == state["total"] == 11
    # The studio's masks equal a session of the video file propagated directly, with the same policy.
    def mask(i):
        return np.asarray(Image.open(io.BytesIO(client.get(f"/api/sessions/{sid}/masks/{i:05d}.png", headers=AUTH).content)))
    direct = predictor.open(str(path), memory="keyframes", max_keyframes=DEFAULT_MAX_KEYFRAMES)
    direct.add_mask(0, first)
    expected = {r.index: r.labels() for r in direct.propagate(0, "forward")}
    for i in range(1, 12):
        np.testing.assert_array_equal(mask(i), expected[i])
    # A correction on frame 6 (object 2 erased), propagated to the end: frame 6 stays annotated, the
    # later frames are those of the same session with the correction added.
    fixed = np.where(labels[6] == 1, 1, 0)
    client.put(f"/api/sessions/{sid}/masks/00006.png", content=png(fixed), headers=AUTH)
    state = wait(client, client.post(f"/api/sessions/{sid}/propagate", json={"frame": 6, "direction": "forward"},
                                     headers=AUTH).json()["job"])
    assert state["state"] == "done" and state["total"] == 5
    assert client.get(f"/api/sessions/{sid}", headers=AUTH).json()["annotated"] == [0, 6]
    direct.add_mask(6, fixed)
    for r in direct.propagate(6, "forward"):
        np.testing.assert_array_equal(mask(r.index), fixed if r.index == 6 else r.labels())
    # Both ways from frame 3 to the neighbouring annotations: frames 1-2 and 3-5 (0 and 6 are annotated).
    state = wait(client, client.post(f"/api/sessions/{sid}/propagate",
                                     json={"frame": 3, "direction": "both_ways", "until": "next"}, headers=AUTH).json()["job"])
    assert state["state"] == "done" and state["total"] == 5 and state["done"] == 5
    # Exports at the video's resolution.
    palette = client.get(f"/api/sessions/{sid}/export?format=palette", headers=AUTH)
    with zipfile.ZipFile(io.BytesIO(palette.content)) as z:
        names = sorted(z.namelist())
        assert names == [f"clip/{i:05d}.png" for i in range(12)]
        assert np.array_equal(np.asarray(Image.open(z.open("clip/00000.png"))), first)
    with zipfile.ZipFile(io.BytesIO(client.get(f"/api/sessions/{sid}/export?format=objects", headers=AUTH).content)) as z:
        assert {n.split("/")[1] for n in z.namelist()} == {"1", "2"}
    coco = client.get(f"/api/sessions/{sid}/export?format=coco", headers=AUTH).json()
    assert len(coco["images"]) == 12 and coco["info"]["width"] == 64 and {a["track_id"] for a in coco["annotations"]} == {1, 2}
    mp4 = client.get(f"/api/sessions/{sid}/export?format=mp4", headers=AUTH)
    (tmp_path / "o.mp4").write_bytes(mp4.content)
    assert mp4.headers["content-type"] == "video/mp4" and codec_name(str(tmp_path / "o.mp4")) == "h264"
    # A restart on the same workspace: the session is listed and its masks are there.
    again = make_client(tmp_path / "ws", predictor)
    listed = again.get("/api/sessions", headers=AUTH).json()["sessions"]
    assert [s["id"] for s in listed] == [sid] and listed[0]["annotated"] == [0, 6] and listed[0]["computed"] == 11
    assert listed[0]["video"] == "clip.mp4" and listed[0]["annotated_count"] == 2
    assert time.strftime("%Y-%m-%dT", time.gmtime()) in listed[0]["created"] and listed[0]["created"].endswith("Z")
    assert again.get(f"/api/sessions/{sid}/masks/00011.png", headers=AUTH).status_code == 200


def _finish(job, timeout=120):
    deadline = time.time() + timeout
    while job.state in ("queued", "running") and time.time() < deadline:
        time.sleep(0.02)
    assert job.state == "done", (job.state, job.error)
    return job


def test_a_correction_segments_only_the_new_frames_live_or_rebuilt(tmp_path, clip, monkeypatch):
    """One object annotated on frames 0, 4 and 8; a correction on 6 propagated to the next
    annotation computes frame 7 alone: one segmentation, with the session live and after a restart
    (rebuilt from the workspace by encoding its annotations). Live sessions stay bounded."""
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    predictor = SimVOSPredictor(model, "cpu")
    calls = []
    real = model.segment
    monkeypatch.setattr(model, "segment", lambda *a, **k: calls.append(1) or real(*a, **k))
    path, _, labels = clip
    workspace = Workspace(str(tmp_path / "ws"))
    session = workspace.create(str(path), "clip", owned=False)
    one = [np.where(labels[t] == 1, 1, 0).astype(np.uint8) for t in range(12)]
    for t in (0, 4, 8):
        save_png_atomic(session.path("masks", t), one[t])
    runner = JobRunner(predictor, live_sessions=1)
    _finish(runner.submit(session, 0, "forward", "end"))
    assert len(calls) == 9                                    # frames 1-3, 5-7, 9-11
    save_png_atomic(session.path("masks", 6), one[6])
    calls.clear()
    job = _finish(runner.submit(session, 6, "forward", "next"))
    assert (job.total, job.done, len(calls)) == (1, 1, 1)
    restarted = JobRunner(predictor, live_sessions=1)
    calls.clear()
    _finish(restarted.submit(session, 6, "forward", "next"))
    assert len(calls) == 1
    # The results equal a session propagated directly with the same annotations.
    direct = predictor.open(str(path), memory="keyframes", max_keyframes=DEFAULT_MAX_KEYFRAMES)
    for t in (0, 4, 6, 8):
        direct.add_mask(t, one[t])
    expected = next(r for r in direct.propagate(6, "forward", 7) if r.index == 7).labels()
    np.testing.assert_array_equal(read_label_png(session.path("results", 7)), expected)
    # A second studio session pushes the first out of a runner that keeps one live.
    other = workspace.create(str(path), "clip", owned=False)
    save_png_atomic(other.path("masks", 0), one[0])
    _finish(restarted.submit(other, 0, "forward", "next"))
    assert list(restarted.live.entries) == [other.id]
    # A deleted annotation is removed from the live session before the next job.
    os.remove(session.path("masks", 4))
    _finish(restarted.submit(session, 0, "forward", "next"))
    assert restarted.live.get(session).annotated_frames == [0, 6, 8]


def test_grabcut_keeps_the_strokes_it_is_given(tmp_path, predictor, clip):
    """Foreground strokes are in GrabCut's answer and background strokes are not (hard constraints),
    whatever the colours around them."""
    path, _, _ = clip
    client = make_client(tmp_path / "ws", predictor)
    sid = upload(client, path).json()["id"]

    def cut(**hints):
        response = client.post(f"/api/sessions/{sid}/grabcut", json={"frame": 0, "box": [4, 4, 56, 42], "radius": 2,
                                                                     **hints}, headers=AUTH)
        assert response.status_code == 200
        return np.asarray(Image.open(io.BytesIO(response.content)))
    plain = cut()
    assert plain.shape == (48, 64) and set(np.unique(plain)) <= {0, 255}
    assert not plain[:3].any() and not plain[:, :3].any()            # outside the box: background
    hinted = cut(foreground=[[10, 10], [11, 10]], background=[[30, 25]])
    assert hinted[10, 10] == 255 and hinted[10, 11] == 255 and hinted[25, 30] == 0


def test_bad_input_is_a_4xx_with_a_json_error(tmp_path, predictor, clip):
    path, frames, labels = clip
    client = make_client(tmp_path / "ws", predictor, max_upload_mb=1)
    (tmp_path / "notes.mp4").write_text("not a video")
    bad = upload(client, tmp_path / "notes.mp4")
    assert bad.status_code == 400 and "notes" in bad.json()["error"]
    (tmp_path / "big.mp4").write_bytes(b"\0" * (2 * 2**20 + 10))
    assert upload(client, tmp_path / "big.mp4").status_code == 413
    assert os.listdir(tmp_path / "ws/uploads") == [] and client.get("/api/sessions", headers=AUTH).json()["sessions"] == []
    sid = upload(client, path).json()["id"]
    wrong = client.put(f"/api/sessions/{sid}/masks/00000.png", content=png(np.ones((10, 10))), headers=AUTH)
    assert wrong.status_code == 400 and "mask is 10x10 but the video is 64x48" in wrong.json()["error"]
    junk = client.put(f"/api/sessions/{sid}/masks/00000.png", content=b"junk", headers=AUTH)
    assert junk.status_code == 400
    assert client.put(f"/api/sessions/{sid}/masks/00099.png", content=png(labels[0]), headers=AUTH).status_code == 404
    unmasked = client.post(f"/api/sessions/{sid}/propagate", json={"frame": 3}, headers=AUTH)
    assert unmasked.status_code == 400 and "no annotated frame" in unmasked.json()["error"]
    client.put(f"/api/sessions/{sid}/masks/00006.png", content=png(labels[6]), headers=AUTH)
    nothing = client.post(f"/api/sessions/{sid}/propagate", json={"frame": 3, "direction": "forward"}, headers=AUTH)
    assert nothing.status_code == 400 and "no annotated frame at or before frame 3" in nothing.json()["error"]
    client.put(f"/api/sessions/{sid}/masks/00000.png", content=png(labels[0]), headers=AUTH)
    old_both = client.post(f"/api/sessions/{sid}/propagate", json={"frame": 3, "direction": "both"}, headers=AUTH)
    assert old_both.status_code == 400 and "both_ways" in old_both.json()["error"]
    assert client.post(f"/api/sessions/{sid}/propagate", json={"frame": 0, "direction": "sideways"}, headers=AUTH).status_code == 400
    assert client.post(f"/api/sessions/{sid}/propagate", content=b"{", headers=AUTH).status_code == 400
    assert client.get(f"/api/sessions/{sid}/export?format=tar", headers=AUTH).status_code == 400
    small = client.post(f"/api/sessions/{sid}/grabcut", json={"frame": 0, "box": [1, 1, 2, 2]}, headers=AUTH)
    assert small.status_code == 400 and "too small" in small.json()["error"]
    # A cancelled job is reported as such.
    job = client.post(f"/api/sessions/{sid}/propagate", json={"frame": 0}, headers=AUTH).json()["job"]
    client.delete(f"/api/jobs/{job}", headers=AUTH)
    assert wait(client, job)["state"] in ("cancelled", "done")


def test_no_path_outside_the_workspace_and_videos_is_reached(tmp_path, predictor, clip):
    path, _, _ = clip
    videos = tmp_path / "videos"
    (videos / "sub").mkdir(parents=True)
    os.link(path, videos / "sub" / "clip.mp4")
    (tmp_path / "secret.mp4").write_bytes(path.read_bytes())
    client = make_client(tmp_path / "ws", predictor, videos=str(videos))
    assert client.get("/api/info", headers=AUTH).json()["videos"] == ["sub/clip.mp4"]
    for name in ("../secret.mp4", "/etc/passwd", "sub/../../secret.mp4", "sub/%2e%2e/x", "", "sub//clip.mp4"):
        response = client.post("/api/sessions", json={"video": name}, headers=AUTH)
        assert response.status_code in (400, 404), name
    os.symlink(tmp_path / "secret.mp4", videos / "link.mp4")
    assert client.post("/api/sessions", json={"video": "link.mp4"}, headers=AUTH).status_code == 404
    for sid in ("..", "../../etc", "ABCDEF123456", "0" * 13):
        assert client.get(f"/api/sessions/{sid}/masks/00000.png", headers=AUTH).status_code == 404
    ok = client.post("/api/sessions", json={"video": "sub/clip.mp4"}, headers=AUTH)
    assert ok.status_code == 200
    sid = ok.json()["id"]
    for name in ("..%2fmeta.json", "00000.jpg.png", "-1.png", "x.png"):
        assert client.get(f"/api/sessions/{sid}/masks/{name}", headers=AUTH).status_code == 404, name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_port_in_use_is_one_line_and_no_url(tmp_path):
    import subprocess
    import sys
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "studio", "--checkpoint", str(tmp_path / "none.pth"), "--port", str(port),
                               "--workspace", str(tmp_path / "ws")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "open http" not in proc.stdout
    assert proc.stderr.strip().splitlines() == [f"error: port {port} on 127.0.0.1 is in use (another studio?): pass --port with a free one"]


def test_links_out_of_the_videos_folder_are_not_listed(tmp_path, predictor, clip):
    path, _, _ = clip
    videos = tmp_path / "videos"
    videos.mkdir()
    os.link(path, videos / "mine.mp4")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(path.read_bytes())
    os.symlink(outside / "secret.mp4", videos / "link.mp4")
    os.symlink(outside, videos / "linked_folder")
    (videos / '<img src=x onerror=alert(1)>.mp4').write_bytes(path.read_bytes())
    client = make_client(tmp_path / "ws", predictor, videos=str(videos))
    assert client.get("/api/info", headers=AUTH).json()["videos"] == ["mine.mp4"]


def _blocking_runner(predictor, monkeypatch):
    """A runner whose jobs wait for ``release`` before they compute (to hold a queue)."""
    from studio.propagation import PropagationJob
    release, real = threading.Event(), PropagationJob.run

    def run(job, runner):
        release.wait(60)
        return real(job, runner)
    monkeypatch.setattr(PropagationJob, "run", run)
    return JobRunner(predictor), release


def test_a_queued_job_says_where_it_is_and_edits_under_a_job_are_refused(tmp_path, predictor, clip, monkeypatch):
    path, _, labels = clip
    workspace = Workspace(str(tmp_path / "ws"))
    runner, release = _blocking_runner(predictor, monkeypatch)
    client = TestClient(create_app(workspace, runner, TOKEN, {"demo_model": True, "published": False}))
    a, b = (upload(client, path).json()["id"] for _ in range(2))
    for sid in (a, b):
        assert client.put(f"/api/sessions/{sid}/masks/00000.png", content=png(labels[0]), headers=AUTH).status_code == 200
    first = client.post(f"/api/sessions/{a}/propagate", json={"frame": 0}, headers=AUTH).json()["job"]
    second = client.post(f"/api/sessions/{b}/propagate", json={"frame": 0}, headers=AUTH).json()["job"]
    time.sleep(0.3)
    queued = client.get(f"/api/jobs/{second}", headers=AUTH).json()
    assert queued["state"] == "queued" and queued["position"] == 1 and queued["waiting_for"]["session"] == a
    # Deleting or replacing the start annotation of a queued job: 409, nothing changes.
    gone = client.delete(f"/api/sessions/{b}/masks/00000.png", headers=AUTH)
    assert gone.status_code == 409 and second in gone.json()["error"]
    assert client.put(f"/api/sessions/{b}/masks/00000.png", content=png(labels[1]), headers=AUTH).status_code == 409
    # Deleted behind the studio's back: the job checks its inputs when it starts and fails, writing nothing.
    os.remove(workspace.session(b).path("masks", 0))
    release.set()
    assert wait(client, first)["state"] == "done"
    failed = wait(client, second)
    assert failed["state"] == "failed" and "no annotated frame" in failed["error"]
    assert workspace.session(b).computed() == []


def test_a_job_interrupted_by_a_restart_is_reported_with_the_frames_kept(tmp_path, predictor, clip):
    import json
    path, _, labels = clip
    client = make_client(tmp_path / "ws", predictor)
    sid = upload(client, path).json()["id"]
    client.put(f"/api/sessions/{sid}/masks/00000.png", content=png(labels[0]), headers=AUTH)
    job = client.post(f"/api/sessions/{sid}/propagate", json={"frame": 0}, headers=AUTH).json()["job"]
    assert wait(client, job)["state"] == "done"
    # As a kill -9 after 4 frames leaves it: the record says running, 4 results are newer than its start.
    record_path = tmp_path / "ws" / "jobs" / f"{job}.json"
    record = json.loads(record_path.read_text())
    record.update(state="running", done=4)
    record_path.write_text(json.dumps(record))
    results = tmp_path / "ws" / "sessions" / sid / "results"
    for i in range(5, 12):
        os.utime(results / f"{i:05d}.png", (record["started"] - 100, record["started"] - 100))
    again = make_client(tmp_path / "ws", predictor)
    state = again.get(f"/api/jobs/{job}", headers=AUTH).json()
    assert state["state"] == "interrupted" and state["done"] == 4 and "4 of 11 frames" in state["error"]


def test_concurrent_exports_are_each_complete(tmp_path, predictor, clip):
    from concurrent.futures import ThreadPoolExecutor
    from studio.exports import export
    path, _, labels = clip
    client = make_client(tmp_path / "ws", predictor)
    sid = upload(client, path).json()["id"]
    client.put(f"/api/sessions/{sid}/masks/00000.png", content=png(labels[0]), headers=AUTH)
    session = Workspace(str(tmp_path / "ws")).session(sid)

    def one(kind):
        handle, _ = export(session, kind)
        with handle:
            return kind, handle.read()
    with ThreadPoolExecutor(6) as pool:
        done = list(pool.map(one, ["palette", "objects", "palette", "coco", "palette", "objects"]))
    for kind, data in done:
        if kind == "coco":
            assert len(__import__("json").loads(data)["images"]) == 12
            continue
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            assert z.testzip() is None and len(z.namelist()) == (12 if kind == "palette" else 24)
    assert [f for f in os.listdir(session.root + "/exports") if f.startswith(".")] == []


def test_leftovers_of_a_killed_server_are_removed_at_start(tmp_path, predictor, clip):
    from tests.conftest import dead_pid
    path, _, _ = clip
    client = make_client(tmp_path / "ws", predictor)
    sid = upload(client, path).json()["id"]
    pid = dead_pid()
    root = tmp_path / "ws"
    left = [root / "uploads" / f".upload.{pid}-0123abcd.tmp.mp4", root / "sessions" / f".{sid[:-1]}0.{pid}-0123abcd.tmp",
            root / "sessions" / sid / "exports" / f".clip_palette.{pid}-0123abcd.tmp.zip",
            root / "sessions" / sid / "masks" / f".00003.{pid}-0123abcd.tmp.png"]
    for p in left:
        if p.suffix == ".tmp":
            p.mkdir()
            (p / "00000.jpg").write_bytes(b"x" * 1000)
        else:
            p.write_bytes(b"half")
    alive = root / "uploads" / f".upload.{os.getpid()}-0123abcd.tmp.mp4"   # a live writer's file stays
    alive.write_bytes(b"being written")
    Workspace(str(root))
    assert not any(p.exists() for p in left) and alive.exists()


def test_names_are_safe_and_bodies_are_bounded(tmp_path, predictor, clip):
    import struct
    import zlib
    path, _, labels = clip
    client = make_client(tmp_path / "ws", predictor, max_upload_mb=1)
    with open(path, "rb") as f:
        named = client.post("/api/sessions", files={"video": ("..", f, "video/mp4")}, headers=AUTH)
    assert named.status_code == 200 and named.json()["name"] == "video"
    sid = named.json()["id"]
    client.put(f"/api/sessions/{sid}/masks/00000.png", content=png(labels[0]), headers=AUTH)
    with zipfile.ZipFile(io.BytesIO(client.get(f"/api/sessions/{sid}/export?format=palette", headers=AUTH).content)) as z:
        assert all(n.startswith("video/") and ".." not in n for n in z.namelist())

    def chunks():  # a chunked body (no Content-Length) of 3 MB against a 1 MB limit
        yield b"--b\r\nContent-Disposition: form-data; name=\"video\"; filename=\"big.mp4\"\r\n\r\n"
        for _ in range(48):
            yield b"\0" * 2**16
    big = client.post("/api/sessions", content=chunks(), headers={**AUTH, "Content-Type": "multipart/form-data; boundary=b"})
    assert big.status_code == 413 and "max_upload_mb" in big.json()["error"]
    assert [f for f in os.listdir(tmp_path / "ws/uploads")] == []
    assert client.put(f"/api/sessions/{sid}/masks/00001.png", content=b"\0" * (33 * 2**20), headers=AUTH).status_code == 413
    assert client.post(f"/api/sessions/{sid}/propagate", content=b" " * (5 * 2**20),
                       headers={**AUTH, "Content-Type": "application/json"}).status_code == 413
    # A PNG whose header says 30000x30000: refused from the header, before any decoding.
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 1, 0, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10000)) + chunk(b"IEND", b"")
    start = time.time()
    refused = client.put(f"/api/sessions/{sid}/masks/00001.png", content=bomb, headers=AUTH)
    assert refused.status_code == 400 and "30000x30000" in refused.json()["error"] and time.time() - start < 2


@pytest.mark.parametrize("route, body", [
    ("/api/sessions", {"video": 5}), ("/api/sessions", [1, 2]), ("/api/sessions", {"video": ["a"]}),
    ("propagate", {"frame": 1e400}), ("propagate", {"frame": "3"}), ("propagate", {"frame": True}),
    ("propagate", {"frame": 0, "direction": 7}), ("propagate", {"frame": 1.5}),
    ("grabcut", {"frame": 0, "box": [0, 0, "Infinity", 10]}), ("grabcut", {"frame": 0, "box": [0, 0, 1e400, 10]}),
    ("grabcut", {"frame": 0, "box": [0, 0, 10 ** 30, 10]}), ("grabcut", {"frame": 0, "box": [4, 4, 40, 40], "foreground": [[1e9, 2]]}),
    ("grabcut", {"frame": 0, "box": [4, 4, 40, 40], "mask": "%%%"}), ("grabcut", {"frame": 0, "box": {"x": 1}}),
])
def test_every_json_field_is_checked(tmp_path, predictor, clip, route, body):
    path, _, labels = clip
    client = make_client(tmp_path / "ws", predictor)
    sid = upload(client, path).json()["id"]
    client.put(f"/api/sessions/{sid}/masks/00000.png", content=png(labels[0]), headers=AUTH)
    url = route if route.startswith("/") else f"/api/sessions/{sid}/{route}"
    raw = __import__("json").dumps(body).replace("1e+400", "1e400")
    response = client.post(url, content=raw.replace('"Infinity"', "Infinity"), headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code in (400, 404) and response.json()["error"], response.text


def test_limits_on_pixels_and_frames_and_an_unwritable_workspace(tmp_path, predictor, clip):
    path, _, labels = clip
    from util.errors import InputError
    small = TestClient(create_app(Workspace(str(tmp_path / "a"), max_pixels=1000), JobRunner(predictor), TOKEN, {}))
    refused = upload(small, path)
    assert refused.status_code == 400 and "--max_pixels" in refused.json()["error"] and "clip.mp4" in refused.json()["error"]
    short = TestClient(create_app(Workspace(str(tmp_path / "b"), max_frames=5), JobRunner(predictor), TOKEN, {}))
    refused = upload(short, path)
    assert refused.status_code == 400 and "--max_frames" in refused.json()["error"]
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(InputError, match="the workspace cannot be written"):
        Workspace(str(tmp_path / "file" / "ws"))
    client = make_client(tmp_path / "c", predictor)
    sid = upload(client, path).json()["id"]
    import shutil
    shutil.rmtree(tmp_path / "c" / "sessions" / sid / "masks")
    broken = client.put(f"/api/sessions/{sid}/masks/00000.png", content=png(labels[0]), headers=AUTH)
    assert broken.status_code == 503 and "cannot be used" in broken.json()["error"]


def test_grabcut_strokes_refine_the_current_mask(tmp_path, predictor, clip):
    """With the object's current mask, GrabCut starts from it: a − stroke inside removes that part
    and the rest of the mask stays, instead of starting again from the box."""
    import base64
    path, _, _ = clip
    client = make_client(tmp_path / "ws", predictor)
    sid = upload(client, path).json()["id"]
    current = np.zeros((48, 64), np.uint8)
    current[10:38, 10:50] = 255
    body = {"frame": 0, "box": [4, 4, 58, 44], "background": [[30, 24, 3]], "foreground": [[14, 14, 2]],
            "mask": base64.b64encode(png(current)).decode()}
    response = client.post(f"/api/sessions/{sid}/grabcut", json=body, headers=AUTH)
    assert response.status_code == 200
    got = np.asarray(Image.open(io.BytesIO(response.content))) > 0
    assert got[14, 14] and not got[24, 30]                          # the strokes are hard constraints
    assert not got[:4].any() and not got[:, :4].any()                # outside the box: background


@pytest.mark.slow
def test_finetune_from_the_studio_and_switch_the_model(tmp_path, clip):
    """Two annotated sessions, POST /api/finetune: a train_simvos.py --finetune process as a job
    with progress and the validation J&F; the model appears in /api/models and, once chosen,
    propagates the next job. Nothing is written outside the workspace."""
    from inference_core import build_predictor
    path, _, labels = clip
    checkpoint = str(tmp_path / "start.pth")
    config = write_sidecar_checkpoint(checkpoint)
    predictor = build_predictor(checkpoint, config, "cpu")
    workspace = Workspace(str(tmp_path / "ws"))
    client = TestClient(create_app(workspace, JobRunner(predictor, checkpoint=checkpoint), TOKEN, {"demo_model": False}))
    sids = [upload(client, path).json()["id"] for _ in range(2)]
    bad = client.post("/api/finetune", json={"sessions": sids, "minutes": 0.3}, headers=AUTH)
    assert bad.status_code == 400 and "fine-tuning needs at least 2" in bad.json()["error"]
    for sid in sids:
        for t in (0, 5, 10):
            client.put(f"/api/sessions/{sid}/masks/{t:05d}.png", content=png(labels[t]), headers=AUTH)
    assert client.post("/api/finetune", json={"sessions": sids, "minutes": "ten"}, headers=AUTH).status_code == 400
    started = client.post("/api/finetune", json={"sessions": sids, "minutes": 0.1}, headers=AUTH).json()
    state = wait(client, started["job"], timeout=300)
    assert state["state"] == "done", state
    assert state["kind"] == "finetune" and state["total"] > 0, state
    assert state["val_jf"] is not None and state["val_jf_before"] is not None, state
    models = client.get("/api/models", headers=AUTH).json()["models"]
    assert [m["name"] for m in models] == ["start", started["model"]] and models[0]["current"]
    assert models[1]["path"].startswith(str(tmp_path / "ws")) and models[1]["val_jf"] == state["val_jf"]
    assert client.post("/api/model", json={"name": "nope"}, headers=AUTH).status_code == 404
    assert client.post("/api/model", json={"name": started["model"]}, headers=AUTH).json()["model"] == started["model"]
    assert client.get("/api/models", headers=AUTH).json()["models"][1]["current"]
    job = client.post(f"/api/sessions/{sids[0]}/propagate", json={"frame": 0}, headers=AUTH).json()["job"]
    assert wait(client, job)["state"] == "done"
    direct = SimVOSPredictor.from_checkpoint(models[1]["path"], device="cpu").open(str(path), memory="keyframes", max_keyframes=DEFAULT_MAX_KEYFRAMES)
    for t in (0, 5, 10):
        direct.add_mask(t, labels[t])
    expected = {r.index: r.labels() for r in direct.propagate(0, "forward")}
    got = np.asarray(Image.open(io.BytesIO(client.get(f"/api/sessions/{sids[0]}/masks/00003.png", headers=AUTH).content)))
    np.testing.assert_array_equal(got, expected[3])
    assert sorted(os.listdir(tmp_path)) == ["start.json", "start.pth", "ws"]


# ---------------------------------------------------------------------- jobs, models, the typed API (issue 35)
FAKE_TRAINER = r'''
"""Speaks the trainer's side of util/run_events.py as train_simvos.py --finetune does, at a pace a test
sets: FAKE_ITERATIONS iterations of FAKE_SECONDS each; SIGTERM stops it (finished, "stopped")."""
import argparse, os, shutil, signal, sys, time
sys.path.insert(0, os.environ["REPOSITORY"])
from util.run_events import EventWriter, Finished, Planned, Progress, Validation
p = argparse.ArgumentParser()
for flag in ("--id", "--save_dir", "--events", "--load_network", "--minutes"):
    p.add_argument(flag)
args, _ = p.parse_known_args()
events = EventWriter(args.events)
iteration = 0
def stop(*_):
    events.emit(Finished(iteration, "stopped"))
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
total = int(os.environ.get("FAKE_ITERATIONS", "2"))
events.emit(Planned(total, 0.1))
events.emit(Validation(0, 10.0, True))
for iteration in range(1, total + 1):
    time.sleep(float(os.environ.get("FAKE_SECONDS", "0")))
    events.emit(Progress(iteration, total, 0.5))
folder = os.path.join(args.save_dir, args.id)
os.makedirs(folder, exist_ok=True)
shutil.copy(args.load_network, os.path.join(folder, "finetuned.pth"))
shutil.copy(os.path.splitext(args.load_network)[0] + ".json", os.path.join(folder, "finetuned.json"))
events.emit(Validation(total, 20.0, True))
events.emit(Finished(total, "done", os.path.join(folder, "finetuned.pth"), 20.0))
'''


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """(checkpoint with its sidecar, its config): vit_tiny as our training writes it."""
    path = str(tmp_path_factory.mktemp("tiny_checkpoint") / "start.pth")
    return path, write_sidecar_checkpoint(path)


@pytest.fixture
def fake_trainer(tmp_path, monkeypatch):
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    monkeypatch.setenv("REPOSITORY", ROOT)
    return (__import__("sys").executable, str(script))


def annotated_sessions(workspace, path, labels, count=2):
    sessions = []
    for _ in range(count):
        session = workspace.create(str(path), "clip", owned=False)
        for t in (0, 5, 10):
            save_png_atomic(session.path("masks", t), labels[t])
        sessions.append(session.id)
    return sessions


def finetune_client(tmp_path, tiny_checkpoint, trainer=None):
    """(client, workspace) of a studio that fine-tunes with ``trainer`` (default: train_simvos.py)."""
    from inference_core import build_predictor
    checkpoint, config = tiny_checkpoint
    workspace = Workspace(str(tmp_path / "ws"))
    runner = JobRunner(build_predictor(checkpoint, config, "cpu"), checkpoint=checkpoint)
    app = create_app(workspace, runner, TOKEN, {"demo_model": False}, **({"trainer": trainer} if trainer else {}))
    return TestClient(app), workspace


def wait_for(check, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_finetune_jobs_follow_the_event_stream_lock_their_sessions_and_queue_at_most_two(
        tmp_path, tiny_checkpoint, fake_trainer, clip, monkeypatch):
    path, _, labels = clip
    monkeypatch.setenv("FAKE_SECONDS", "0.3")
    monkeypatch.setenv("FAKE_ITERATIONS", "6")
    client, workspace = finetune_client(tmp_path, tiny_checkpoint, fake_trainer)
    sids = annotated_sessions(workspace, path, labels)
    plan = client.post("/api/finetune/plan", json={"sessions": sids, "minutes": 1}, headers=AUTH).json()
    assert plan["held_out"] == [max(sids)] and plan["trains_on"] == [min(sids)]
    first = client.post("/api/finetune", json={"sessions": sids, "minutes": 1}, headers=AUTH).json()
    assert first["held_out"] == [max(sids)]
    second = client.post("/api/finetune", json={"sessions": sids[:1], "minutes": 1}, headers=AUTH).json()
    third = client.post("/api/finetune", json={"sessions": sids[:1], "minutes": 1}, headers=AUTH)
    assert third.status_code == 429 and "at most 2" in third.json()["error"]
    for minutes in (0, 10**6, "ten"):
        assert client.post("/api/finetune", json={"sessions": sids, "minutes": minutes}, headers=AUTH).status_code == 400
    # An edit of a session a queued or running fine-tune reads: 409 naming the job.
    refused = client.put(f"/api/sessions/{sids[1]}/masks/00003.png", content=png(labels[3]), headers=AUTH)
    assert refused.status_code == 409 and first["job"] in refused.json()["error"]
    assert client.delete(f"/api/sessions/{sids[0]}/masks/00005.png", headers=AUTH).status_code == 409
    assert client.delete(f"/api/models/{first['model']}", headers=AUTH).status_code == 409
    running = wait_for(lambda: (s := client.get(f"/api/jobs/{first['job']}", headers=AUTH).json())["done"] >= 1 and s)
    assert running["state"] == "running" and running["total"] == 6 and running["val_jf_before"] == 10.0
    assert client.delete(f"/api/jobs/{second['job']}", headers=AUTH).json()["state"] == "cancelled"
    state = wait(client, first["job"])
    assert state["state"] == "done" and state["done"] == 6 and state["val_jf"] == 20.0, state
    models = {m["name"]: m for m in client.get("/api/models", headers=AUTH).json()["models"]}
    assert models[first["model"]]["usable"] and models[first["model"]]["size_bytes"] > 0
    assert client.put(f"/api/sessions/{sids[1]}/masks/00003.png", content=png(labels[3]), headers=AUTH).status_code == 200
    # A cancelled run is listed as such, not offered, and can be deleted.
    monkeypatch.setenv("FAKE_SECONDS", "5")
    cancelled = client.post("/api/finetune", json={"sessions": sids, "minutes": 1}, headers=AUTH).json()
    wait_for(lambda: client.get(f"/api/jobs/{cancelled['job']}", headers=AUTH).json()["state"] == "running")
    client.delete(f"/api/jobs/{cancelled['job']}", headers=AUTH)
    assert wait(client, cancelled["job"])["state"] == "cancelled"
    listed = {m["name"]: m for m in client.get("/api/models", headers=AUTH).json()["models"]}[cancelled["model"]]
    assert listed["state"] == "cancelled" and not listed["usable"] and listed["path"] is None
    refused = client.post("/api/model", json={"name": cancelled["model"]}, headers=AUTH)
    assert refused.status_code == 409 and "cancelled" in refused.json()["error"]
    assert client.delete(f"/api/models/{cancelled['model']}", headers=AUTH).status_code == 200
    assert not (tmp_path / "ws" / "models" / cancelled["model"]).exists()


@pytest.mark.slow
def test_a_trainer_data_error_reaches_the_job_naming_the_file(tmp_path, tiny_checkpoint, clip):
    """A mask file broken behind the studio's back: train_simvos.py's failed event names it, and the
    job's error is that line."""
    path, _, labels = clip
    client, workspace = finetune_client(tmp_path, tiny_checkpoint)
    sids = annotated_sessions(workspace, path, labels, 1)
    broken = workspace.session(sids[0]).path("masks", 5)
    with open(broken, "wb") as f:
        f.write(b"\x89PNG broken")
    job = client.post("/api/finetune", json={"sessions": sids, "minutes": 1}, headers=AUTH).json()
    state = wait(client, job["job"], timeout=120)
    assert state["state"] == "failed" and broken in state["error"] and "\n" not in state["error"], state
    assert not {m["name"]: m for m in client.get("/api/models", headers=AUTH).json()["models"]}[job["model"]]["usable"]


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" in f.read()     # a zombie waiting for a reaper has ended
    except FileNotFoundError:
        return True


def _processes_naming(text: str) -> list[int]:
    """Live (not zombie) processes whose command line contains ``text``: the trainer and its loader workers."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read() and not _gone(int(pid)):
                    found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_a_studio_killed_during_a_finetune_leaves_no_trainer_and_no_model(tmp_path, tiny_checkpoint, clip):
    """kill -9 of a real studio process while its fine-tune (train_simvos.py) runs: the trainer and its
    loader worker end with it (parent-death signal), and the studio started again reports the job
    interrupted and offers no model."""
    import signal
    import subprocess
    import sys
    import httpx
    path, _, labels = clip
    checkpoint, _ = tiny_checkpoint
    sids = annotated_sessions(Workspace(str(tmp_path / "ws")), path, labels)
    port = _free_port()
    server = f"""
import uvicorn
from inference_core import SimVOSPredictor
from studio.app import create_app
from studio.jobs import JobRunner
from studio.store import Workspace
predictor = SimVOSPredictor.from_checkpoint({checkpoint!r}, device="cpu")
app = create_app(Workspace({str(tmp_path / 'ws')!r}), JobRunner(predictor, checkpoint={checkpoint!r}), {TOKEN!r}, {{}})
uvicorn.run(app, host="127.0.0.1", port={port}, log_level="warning")
"""
    studio = subprocess.Popen([sys.executable, "-c", server], cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _reachable(base), timeout=90)
        job = httpx.post(f"{base}/api/finetune", json={"sessions": sids, "minutes": 1}, headers=AUTH).json()
        # Killed once the trainer has run an iteration (its progress came through the event stream).
        wait_for(lambda: httpx.get(f"{base}/api/jobs/{job['job']}", headers=AUTH).json()["done"] >= 1, timeout=120)
        assert _processes_naming(job["model"])
        studio.send_signal(signal.SIGKILL)
        studio.wait(10)
        wait_for(lambda: not _processes_naming(job["model"]), timeout=10)
    finally:
        studio.kill()
    client = make_client(tmp_path / "ws", SimVOSPredictor.from_checkpoint(checkpoint, device="cpu"))
    state = client.get(f"/api/jobs/{job['job']}", headers=AUTH).json()
    assert state["state"] == "interrupted" and "restart" in state["error"]
    listed = {m["name"]: m for m in client.get("/api/models", headers=AUTH).json()["models"]}
    assert listed[job["model"]]["state"] == "interrupted" and not listed[job["model"]]["usable"]
    assert client.post("/api/model", json={"name": job["model"]}, headers=AUTH).status_code == 409


def _reachable(base: str) -> bool:
    import httpx
    try:
        return httpx.get(f"{base}/api/info", headers=AUTH, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_finetune_left_running_by_a_stopped_studio_is_interrupted_and_its_model_not_offered(tmp_path, predictor,
                                                                                              tiny_checkpoint):
    """As a studio killed during a fine-tune leaves the workspace: a running record, a model folder
    whose weights the trainer had already written (its best validation so far)."""
    import json
    import shutil
    checkpoint, _ = tiny_checkpoint
    folder = tmp_path / "ws" / "models" / "finetuned-1"
    folder.mkdir(parents=True)
    shutil.copy(checkpoint, folder / "finetuned.pth")
    shutil.copy(checkpoint[:-4] + ".json", folder / "finetuned.json")
    (tmp_path / "ws" / "jobs").mkdir()
    record = {"job": "0123456789ab", "kind": "finetune", "state": "running", "done": 7, "total": 40, "model": "finetuned-1",
              "sessions": ["aaaaaaaaaaaa"], "started": time.time() - 60}
    (tmp_path / "ws" / "jobs" / "0123456789ab.json").write_text(json.dumps(record))
    client = make_client(tmp_path / "ws", predictor)
    state = client.get("/api/jobs/0123456789ab", headers=AUTH).json()
    assert state["state"] == "interrupted" and "after 7 iteration(s)" in state["error"]
    listed = {m["name"]: m for m in client.get("/api/models", headers=AUTH).json()["models"]}
    assert not listed["finetuned-1"]["usable"] and listed["finetuned-1"]["state"] == "interrupted"
    assert client.post("/api/model", json={"name": "finetuned-1"}, headers=AUTH).status_code == 409
    assert client.delete("/api/models/start", headers=AUTH).status_code == 400
    deleted = client.delete("/api/models/finetuned-1", headers=AUTH).json()
    assert deleted["freed_bytes"] == os.path.getsize(checkpoint) + os.path.getsize(checkpoint[:-4] + ".json")
    assert [m["name"] for m in client.get("/api/models", headers=AUTH).json()["models"]] == ["start"]


def test_switching_models_and_back_gives_the_first_masks_again(tmp_path, clip):
    """The start model is kept with the config the command line gave (``--variant simvos_bs``, here
    in a small width, and no sidecar to recover it from): propagate, switch to another model, switch
    back, the same masks bit for bit."""
    from inference_core import build_predictor
    from model import config_from_flags
    from model.variants import resolve_config, write_sidecar
    path, _, labels = clip
    torch.manual_seed(1)
    start_config = resolve_config("simvos_bs", {}, depth=5, embed_dim=192, num_heads=3, decoder_channels=(64, 32),
                                  num_bases_foreground=6, num_bases_background=5, train_img_size=64)
    start = str(tmp_path / "published_like.pth")          # no sidecar, as a published checkpoint
    torch.save(build_model(start_config).state_dict(), start)
    other_config = config_from_flags("vit_tiny", layer_index=0, train_img_size=64)
    other = tmp_path / "ws" / "models" / "mine" / "finetuned.pth"
    other.parent.mkdir(parents=True)
    torch.save(build_model(other_config).state_dict(), other)
    write_sidecar(str(other), other_config)
    workspace = Workspace(str(tmp_path / "ws"))
    runner = JobRunner(build_predictor(start, start_config, "cpu", size=-1), checkpoint=start)
    client = TestClient(create_app(workspace, runner, TOKEN, {}))
    sid = upload(client, path).json()["id"]
    client.put(f"/api/sessions/{sid}/masks/00000.png", content=png(labels[0]), headers=AUTH)

    def masks():
        job = client.post(f"/api/sessions/{sid}/propagate", json={"frame": 0}, headers=AUTH).json()["job"]
        assert wait(client, job)["state"] == "done"
        return [workspace.session(sid).label_map(i) for i in range(12)]
    first = masks()
    chosen = client.post("/api/model", json={"name": "mine"}, headers=AUTH).json()
    assert chosen["model"] == "mine" and client.get("/api/info", headers=AUTH).json()["model"] == "mine"
    masks()
    back = client.post("/api/model", json={"name": "start"}, headers=AUTH)
    assert back.status_code == 200 and back.json()["variant"] == "simvos_bs", back.text
    for got, expected in zip(masks(), first):
        np.testing.assert_array_equal(got, expected)


def test_broken_model_folders_are_a_4xx_naming_the_file(tmp_path, tiny_checkpoint, predictor):
    import json
    import shutil
    checkpoint, _ = tiny_checkpoint
    models = tmp_path / "ws" / "models"
    for name in ("nosidecar", "textlink", "badflag"):
        (models / name).mkdir(parents=True)
        shutil.copy(checkpoint, models / name / "finetuned.pth")
        shutil.copy(checkpoint[:-4] + ".json", models / name / "finetuned.json")
    os.remove(models / "nosidecar" / "finetuned.json")
    (tmp_path / "notes.txt").write_text("not weights")
    os.remove(models / "textlink" / "finetuned.pth")
    os.symlink(tmp_path / "notes.txt", models / "textlink" / "finetuned.pth")
    sidecar = json.loads((models / "badflag" / "finetuned.json").read_text())
    sidecar["model"]["layer_index"] = "x"
    (models / "badflag" / "finetuned.json").write_text(json.dumps(sidecar))
    client = make_client(tmp_path / "ws", predictor)
    for name, words in (("nosidecar", "finetuned.json: missing"), ("textlink", "finetuned.pth"),
                        ("badflag", '"layer_index" must be an integer')):
        response = client.post("/api/model", json={"name": name}, headers=AUTH)
        assert 400 <= response.status_code < 500 and response.headers["content-type"] == "application/json", response.text
        assert words in response.json()["error"] and name in response.json()["error"], response.json()


def test_an_mp4_export_of_a_frame_folder_with_its_own_names(tmp_path, predictor, clip):
    _, frames, labels = clip
    videos = tmp_path / "videos" / "shots"
    videos.mkdir(parents=True)
    for i, rgb in enumerate(frames):
        Image.fromarray(rgb).save(videos / f"frame_{i + 1:04d}.jpg")
    client = make_client(tmp_path / "ws", predictor, videos=str(tmp_path / "videos"))
    session = client.post("/api/sessions", json={"video": "shots"}, headers=AUTH).json()
    assert session["video"] == "shots" and session["frames"] == 12
    client.put(f"/api/sessions/{session['id']}/masks/00000.png", content=png(labels[0]), headers=AUTH)
    mp4 = client.get(f"/api/sessions/{session['id']}/export?format=mp4", headers=AUTH)
    assert mp4.status_code == 200, mp4.text
    (tmp_path / "o.mp4").write_bytes(mp4.content)
    assert codec_name(str(tmp_path / "o.mp4")) == "h264"
    # The source gone: the export says so (not "the workspace cannot be used").
    for f in videos.iterdir():
        f.unlink()
    videos.rmdir()
    missing = client.get(f"/api/sessions/{session['id']}/export?format=mp4", headers=AUTH)
    assert missing.status_code == 410 and "is missing" in missing.json()["error"]
    assert "workspace" not in missing.json()["error"]


def test_a_session_deleted_under_a_job_fails_it_and_leaves_no_record(tmp_path, predictor, clip, monkeypatch):
    import shutil
    path, _, labels = clip
    workspace = Workspace(str(tmp_path / "ws"))
    runner, release = _blocking_runner(predictor, monkeypatch)
    client = TestClient(create_app(workspace, runner, TOKEN, {}))
    sid = upload(client, path).json()["id"]
    client.put(f"/api/sessions/{sid}/masks/00000.png", content=png(labels[0]), headers=AUTH)
    job = client.post(f"/api/sessions/{sid}/propagate", json={"frame": 0}, headers=AUTH).json()["job"]
    shutil.rmtree(workspace.session(sid).root)
    release.set()
    state = wait(client, job)
    assert state["state"] == "failed" and "was deleted" in state["error"]
    assert not (tmp_path / "ws" / "jobs" / f"{job}.json").exists() and os.listdir(tmp_path / "ws" / "sessions") == []


def test_a_bug_or_a_file_removed_by_hand_is_a_json_answer(tmp_path, predictor, clip, monkeypatch):
    path, _, _ = clip
    client = make_client(tmp_path / "ws", predictor)
    client = TestClient(client.app, raise_server_exceptions=False)
    sid = upload(client, path).json()["id"]
    os.remove(tmp_path / "ws" / "sessions" / sid / "frames" / "00003.jpg")
    gone = client.get(f"/api/sessions/{sid}/frames/00003.jpg", headers=AUTH)
    assert gone.status_code == 404 and "00003.jpg: missing" in gone.json()["error"]
    from studio.store import StoredSession
    monkeypatch.setattr(StoredSession, "describe", lambda self: 1 / 0)     # a bug in a route
    bug = client.get(f"/api/sessions/{sid}", headers=AUTH)
    assert bug.status_code == 500 and bug.headers["content-type"] == "application/json"
    assert "ZeroDivisionError" in bug.json()["error"]


def test_object_ids_are_bounded(tmp_path, predictor, clip):
    path, _, _ = clip
    client = make_client(tmp_path / "ws", predictor)
    sid = upload(client, path).json()["id"]
    labels = np.zeros((48, 64), np.uint8)
    labels[:4, :4], labels[10:14, 10:14] = 65, 1
    from dataset.palette_io import write_label_png
    write_label_png(str(tmp_path / "indexed.png"), labels)           # an indexed PNG: ids as they are
    refused = client.put(f"/api/sessions/{sid}/masks/00000.png", content=(tmp_path / "indexed.png").read_bytes(),
                         headers=AUTH)
    assert refused.status_code == 400 and "object id 65" in refused.json()["error"]


def test_the_openapi_schema_is_behind_the_token_and_types_every_body(tmp_path, predictor):
    client = make_client(tmp_path / "ws", predictor)
    assert client.get("/openapi.json").status_code == 401
    schema = client.get("/openapi.json", headers=AUTH).json()
    with_body = [(path, method, operation) for path, item in schema["paths"].items()
                 for method, operation in item.items() if method in ("post", "put", "patch")]
    assert len(with_body) >= 7
    for path, method, operation in with_body:
        content = operation.get("requestBody", {}).get("content", {})
        assert content and all(c.get("schema") for c in content.values()), (method, path)
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if path.startswith("/api/"):
                assert "200" in operation["responses"], (method, path)
    info = client.get("/api/info", headers=AUTH).json()
    assert info["max_objects"] == 64 and info["directions"] == ["forward", "backward", "both_ways"]
    assert set(info["finished_job_states"]) < set(info["job_states"]) and info["finetune"]["max_queued"] == 2
