// SimVOS studio page: state, API calls, canvas drawing, timeline. Plain modules of one file, no framework.
"use strict";

// ------------------------------------------------------------------ API
const api = {
  url(path, params = {}) {
    const q = new URLSearchParams({ ...params, token: TOKEN });
    return `${path}?${q}`;
  },
  async call(method, path, body, type) {
    const headers = { Authorization: `Bearer ${TOKEN}` };
    if (type) headers["Content-Type"] = type;
    const res = await fetch(path, { method, headers, body });
    if (!res.ok) {
      let text = `${res.status}`;
      try { text = (await res.json()).error || text; } catch (e) { /* not JSON */ }
      throw new Error(text);
    }
    return res;
  },
  async json(method, path, body) {
    const res = await this.call(method, path, body === undefined ? undefined : JSON.stringify(body),
                                body === undefined ? undefined : "application/json");
    return res.json();
  },
};

// ------------------------------------------------------------------ state
const state = {
  info: null, session: null, frame: 0, labels: null, width: 0, height: 0,
  object: 1, objects: [1], undo: [], dirty: false, image: null, job: null, playing: null,
  polygon: [], drag: null,
  grab: null,   // the last GrabCut: {box, foreground: [[x, y]], background: [...], before: labels}
};
const $ = (id) => document.getElementById(id);

function say(text, error = false) {
  const m = $("message");
  m.textContent = text;
  m.className = error ? "error" : "";
}

// DAVIS palette: label -> [r, g, b], and back.
const PALETTE = [];
const COLOUR_TO_LABEL = new Map();
for (let label = 0; label < 256; label++) {
  let r = 0, g = 0, b = 0, c = label;
  for (let bit = 0; bit < 8; bit++) {
    r |= ((c >> 0) & 1) << (7 - bit); g |= ((c >> 1) & 1) << (7 - bit); b |= ((c >> 2) & 1) << (7 - bit);
    c >>= 3;
  }
  PALETTE.push([r, g, b]);
  if (!COLOUR_TO_LABEL.has((r << 16) | (g << 8) | b)) COLOUR_TO_LABEL.set((r << 16) | (g << 8) | b, label);
}

// ------------------------------------------------------------------ canvas
const canvas = () => $("canvas");

function render() {
  const c = canvas(), ctx = c.getContext("2d");
  if (!state.image) return;
  ctx.drawImage(state.image, 0, 0);
  if (state.labels) {
    const frame = ctx.getImageData(0, 0, state.width, state.height), px = frame.data, lab = state.labels;
    for (let i = 0; i < lab.length; i++) {
      if (!lab[i]) continue;
      const [r, g, b] = PALETTE[lab[i]];
      px[4 * i] = (px[4 * i] + r) >> 1; px[4 * i + 1] = (px[4 * i + 1] + g) >> 1; px[4 * i + 2] = (px[4 * i + 2] + b) >> 1;
    }
    ctx.putImageData(frame, 0, 0);
  }
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 2;
  if (state.polygon.length) {
    ctx.beginPath();
    state.polygon.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
  }
  if (state.drag && tool() === "grabcut") {
    const [x0, y0, x1, y1] = state.drag;
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  }
}

function point(event) {
  const c = canvas(), rect = c.getBoundingClientRect();
  return [Math.round((event.clientX - rect.left) * c.width / rect.width),
          Math.round((event.clientY - rect.top) * c.height / rect.height)];
}

function tool() { return document.querySelector("input[name=tool]:checked").value; }

function remember() {
  state.undo.push(state.labels.slice());
  if (state.undo.length > 40) state.undo.shift();
}

function paint([x, y]) {
  const r = +$("size").value, value = tool() === "eraser" ? 0 : state.object, lab = state.labels;
  for (let yy = Math.max(0, y - r); yy <= Math.min(state.height - 1, y + r); yy++) {
    for (let xx = Math.max(0, x - r); xx <= Math.min(state.width - 1, x + r); xx++) {
      if ((xx - x) ** 2 + (yy - y) ** 2 > r * r) continue;
      const i = yy * state.width + xx;
      if (value || lab[i] === state.object) lab[i] = value;
    }
  }
  state.dirty = true;
}

