"""The studio: the JSON API with FastAPI's test client (the whole flow, bad input, tokens, paths,
a restart on the same workspace), and the page in a real browser (Playwright over Debian's Chromium)."""
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
from dataset.synthetic import make_video
from dataset.video_io import codec_name
from inference_core import SimVOSPredictor
from model import build_model
from tests.conftest import ROOT, tiny_config
from tests.test_own_videos import write_h264

pytest.importorskip("fastapi", reason="the studio needs FastAPI (requirements.txt)")
from fastapi.testclient import TestClient  # noqa: E402

from studio.app import create_app  # noqa: E402
from studio.jobs import JobRunner  # noqa: E402
from studio.store import Workspace, save_png_atomic  # noqa: E402

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return SimVOSPredictor(build_model(tiny_config()).eval(), "cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    frames, labels = make_video(np.random.default_rng(7), 12, 48, 64, 2)
    write_h264(folder / "clip.mp4", frames)
    return folder / "clip.mp4", frames, labels


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
    assert client.get(f"/api/sessions/{sid}/masks/00003.png", headers=AUTH).status_code == 404
    first = np.where(labels[0] > 0, labels[0], 0)
    assert client.put(f"/api/sessions/{sid}/masks/00000.png", content=png(first), headers=AUTH).json()["objects"] == [1, 2]
    job = client.post(f"/api/sessions/{sid}/propagate", json={"frame": 0, "direction": "forward"}, headers=AUTH).json()
    state = wait(client, job["job"])
    assert state["state"] == "done" and state["done"] == state["total"] == 11
    # The studio's masks equal a session of the video file propagated directly, with the same policy.
    def mask(i):
        return np.asarray(Image.open(io.BytesIO(client.get(f"/api/sessions/{sid}/masks/{i:05d}.png", headers=AUTH).content)))
    direct = predictor.open(str(path), memory="keyframes", max_keyframes=8)
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
    assert len(coco["annotations"]) == 12 * 2 and coco["width"] == 64
    mp4 = client.get(f"/api/sessions/{sid}/export?format=mp4", headers=AUTH)
    (tmp_path / "o.mp4").write_bytes(mp4.content)
    assert mp4.headers["content-type"] == "video/mp4" and codec_name(str(tmp_path / "o.mp4")) == "h264"
    # A restart on the same workspace: the session is listed and its masks are there.
    again = make_client(tmp_path / "ws", predictor)
    listed = again.get("/api/sessions", headers=AUTH).json()["sessions"]
    assert [s["id"] for s in listed] == [sid] and listed[0]["annotated"] == [0, 6] and listed[0]["computed"] == 11
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
    direct = predictor.open(str(path), memory="keyframes", max_keyframes=8)
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


def test_every_route_needs_the_token(tmp_path, predictor):
    client = make_client(tmp_path / "ws", predictor)
    for method, url in (("get", "/"), ("get", "/static/app.js"), ("get", "/api/sessions"), ("post", "/api/sessions"),
                        ("get", "/api/info"), ("get", "/api/jobs/abc"), ("delete", "/api/jobs/abc")):
        response = getattr(client, method)(url)
        assert response.status_code == 401 and "token" in response.json()["error"], url
    assert client.get("/api/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(f"/api/sessions?token={TOKEN}").status_code == 200
    assert client.get(f"/?token={TOKEN}").status_code == 200


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
def test_the_page_in_a_real_browser(tmp_path, predictor, clip, browser_page):
    """Open the page, upload a video, draw a GrabCut box and a brush stroke, save, propagate, wait for
    the end, scrub to the last frame, see its mask drawn, export the zip."""
    import uvicorn
    path, frames, labels = clip
    workspace = Workspace(str(tmp_path / "ws"))
    app = create_app(workspace, JobRunner(predictor), TOKEN, {"demo_model": True, "published": False, "backbone": "vit_tiny"})
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        page = browser_page
        page.goto(f"http://127.0.0.1:{port}/?token={TOKEN}")
        assert "demo model" in page.inner_text("#model-note")
        page.set_input_files("#upload", str(path))
        page.wait_for_selector("#main:not([hidden])")
        page.wait_for_function("document.querySelector('#frame-label').textContent.startsWith('frame 0')")
        canvas = page.locator("#canvas")
        box = canvas.bounding_box()
        sx, sy = box["width"] / 64, box["height"] / 48

        def drag(tool, start, end):
            """Press at ``start``, move to ``end``, release: video pixel coordinates."""
            page.check(f"input[value={tool}]")
            page.mouse.move(box["x"] + start[0] * sx, box["y"] + start[1] * sy)
            page.mouse.down()
            page.mouse.move(box["x"] + end[0] * sx, box["y"] + end[1] * sy, steps=5)
            page.mouse.up()
        drag("grabcut", (8, 8), (40, 40))
        page.wait_for_function("document.querySelector('#message').textContent.includes('GrabCut done')")
        page.evaluate("document.querySelector('#message').textContent = ''")
        drag("grab-fg", (12, 12), (16, 14))                 # a + stroke refines the same GrabCut
        page.wait_for_function("document.querySelector('#message').textContent.includes('GrabCut done')")
        drag("brush", (20, 20), (30, 24))
        page.click("#save")
        page.wait_for_function("document.querySelector('#message').textContent.includes('saved as an annotation')")
        page.click("#propagate")
        page.wait_for_function("document.querySelector('#message').textContent.includes('propagation done')", timeout=120000)
        page.screenshot(path=str(tmp_path / "studio.png"))
        if os.environ.get("STUDIO_SCREENSHOT"):
            page.screenshot(path=os.path.join(ROOT, "docs", "studio.png"))
        page.fill("#scrub", "11")
        page.dispatch_event("#scrub", "input")
        page.wait_for_function("document.querySelector('#frame-label').textContent.startsWith('frame 11')")
        drawn = page.evaluate("""() => { const c = document.querySelector('#canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > d[i + 1] + 60 && d[i] > d[i + 2] + 60) n++;
            return n; }""")
        saved = np.asarray(Image.open(tmp_path / "ws/sessions" / os.listdir(tmp_path / "ws/sessions")[0] / "results/00011.png"))
        assert (saved == 1).sum() > 0 and drawn > 0          # object 1 (red in the DAVIS palette) is drawn
        with page.expect_download() as download:
            page.click("#exports a:text('palette')")
        zipped = tmp_path / "palette.zip"
        download.value.save_as(str(zipped))
        with zipfile.ZipFile(zipped) as z:
            assert len(z.namelist()) == 12
        assert all(u.startswith(f"http://127.0.0.1:{port}/") or u.startswith("blob:") or u.startswith("data:")
                   for u in page.requested), [u for u in page.requested if "127.0.0.1" not in u]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
