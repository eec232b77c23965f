"""The studio's page and its token: which requests need the token and how the page carries it
(FastAPI's test client), the token's file and length, and the page in a real browser (Playwright over
Debian's Chromium): the whole annotation flow, two studios in one browser, a page of another port."""
import http.server
import os
import socket
import threading
import time
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, write_sidecar_checkpoint
from util.errors import InputError

pytest.importorskip("fastapi", reason="the studio needs FastAPI (requirements.txt)")
from fastapi.testclient import TestClient  # noqa: E402

from studio import auth  # noqa: E402
from studio.app import create_app  # noqa: E402
from studio.jobs import JobRunner  # noqa: E402
from studio.store import Workspace  # noqa: E402

TOKEN = "page-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
INFO = {"demo_model": True, "published": False, "backbone": "vit_tiny"}


def make_app(root, predictor, token=TOKEN):
    return create_app(Workspace(str(root)), JobRunner(predictor), token, INFO)


# ---------------------------------------------------------------------- the token on the server
def test_the_page_is_public_and_everything_else_needs_the_bearer_header(tmp_path, predictor):
    client = TestClient(make_app(tmp_path / "ws", predictor))
    static = sorted(os.listdir(os.path.join(ROOT, "studio", "static")))
    assert "main.js" in static and "api.js" in static
    for url in ("/", f"/?token={TOKEN}", *(f"/static/{name}" for name in static)):
        response = client.get(url)
        assert response.status_code == 200 and "set-cookie" not in response.headers, url
        assert "default-src 'self'" in response.headers["content-security-policy"]
    assert client.get("/static/auth.py").status_code == 404 and client.get("/static/..%2fauth.py").status_code == 404
    assert "<script>" not in client.get("/").text                         # no inline script for the CSP to allow
    for method, url in (("get", "/api/sessions"), ("post", "/api/sessions"), ("get", "/api/info"), ("get", "/openapi.json"),
                        ("get", "/api/jobs/abc"), ("delete", "/api/jobs/abc"), ("get", "/api/models")):
        response = getattr(client, method)(url)
        assert response.status_code == 401 and "open the URL the studio printed" in response.json()["error"], url
        for header in ("content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options"):
            assert header in response.headers
    # Only the header counts: not the query string, not a cookie, not another scheme, not a wrong token.
    assert client.get(f"/api/sessions?token={TOKEN}").status_code == 401
    client.cookies.set("simvos_studio_token", TOKEN)
    assert client.get("/api/sessions").status_code == 401
    client.cookies.clear()
    assert client.get("/api/sessions", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert client.get("/api/sessions", headers={"Authorization": f"Bearer {TOKEN[:-1]}x"}).status_code == 401
    assert client.get("/api/sessions", headers={"Authorization": "Bearer "}).status_code == 401
    answer = client.get("/api/sessions", headers=AUTH)
    assert answer.status_code == 200 and "set-cookie" not in answer.headers
    # No cookie needed means no cross-site forgery to guard: a change with the header from any Origin is taken.
    assert client.post("/api/sessions", json={"video": "x"}, headers={**AUTH, "Origin": "http://evil.example"}).status_code != 401


def test_the_token_comes_from_the_flag_the_environment_or_stays_with_the_workspace(tmp_path, monkeypatch):
    monkeypatch.delenv(auth.ENVIRONMENT, raising=False)
    first = auth.resolve_token(None, str(tmp_path))
    assert len(first.value) >= auth.MIN_LENGTH and first.source == str(tmp_path / "token") and first.warning is None
    assert os.stat(tmp_path / "token").st_mode & 0o777 == 0o600
    assert auth.resolve_token(None, str(tmp_path)).value == first.value   # a restart keeps open tabs working
    assert auth.resolve_token("given-on-the-command-line", str(tmp_path)).value == "given-on-the-command-line"
    monkeypatch.setenv(auth.ENVIRONMENT, "from-the-environment-0123")
    assert auth.resolve_token(None, str(tmp_path))[:2] == ("from-the-environment-0123", f"${auth.ENVIRONMENT}")


def test_a_token_file_others_can_read_is_made_private_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.delenv(auth.ENVIRONMENT, raising=False)
    path = tmp_path / "token"
    path.write_text("kept-token-of-twenty-chars\n")
    os.chmod(path, 0o644)
    token = auth.resolve_token(None, str(tmp_path))
    assert token.value == "kept-token-of-twenty-chars"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert str(path) in token.warning and "0644" in token.warning and "\n" not in token.warning
    assert auth.resolve_token(None, str(tmp_path)).warning is None         # fixed once, quiet afterwards


def test_a_short_token_is_refused_with_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv(auth.ENVIRONMENT, raising=False)
    with pytest.raises(InputError, match=r"^--token: the token has 5 characters, at least 16"):
        auth.resolve_token("short", str(tmp_path))
    monkeypatch.setenv(auth.ENVIRONMENT, "x")
    with pytest.raises(InputError, match=rf"^\${auth.ENVIRONMENT}: the token has 1 characters"):
        auth.resolve_token(None, str(tmp_path))
    monkeypatch.delenv(auth.ENVIRONMENT)
    (tmp_path / "token").write_text("abc\n")
    os.chmod(tmp_path / "token", 0o600)
    with pytest.raises(InputError) as refused:
        auth.resolve_token(None, str(tmp_path))
    assert str(refused.value).startswith(f"{tmp_path / 'token'}: the token has 3 characters") and "\n" not in str(refused.value)
    # Not a token at all: binary, a FIFO (not waited on), a link: one line each.
    (tmp_path / "token").write_bytes(b"\xff\xfe" * 20)
    with pytest.raises(InputError, match="the token file is not text"):
        auth.resolve_token(None, str(tmp_path))
    os.remove(tmp_path / "token")
    os.mkfifo(tmp_path / "token")
    with pytest.raises(InputError, match="not a regular file"):
        auth.resolve_token(None, str(tmp_path))
    os.remove(tmp_path / "token")
    (tmp_path / "elsewhere").write_text("a-token-kept-somewhere-else\n")
    os.symlink(tmp_path / "elsewhere", tmp_path / "token")
    with pytest.raises(InputError, match="the token file cannot be read"):
        auth.resolve_token(None, str(tmp_path))
    assert not os.path.exists(tmp_path / "other" / "token")


@pytest.mark.slow
def test_the_studio_command_refuses_a_short_token_before_loading_anything(tmp_path):
    import subprocess
    import sys
    checkpoint = tmp_path / "never_loaded.pth"
    checkpoint.write_bytes(b"")
    env = {**os.environ, auth.ENVIRONMENT: "1"}
    proc = subprocess.run([sys.executable, "-m", "studio", "--checkpoint", str(checkpoint), "--backbone_type", "vit_tiny",
                           "--port", "0", "--workspace", str(tmp_path / "ws")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode != 0 and "open http" not in proc.stdout
    assert proc.stderr.strip().splitlines() == [f"error: ${auth.ENVIRONMENT}: the token has 1 characters, at least 16 are "
                                                "needed (leave it out for a random one)"]


# ---------------------------------------------------------------------- the page in a real browser
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app):
    """The app on a free loopback port, in a thread; -> its base URL."""
    import uvicorn
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def dropping_the_first_event_stream(app, streams: list):
    """``app`` as an ASGI app whose first job event stream breaks before its first message (as when
    the network or the studio drops it); the paths of the event streams asked for go to ``streams``."""
    async def wrapped(scope, receive, send):
        if scope["type"] == "http" and scope["path"].endswith("/events"):
            streams.append(scope["path"])
            if len(streams) == 1:
                await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
                await send({"type": "http.response.body", "body": b"", "more_body": True})
                raise ConnectionResetError("the test drops this stream")
        await app(scope, receive, send)
    return wrapped


def _until(page, script, timeout=30.0):
    """Polls ``script`` (a JavaScript function) until it returns true: the page's CSP forbids the
    eval that page.wait_for_function uses, and it stays on in these tests."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.evaluate(script):
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {script}; message: {page.inner_text('#message')!r}")


def _message_has(page, text, timeout=30.0):
    _until(page, f"() => document.querySelector('#message').textContent.includes({text!r})", timeout)


def _frame_is(page, prefix):
    _until(page, f"() => document.querySelector('#frame-label').textContent.startsWith({prefix!r})")


def _scrub(page, frame):
    page.fill("#scrub", str(frame))
    page.dispatch_event("#scrub", "input")


def _drag(page, tool, start, end, size=(64, 48)):
    """Press at ``start``, move to ``end``, release (video pixel coordinates) with ``tool``."""
    box = page.locator("#canvas").bounding_box()
    sx, sy = box["width"] / size[0], box["height"] / size[1]
    page.check(f"input[value={tool}]")
    page.mouse.move(box["x"] + start[0] * sx, box["y"] + start[1] * sy)
    page.mouse.down()
    page.mouse.move(box["x"] + end[0] * sx, box["y"] + end[1] * sy, steps=5)
    page.mouse.up()


def _no_cookie_anywhere(page, responses):
    assert page.context.cookies() == []
    assert [r.url for r in responses if r.header_value("set-cookie") is not None] == []


def test_the_page_in_a_real_browser(tmp_path, predictor, clip, browser_page):
    """Open the page (the token leaves the address bar for localStorage), refuse a file whose name
    is markup without running it, upload a video, draw a GrabCut box and a + stroke, keep an unsaved
    draft across a change of frame, save, propagate, scrub to the last frame, see its mask drawn,
    export the zip; all under the page's Content-Security-Policy, with no cookie and no 404."""
    path, frames, labels = clip
    page = browser_page
    responses, errors = [], []
    page.on("response", lambda r: responses.append(r))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    with serving(make_app(tmp_path / "ws", predictor)) as base:
        response = page.goto(f"{base}/?token={TOKEN}")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        _until(page, "() => !location.href.includes('token')")
        assert page.evaluate("localStorage.getItem('simvos-studio-token')") == TOKEN
        _until(page, "() => document.querySelector('#model-note').textContent.includes('demo model')")
        assert page.is_hidden("#main") and page.is_hidden("#propagate")   # nothing to press before a video is open
        info = page.evaluate("async () => (await fetch('/api/info', {headers: {Authorization: 'Bearer ' + localStorage.getItem('simvos-studio-token')}})).json()")
        for select, facts in (("#direction", info["directions"]), ("#until", info["until"])):   # the server's, not the page's
            assert page.eval_on_selector_all(f"{select} option", "els => els.map(e => e.value)") == facts
        evil = tmp_path / '<img src=x onerror="document.title=1">.mp4'
        evil.write_text("not a video")
        page.set_input_files("#upload", str(evil))
        _message_has(page, "not a readable video")
        assert "<img" in page.inner_text("#message") and page.evaluate("document.querySelectorAll('#message img').length") == 0
        assert page.title() == "SimVOS studio"
        page.set_input_files("#upload", str(path))
        page.wait_for_selector("#main:not([hidden])")
        _frame_is(page, "frame 0")
        _drag(page, "grabcut", (8, 8), (40, 40))
        _message_has(page, "GrabCut done")
        page.evaluate("() => { document.querySelector('#message').textContent = ''; }")
        _drag(page, "grab-fg", (12, 12), (16, 14))                    # a + stroke refines the same GrabCut
        _message_has(page, "GrabCut done")
        _drag(page, "brush", (20, 20), (30, 24))
        page.check("input[value=polygon]")                            # a triangle closed with Enter
        box = page.locator("#canvas").bounding_box()
        for x, y in ((46, 4), (62, 4), (62, 20)):
            page.mouse.click(box["x"] + x * box["width"] / 64, box["y"] + y * box["height"] / 48)
        page.keyboard.press("Enter")
        assert "unsaved draft" in page.inner_text("#frame-label")     # said as soon as something is drawn
        # Another frame and back: the unsaved drawing is still there.
        _scrub(page, 3)
        _frame_is(page, "frame 3")
        _scrub(page, 0)
        _until(page, "() => document.querySelector('#frame-label').textContent.includes('unsaved draft')")
        page.click("#save")
        _message_has(page, "saved as an annotation")
        sid = os.listdir(tmp_path / "ws/sessions")[0]
        annotation = np.asarray(Image.open(tmp_path / "ws/sessions" / sid / "masks/00000.png"))
        assert annotation[8, 58] == 1 and annotation[22, 25] == 1 and annotation[40, 60] == 0   # polygon, brush, neither
        # The fine-tune panel follows the workspace (the new session and its count, no reload) and ticks nothing.
        _until(page, "() => document.querySelector('#ft-sessions').textContent.includes('1 annotated / 12 frames')")
        page.click("#propagate")
        _message_has(page, "propagation done", timeout=120)
        assert page.evaluate("document.querySelectorAll('#ft-sessions input:checked').length") == 0
        page.screenshot(path=str(tmp_path / "studio.png"))
        if os.environ.get("STUDIO_SCREENSHOT"):
            page.screenshot(path=os.path.join(ROOT, "docs", "studio.png"))
        assert "#session=" in page.url                                # a reload opens the same session
        _scrub(page, 11)
        _frame_is(page, "frame 11")
        drawn = page.evaluate("""() => { const c = document.querySelector('#canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > d[i + 1] + 60 && d[i] > d[i + 2] + 60) n++;
            return n; }""")
        saved = np.asarray(Image.open(tmp_path / "ws/sessions" / os.listdir(tmp_path / "ws/sessions")[0] / "results/00011.png"))
        assert (saved == 1).sum() > 0 and drawn > 0                   # object 1 (red in the DAVIS palette) is drawn
        with page.expect_download() as download:
            page.click("#exports button:text('palette')")
        zipped = tmp_path / "palette.zip"
        download.value.save_as(str(zipped))
        with zipfile.ZipFile(zipped) as z:
            assert len(z.namelist()) == 12
        # Object ids are bounded by the server's max_objects: "+ object" is disabled at the bound.
        bound = TestClient(make_app(tmp_path / "ws", predictor)).get("/api/info", headers=AUTH).json()["max_objects"]
        for _ in range(bound + 1):
            if page.is_disabled("#add-object"):
                break
            page.click("#add-object")
        assert page.is_disabled("#add-object")
        assert page.evaluate("Math.max(...[...document.querySelectorAll('#objects .object')].map(o => +o.textContent))") == bound
        page.reload()
        _frame_is(page, "frame 11")
        assert all(u.startswith(f"{base}/") or u.startswith("blob:") or u.startswith("data:") for u in page.requested), \
            [u for u in page.requested if not u.startswith(base)]
        assert not any(TOKEN in u for u in page.requested[1:])        # only the printed URL carries it
        assert [(r.status, r.url) for r in responses if r.status >= 400 and "/api/sessions" in r.url
                and r.request.method == "GET"] == []                   # no mask asked for a frame without one
        _no_cookie_anywhere(page, responses)
    # The console has the refused upload's 400 and nothing else (no 404 of a mask, no script error).
    assert [e for e in errors if "status of 400" not in e] == []


def test_two_studios_in_one_browser_both_keep_working(tmp_path, predictor, clip, browser_page):
    """Two studios (two ports, two workspaces, two tokens) opened in one browser context: after the
    second is opened, the first page still lists its sessions and saves a mask, and so does the second."""
    path, _, _ = clip
    roots = [tmp_path / "a", tmp_path / "b"]
    tokens = ["first-studio-token-0123456789", "second-studio-token-987654321"]
    sessions = [Workspace(str(root)).create(str(path), name, owned=False).id for root, name in zip(roots, ("alpha", "beta"))]
    responses = []
    with serving(make_app(roots[0], predictor, tokens[0])) as first, serving(make_app(roots[1], predictor, tokens[1])) as second:
        pages = [browser_page, browser_page.context.new_page()]
        for page in pages:
            page.on("response", lambda r: responses.append(r))
        # The first as the studio prints it, the second with the token after '#' (never sent to a server).
        for page, url in zip(pages, (f"{first}/?token={tokens[0]}#session={sessions[0]}",
                                     f"{second}/#token={tokens[1]}&session={sessions[1]}")):
            page.goto(url)
            _frame_is(page, "frame 0")
            assert "token" not in page.url
        for page, sid, name in zip(pages, sessions, ("alpha", "beta")):
            page.bring_to_front()
            page.reload()                                             # the stored token, no URL token
            _frame_is(page, "frame 0")
            _until(page, f"() => [...document.querySelectorAll('#sessions option')].some(o => o.textContent.startsWith({name!r}))")
            _drag(page, "brush", (20, 20), (30, 24))
            page.click("#save")
            _message_has(page, "saved as an annotation")
        for root, sid in zip(roots, sessions):
            assert os.listdir(root / "sessions" / sid / "masks") == ["00000.png"]
        _no_cookie_anywhere(browser_page, responses)
        assert [r.url for r in responses if r.status == 401] == []


class _OtherSite(http.server.BaseHTTPRequestHandler):
    """A page of another local port that tries the studio's API with whatever the browser would add."""
    studio = ""

    def do_GET(self):
        script = (b"window.seen = {cookie: document.cookie, stored: localStorage.getItem('simvos-studio-token')};"
                  b"fetch('" + self.studio.encode() + b"/api/sessions', {credentials: 'include'})"
                  b".then(r => r.status, e => 'blocked: ' + e).then(s => { window.seen.answer = s; });")
        body = script if self.path == "/probe.js" else b"<!doctype html><title>other</title><script src='/probe.js'></script>"
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript" if self.path == "/probe.js" else "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_page_of_another_port_never_gets_the_token(tmp_path, predictor, browser_page):
    """The studio's page is opened (its token stored) and then a page served by another local port
    calls the studio's API with credentials 'include': no cookie, no stored token, the request
    reaches the studio without the token and is answered 401."""
    page = browser_page
    reached = []

    async def recorded(scope, receive, send):
        """The studio, noting what each API request carried and what it was answered."""
        headers = dict(scope.get("headers", []))

        async def noting(message):
            if message["type"] == "http.response.start" and scope["path"].startswith("/api/"):
                reached.append((scope["path"], headers.get(b"authorization"), headers.get(b"cookie"), message["status"]))
            await send(message)
        await app(scope, receive, noting)
    app = make_app(tmp_path / "ws", predictor)
    with serving(recorded) as studio:
        page.goto(f"{studio}/")                                       # no token yet: one line says what to do
        _message_has(page, "open the URL the studio printed")
        assert reached == []
        page.goto(f"{studio}/?token={TOKEN}")
        page.wait_for_load_state("networkidle")
        assert reached and all(auth == f"Bearer {TOKEN}".encode() for _, auth, _, _ in reached)
        reached.clear()
        handler = type("Handler", (_OtherSite,), {"studio": studio})
        other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=other.serve_forever, daemon=True).start()
        try:
            probe = page.context.new_page()
            probe.goto(f"http://127.0.0.1:{other.server_address[1]}/")
            _until(probe, "() => window.seen && window.seen.answer !== undefined")
            seen = probe.evaluate("window.seen")
        finally:
            other.shutdown()
    assert seen["cookie"] == "" and seen["stored"] is None and seen["answer"] != 200, seen
    assert reached == [("/api/sessions", None, None, 401)]
    assert page.context.cookies() == []


def test_the_page_follows_a_job_again_after_its_event_stream_drops(tmp_path, predictor, clip, browser_page):
    """The first event stream of a propagation breaks before its first message (as when the network
    or the studio drops it): the page says it lost contact, reads the stream again and shows the end;
    a job running when the tab is reloaded is followed again."""
    path, _, labels = clip
    workspace = Workspace(str(tmp_path / "ws"))
    session = workspace.create(str(path), "clip", owned=False)
    streams = []
    app = create_app(workspace, JobRunner(predictor), TOKEN, INFO)
    dropping_the_first_stream = dropping_the_first_event_stream(app, streams)
    page = browser_page
    with serving(dropping_the_first_stream) as base:
        page.goto(f"{base}/?token={TOKEN}#session={session.id}")
        _frame_is(page, "frame 0")
        page.evaluate("""() => { window.said = [];
            new MutationObserver(() => window.said.push(document.querySelector('#message').textContent))
              .observe(document.querySelector('#message'), {childList: true, characterData: true, subtree: true}); }""")
        _drag(page, "brush", (20, 20), (30, 24))
        page.click("#propagate")
        _message_has(page, "propagation done", timeout=60)
        said = page.evaluate("window.said")
        # A reload while a job runs (or just after it ended): the tab follows it again to its end.
        page.click("#propagate")
        _until(page, "() => sessionStorage.getItem('simvos-studio-job') !== null")   # the job is started
        page.reload()
        _message_has(page, "propagation done", timeout=60)
    assert len(streams) >= 2 and any("lost contact" in s for s in said), (streams, said)
    assert len(os.listdir(tmp_path / "ws" / "sessions" / session.id / "results")) == 11


def test_the_fine_tune_panel_follows_the_workspace_and_lists_models_by_state(tmp_path, predictor, clip, browser_page):
    """Sessions with the same name told apart (date, counts), nothing ticked until the person ticks,
    the server's plan shown (which one is held out); models listed with state and size, a cancelled
    run not selectable and deletable, a finished one selectable."""
    import json
    path, _, labels = clip
    workspace = Workspace(str(tmp_path / "ws"))
    sessions = [workspace.create(str(path), "dog", owned=False) for _ in range(2)]
    for session in sessions:
        for t in (0, 5):
            (tmp_path / "ws" / "sessions" / session.id / "masks").mkdir(exist_ok=True)
            Image.fromarray(labels[t].astype(np.uint8)).save(session.path("masks", t))
    for name, state in (("run-cancelled", "cancelled"), ("run-done", "done")):
        folder = tmp_path / "ws" / "models" / name
        folder.mkdir(parents=True)
        (folder / "info.json").write_text(json.dumps({"state": state, "sessions": [s.id for s in sessions]}))
        (folder / ("finetuned.pth" if state == "done" else "partial.bin")).write_bytes(b"\0" * 3 * 2**20)
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())
    with serving(create_app(workspace, JobRunner(predictor), TOKEN, INFO)) as base:
        page.goto(f"{base}/?token={TOKEN}#session={sessions[0].id}")
        _frame_is(page, "frame 0")
        _until(page, "() => document.querySelectorAll('#ft-sessions input').length === 2")
        rows = [row.strip() for row in page.locator("#ft-sessions label").all_inner_texts()]
        assert len(set(rows)) == 2 and all(r.startswith("dog") and "2 annotated / 12 frames" in r for r in rows), rows
        assert page.evaluate("document.querySelectorAll('#ft-sessions input:checked').length") == 0
        for box in page.locator("#ft-sessions input").all():
            box.check()
        _until(page, "() => document.querySelector('#ft-plan').textContent.includes('held out for validation')")
        models = {row.split()[0]: row for row in page.locator("#models .model").all_inner_texts()}
        assert "cancelled" in models["run-cancelled"] and "3.0 MB" in models["run-cancelled"], models
        assert page.is_disabled("#models input[value=run-cancelled]") and page.is_enabled("#models input[value=run-done]")
        page.click("#models .model:has(input[value=run-cancelled]) button")
        _message_has(page, "model run-cancelled deleted")
        _until(page, "() => !document.querySelector('#models input[value=run-cancelled]')")
    assert sorted(os.listdir(tmp_path / "ws" / "models")) == ["run-done"]