function fillPolygon(points) {
  const off = document.createElement("canvas");
  off.width = state.width; off.height = state.height;
  const ctx = off.getContext("2d");
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.closePath(); ctx.fill();
  const alpha = ctx.getImageData(0, 0, state.width, state.height).data;
  for (let i = 0; i < state.labels.length; i++) if (alpha[4 * i + 3] > 127) state.labels[i] = state.object;
  state.dirty = true;
}

async function grabcut() {
  // The box and every + / − stroke since it go to GrabCut together; its result replaces the last one.
  const g = state.grab;
  say("GrabCut…");
  const res = await api.call("POST", `/api/sessions/${state.session.id}/grabcut`, JSON.stringify({
    frame: state.frame, box: g.box, foreground: g.foreground, background: g.background,
    radius: +$("size").value }), "application/json");
  const mask = await decodeImage(await res.blob());
  state.labels = g.before.slice();
  for (let i = 0; i < state.labels.length; i++) if (mask[4 * i] > 127) state.labels[i] = state.object;
  state.dirty = true;
  say("GrabCut done: + / − strokes refine it; brush and eraser fix the edges; then save as annotation.");
}

async function decodeImage(blob) {
  const bitmap = await createImageBitmap(blob);
  const off = document.createElement("canvas");
  off.width = bitmap.width; off.height = bitmap.height;
  const ctx = off.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  return ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

function bindCanvas() {
  const c = canvas();
  let down = false;
  c.addEventListener("mousedown", (e) => {
    if (!state.labels) return;
    const p = point(e), t = tool();
    if (t === "brush" || t === "eraser") { remember(); down = true; paint(p); render(); }
    if (t === "grabcut") state.drag = [...p, ...p];
    if (t === "grab-fg" || t === "grab-bg") {
      if (!state.grab) { say("draw a GrabCut box first", true); return; }
      down = "hint";
      (t === "grab-fg" ? state.grab.foreground : state.grab.background).push(p);
    }
    if (t === "polygon") { state.polygon.push(p); render(); }
  });
  c.addEventListener("mousemove", (e) => {
    if (down === "hint") { (tool() === "grab-fg" ? state.grab.foreground : state.grab.background).push(point(e)); return; }
    if (down) { paint(point(e)); render(); }
    if (state.drag) { const [x, y] = point(e); state.drag[2] = x; state.drag[3] = y; render(); }
  });
  window.addEventListener("mouseup", async () => {
    const hint = down === "hint";
    down = false;
    if (state.drag || hint) {
      if (state.drag) {
        const [x0, y0, x1, y1] = state.drag;
        state.drag = null;
        remember();
        state.grab = { box: [x0, y0, x1, y1], foreground: [], background: [], before: state.labels.slice() };
      }
      try { await grabcut(); } catch (err) { say(err.message, true); }
      render();
    }
  });
  c.addEventListener("dblclick", () => {
    if (tool() === "polygon" && state.polygon.length > 2) { remember(); fillPolygon(state.polygon); }
    state.polygon = []; render();
  });
}

// ------------------------------------------------------------------ frames and masks
async function loadFrame(index) {
  const s = state.session;
  state.frame = Math.max(0, Math.min(index, s.frames - 1));
  state.polygon = []; state.undo = []; state.dirty = false; state.grab = null;
  const img = new Image();
  img.src = api.url(`/api/sessions/${s.id}/frames/${pad(state.frame)}.jpg`);
  await img.decode();
  state.image = img;
  state.labels = new Uint8Array(s.width * s.height);
  try {
    const res = await api.call("GET", `/api/sessions/${s.id}/masks/${pad(state.frame)}.png`);
    const px = await decodeImage(await res.blob());
    for (let i = 0; i < state.labels.length; i++) {
      state.labels[i] = COLOUR_TO_LABEL.get((px[4 * i] << 16) | (px[4 * i + 1] << 8) | px[4 * i + 2]) || 0;
    }
    for (const v of new Set(state.labels)) if (v && !state.objects.includes(v)) state.objects.push(v);
    renderObjects();
  } catch (err) { /* 404: no mask on this frame yet */ }
  $("scrub").value = state.frame;
  const annotated = s.annotated.includes(state.frame) ? " (annotated)" : "";
  $("frame-label").textContent = `frame ${state.frame} / ${s.frames - 1}${annotated}`;
  document.querySelectorAll("#timeline img").forEach((t) => t.classList.toggle("current", +t.dataset.frame === state.frame));
  render();
}

function pad(i) { return String(i).padStart(5, "0"); }

async function labelsAsPng() {
  const off = document.createElement("canvas");
  off.width = state.width; off.height = state.height;
  const ctx = off.getContext("2d"), img = ctx.createImageData(state.width, state.height);
  for (let i = 0; i < state.labels.length; i++) {
    const [r, g, b] = PALETTE[state.labels[i]];
    img.data[4 * i] = r; img.data[4 * i + 1] = g; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return new Promise((resolve) => off.toBlob(resolve, "image/png"));
}

async function saveAnnotation() {
  if (!state.labels.some((v) => v)) throw new Error("the mask is empty: draw an object first");
  const res = await api.call("PUT", `/api/sessions/${state.session.id}/masks/${pad(state.frame)}.png`,
                             await labelsAsPng(), "image/png");
  const body = await res.json();
  state.session.annotated = body.annotated; state.dirty = false;
  markTimeline();
  say(`frame ${state.frame} saved as an annotation (objects ${body.objects.join(", ")})`);
}

// ------------------------------------------------------------------ propagation
async function propagate() {
  if (state.dirty) await saveAnnotation();
  const body = await api.json("POST", `/api/sessions/${state.session.id}/propagate`,
    { frame: state.frame, direction: $("direction").value, until: $("until").value });
  state.job = body.job;
  $("cancel").disabled = false; $("propagate").disabled = true;
  const events = new EventSource(api.url(`/api/jobs/${body.job}/events`));
  events.onmessage = async (e) => {
    const job = JSON.parse(e.data);
    $("progress").max = Math.max(job.total, 1); $("progress").value = job.done;
    const eta = job.eta_seconds == null ? "" : `, ETA ${Math.round(job.eta_seconds)} s`;
    $("progress-text").textContent = `${job.done}/${job.total} frames, ${job.fps} FPS${eta}`;
    if (job.last_frame != null && job.state === "running") await loadFrame(job.last_frame);
    if (["done", "failed", "cancelled"].includes(job.state)) {
      events.close();
      $("cancel").disabled = true; $("propagate").disabled = false; state.job = null;
      state.session = await api.json("GET", `/api/sessions/${state.session.id}`);
      markTimeline();
      if (job.last_frame != null) await loadFrame(job.last_frame);
      if (job.state === "failed") say(`propagation failed: ${job.error}`, true);
      else say(`propagation ${job.state}: ${job.done} frames in ${job.seconds} s`);
    }
  };
}

// ------------------------------------------------------------------ session, objects, timeline
function renderObjects() {
  const box = $("objects");
  box.innerHTML = "";
  for (const id of state.objects) {
    const el = document.createElement("span");
    el.className = "object" + (id === state.object ? " active" : "");
    el.innerHTML = `<span class="swatch" style="background: rgb(${PALETTE[id].join(",")})"></span>${id}`;
    el.onclick = () => { state.object = id; renderObjects(); };
    box.appendChild(el);
  }
}

function markTimeline() {
  document.querySelectorAll("#timeline img").forEach((t) =>
    t.classList.toggle("annotated", state.session.annotated.includes(+t.dataset.frame)));
}

async function openSession(session) {
  state.session = session; state.width = session.width; state.height = session.height;
  state.objects = [1]; state.object = 1;
  const c = canvas(); c.width = session.width; c.height = session.height;
  c.style.width = "100%"; c.style.maxWidth = `${Math.max(session.width, 760)}px`;  // small videos drawn larger
  $("main").hidden = false;
  $("scrub").max = session.frames - 1;
  const timeline = $("timeline");
  timeline.innerHTML = "";
  const step = Math.max(1, Math.ceil(session.frames / 300));
  for (let i = 0; i < session.frames; i += step) {
    const t = document.createElement("img");
    t.loading = "lazy"; t.dataset.frame = i; t.alt = `frame ${i}`;
    t.src = api.url(`/api/sessions/${session.id}/frames/thumb_${pad(i)}.jpg`);
    t.onclick = () => loadFrame(i);
    timeline.appendChild(t);
  }
  markTimeline();
  $("exports").innerHTML = ["palette", "objects", "coco", "mp4"].map((f) =>
    `<a href="${api.url(`/api/sessions/${session.id}/export`, { format: f })}" download>${f}</a>`).join(" · ");
  renderObjects();
  await loadFrame(session.annotated.length ? session.annotated[0] : 0);
  say(`${session.name}: ${session.frames} frames, ${session.width}x${session.height}, ${session.fps.toFixed(2)} fps`);
  refreshSessions();
}

async function refreshSessions() {
  const { sessions } = await api.json("GET", "/api/sessions");
  $("sessions").innerHTML = `<option value="">earlier sessions…</option>` + sessions.map((s) =>
    `<option value="${s.id}">${s.name} (${s.frames} frames, ${s.annotated.length} annotated)</option>`).join("");
}

async function main() {
  bindCanvas();
  state.info = await api.json("GET", "/api/info");
  const info = state.info, note = $("model-note");
  if (info.demo_model || !info.published) {
    note.hidden = false;
    note.textContent = (info.demo_model
      ? "This is the demo model, trained for minutes on synthetic videos: on real video it is worse than copying the first mask (27.7 vs 57.9 J&F on real DAVIS clips). "
      : `This checkpoint (${info.backbone}) is not a published SimVOS network. `) +
      "For real videos start the studio with published weights: python -m studio --checkpoint test_checkpoints/simvos_bs.pth --variant simvos_bs";
  }
  if (info.videos.length) {
    $("videos-box").hidden = false;
    $("videos").innerHTML += info.videos.map((v) => `<option>${v}</option>`).join("");
  }
  await refreshSessions();
  const guard = (fn) => async (...a) => { try { await fn(...a); } catch (err) { say(err.message, true); } };
  $("sessions").onchange = guard(async (e) => { if (e.target.value) await openSession(await api.json("GET", `/api/sessions/${e.target.value}`)); });
  $("videos").onchange = guard(async (e) => {
    if (!e.target.value) return;
    say("opening the video…");
    await openSession(await api.json("POST", "/api/sessions", { video: e.target.value }));
  });
  $("upload").onchange = guard(async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    say(`uploading ${file.name}…`);
    const form = new FormData(); form.append("video", file);
    const res = await api.call("POST", "/api/sessions", form);
    await openSession(await res.json());
  });
  $("import").onchange = guard(async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    await api.call("PUT", `/api/sessions/${state.session.id}/masks/${pad(state.frame)}.png`, file, "image/png");
    state.session = await api.json("GET", `/api/sessions/${state.session.id}`);
    markTimeline(); await loadFrame(state.frame);
    say(`imported ${file.name} as the annotation of frame ${state.frame}`);
  });
  $("add-object").onclick = () => {
    const id = Math.max(0, ...state.objects) + 1;
    state.objects.push(id); state.object = id; renderObjects();
  };
  $("undo").onclick = () => { if (state.undo.length) { state.labels = state.undo.pop(); state.dirty = true; render(); } };
  $("clear").onclick = () => { remember(); state.labels = state.labels.map((v) => (v === state.object ? 0 : v)); state.dirty = true; render(); };
  $("save").onclick = guard(saveAnnotation);
  $("propagate").onclick = guard(propagate);
  $("cancel").onclick = guard(async () => { if (state.job) await api.json("DELETE", `/api/jobs/${state.job}`); });
  $("scrub").oninput = guard(async (e) => loadFrame(+e.target.value));
  $("play").onclick = () => {
    if (state.playing) { clearInterval(state.playing); state.playing = null; $("play").textContent = "▶"; return; }
    $("play").textContent = "⏸";
    state.playing = setInterval(async () => {
      if (state.frame >= state.session.frames - 1) { $("play").click(); return; }
      await loadFrame(state.frame + 1);
    }, 1000 / Math.min(state.session.fps || 10, 30));
  };
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && state.polygon.length > 2) { remember(); fillPolygon(state.polygon); state.polygon = []; render(); }
    if ((e.ctrlKey || e.metaKey) && e.key === "z") $("undo").click();
  });
}

main().catch((err) => say(err.message, true));