def test_a_fine_tune_from_the_page_survives_a_dropped_stream(tmp_path, clip, browser_page, monkeypatch):
    """Tick two sessions, fine-tune (a stand-in trainer speaking the trainer's event stream), the
    job's first event stream breaks: the page reads it again, says the model is ready, ticks nothing
    again, lists the model as usable, and uses it once chosen."""
    from inference_core import build_predictor
    from studio.store import save_png_atomic
    from tests.test_studio import FAKE_TRAINER
    import sys
    path, _, labels = clip
    checkpoint = str(tmp_path / "start.pth")
    config = write_sidecar_checkpoint(checkpoint)
    trainer = tmp_path / "trainer.py"
    trainer.write_text(FAKE_TRAINER)
    monkeypatch.setenv("REPOSITORY", ROOT)
    monkeypatch.setenv("FAKE_ITERATIONS", "3")
    monkeypatch.setenv("FAKE_SECONDS", "0.2")
    workspace = Workspace(str(tmp_path / "ws"))
    for name in ("cat", "dog"):
        session = workspace.create(str(path), name, owned=False)   # the page opens the last one
        for t in (0, 5):
            save_png_atomic(session.path("masks", t), labels[t])
    runner = JobRunner(build_predictor(checkpoint, config, "cpu"), checkpoint=checkpoint)
    app = create_app(workspace, runner, TOKEN, INFO, trainer=(sys.executable, str(trainer)))
    streams = []
    dropping_the_first_stream = dropping_the_first_event_stream(app, streams)
    page = browser_page
    with serving(dropping_the_first_stream) as base:
        page.goto(f"{base}/?token={TOKEN}#session={session.id}")
        _until(page, "() => document.querySelectorAll('#ft-sessions input:not([disabled])').length === 2")
        for box in page.locator("#ft-sessions input").all():
            box.check()
        page.click("#ft-start")
        _message_has(page, "is ready", timeout=60)
        assert len(streams) >= 2
        assert page.evaluate("document.querySelectorAll('#ft-sessions input:checked').length") == 0
        model = page.inner_text("#message").split("fine-tuned model ")[1].split()[0]
        _until(page, f"() => !!document.querySelector('#models input[value=\"{model}\"]:not([disabled])')")
        page.check(f"#models input[value='{model}']")
        page.click("#use-model")
        _message_has(page, f"the next propagations use {model}")
    assert runner.checkpoint.startswith(str(tmp_path / "ws" / "models" / model))
