// SimVOS studio page: state, API calls, canvas drawing, drafts, timeline. One file, no framework.
// No server string is ever parsed as HTML: elements are built and their text set (textContent).
"use strict";

// The printed URL's ?token= set an HttpOnly cookie when the page loaded: take it out of the address
// bar (and so out of the history); every request below carries the cookie, no URL carries the token.
(() => {
  const url = new URL(location.href);
  if (url.searchParams.has("token")) {
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
})();

// ------------------------------------------------------------------ API
const api = {
  async call(method, path, body, type) {
    const headers = {};
    if (type) headers["Content-Type"] = type;
    let res;
    try {
      res = await fetch(path, { method, headers, body, credentials: "same-origin" });
    } catch (err) {
      throw new Error("the studio does not answer (stopped or restarting?): try again in a moment");
    }
    if (!res.ok) {
      let text = `${res.status} ${res.statusText}`;
      try { text = (await res.json()).error || text; } catch (e) { /* not JSON: keep the status line */ }
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
  info: null, session: null, frame: 0, labels: null, width: 0, height: 0, annotatedHere: false,
  object: 1, objects: [1], undo: [], dirty: false, image: null, playing: null,
  polygon: [], drag: null, stroke: null,
  grab: null,       // the current GrabCut: {box, foreground: [[x, y, r]], background: [...], before: labels}
  drafts: new Map(),  // frame -> {labels, undo, grab}: unsaved drawings kept when moving away
  job: null,        // {id, session, events}
  loading: 0,       // the latest frame request: older answers are dropped
};
const $ = (id) => document.getElementById(id);

function say(text, error = false) {
  const m = $("message");
  m.textContent = text;
  m.className = error ? "error" : "";
}

function element(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);
    else el[key] = value;
  }
  for (const child of children) el.append(child);
  return el;
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
    const alpha = +$("opacity").value / 100, outline = $("outline").checked, w = state.width;
    for (let i = 0; i < lab.length; i++) {
      const v = lab[i];
      if (!v) continue;
      if (outline) {
        const x = i % w;
        const edge = (x > 0 && lab[i - 1] !== v) || (x < w - 1 && lab[i + 1] !== v) ||
                     (i >= w && lab[i - w] !== v) || (i + w < lab.length && lab[i + w] !== v);
        if (!edge) continue;
      }
      const [r, g, b] = PALETTE[v], a = outline ? 1 : alpha;
      px[4 * i] += a * (r - px[4 * i]); px[4 * i + 1] += a * (g - px[4 * i + 1]); px[4 * i + 2] += a * (b - px[4 * i + 2]);
    }
    ctx.putImageData(frame, 0, 0);
  }
  ctx.lineWidth = 2;
  ctx.strokeStyle = "#fff";
  if (state.polygon.length) {
    ctx.beginPath();
    state.polygon.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
  }
  const box = state.drag || (state.grab && state.grab.box);
  if (box) {
    const [x0, y0, x1, y1] = box;
    ctx.setLineDash([6, 4]); ctx.strokeRect(x0, y0, x1 - x0, y1 - y0); ctx.setLineDash([]);
  }
  // The GrabCut strokes, each with its own size: + green, − red.
  const strokes = state.grab ? [["#3c3", state.grab.foreground], ["#e33", state.grab.background]] : [];
  for (const [colour, points] of strokes) {
    ctx.fillStyle = colour; ctx.globalAlpha = 0.6;
    for (const [x, y, r] of points) { ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fill(); }
    ctx.globalAlpha = 1;
  }
}

function point(event) {
  const c = canvas(), rect = c.getBoundingClientRect();
  const x = Math.round((event.clientX - rect.left) * c.width / rect.width);
  const y = Math.round((event.clientY - rect.top) * c.height / rect.height);
  return [Math.max(0, Math.min(state.width - 1, x)), Math.max(0, Math.min(state.height - 1, y))];
}

function tool() { return document.querySelector("input[name=tool]:checked").value; }

function snapshot() {
  return { labels: state.labels.slice(), grab: state.grab && {
    box: state.grab.box.slice(), foreground: state.grab.foreground.slice(), background: state.grab.background.slice(),
    before: state.grab.before } };
}

function remember() {
  state.undo.push(snapshot());
  if (state.undo.length > 40) state.undo.shift();
}

function changed() {
  state.dirty = true;
  markTimeline();
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
  changed();
}

function fillPolygon(points) {
  const off = element("canvas", { width: state.width, height: state.height });
  const ctx = off.getContext("2d");
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.closePath(); ctx.fill();
  const alpha = ctx.getImageData(0, 0, state.width, state.height).data;
  for (let i = 0; i < state.labels.length; i++) if (alpha[4 * i + 3] > 127) state.labels[i] = state.object;
  changed();
}

async function objectMaskBase64(labels) {
  // The current object's mask as a binary PNG, base64: GrabCut refines it with the strokes.
  const off = element("canvas", { width: state.width, height: state.height });
  const ctx = off.getContext("2d"), img = ctx.createImageData(state.width, state.height);
  for (let i = 0; i < labels.length; i++) {
    const v = labels[i] === state.object ? 255 : 0;
    img.data[4 * i] = v; img.data[4 * i + 1] = v; img.data[4 * i + 2] = v; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const blob = await new Promise((resolve) => off.toBlob(resolve, "image/png"));
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

async function grabcut(refine) {
  // A new box: GrabCut inside it, the object's result replaces its old pixels. A stroke: GrabCut
  // starts from the object's current mask and the strokes are hard constraints.
  const g = state.grab, frame = state.frame;
  say("GrabCut…");
  const body = { frame, box: g.box, foreground: g.foreground, background: g.background };
  if (refine) body.mask = await objectMaskBase64(state.labels);
  const res = await api.call("POST", `/api/sessions/${state.session.id}/grabcut`, JSON.stringify(body), "application/json");
  const mask = await decodeImage(await res.blob());
  if (frame !== state.frame) return;  // the user moved on: the answer belongs to another frame
  const base = refine ? state.labels : g.before;
  const next = base.slice();
  for (let i = 0; i < next.length; i++) {
    if (next[i] === state.object) next[i] = 0;
    if (mask[4 * i] > 127) next[i] = state.object;
  }
  state.labels = next;
  changed();
  say("GrabCut done: + / − strokes refine it (each keeps its size); brush and eraser fix the edges; then save as annotation.");
}

async function decodeImage(blob) {
  const bitmap = await createImageBitmap(blob);
  const off = element("canvas", { width: bitmap.width, height: bitmap.height });
  const ctx = off.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  return ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
}

function boxAround(labels, points) {
  // A box for strokes drawn without one: around the object's pixels and the strokes, 10% wider.
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== state.object) continue;
    const x = i % state.width, y = (i / state.width) | 0;
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  for (const [x, y, r] of points) { x0 = Math.min(x0, x - r); x1 = Math.max(x1, x + r); y0 = Math.min(y0, y - r); y1 = Math.max(y1, y + r); }
  const mx = (x1 - x0) * 0.1 + 4, my = (y1 - y0) * 0.1 + 4;
  return [Math.max(0, Math.round(x0 - mx)), Math.max(0, Math.round(y0 - my)),
          Math.min(state.width - 1, Math.round(x1 + mx)), Math.min(state.height - 1, Math.round(y1 + my))];
}

function bindCanvas() {
  const c = canvas();
  let down = false;
  c.addEventListener("mousedown", (e) => {
    if (!state.labels) return;
    const p = point(e), t = tool();
    if (t === "brush" || t === "eraser") { remember(); down = "paint"; paint(p); render(); }
    if (t === "grabcut") state.drag = [...p, ...p];
    if (t === "grab-fg" || t === "grab-bg") {
      remember();
      const r = +$("size").value;
      if (!state.grab) state.grab = { box: null, foreground: [], background: [], before: state.labels.slice() };
      state.stroke = t === "grab-fg" ? state.grab.foreground : state.grab.background;
      state.stroke.push([...p, r]);
      down = "hint"; render();
    }
    if (t === "polygon") { state.polygon.push(p); render(); }
  });
  c.addEventListener("mousemove", (e) => {
    if (down === "hint") { state.stroke.push([...point(e), +$("size").value]); render(); return; }
    if (down === "paint") { paint(point(e)); render(); }
    if (state.drag) { const [x, y] = point(e); state.drag[2] = x; state.drag[3] = y; render(); }
  });
  window.addEventListener("mouseup", guard(async () => {
    const hint = down === "hint";
    down = false;
    if (!state.drag && !hint) return;
    if (state.drag) {
      const [x0, y0, x1, y1] = state.drag;
      state.drag = null;
      remember();
      state.grab = { box: [x0, y0, x1, y1], foreground: [], background: [], before: state.labels.slice() };
    } else if (!state.grab.box) {
      state.grab.box = boxAround(state.labels, [...state.grab.foreground, ...state.grab.background]);
    }
    try { await grabcut(hint); } finally { render(); }
  }));
  c.addEventListener("dblclick", () => {
    if (tool() === "polygon" && state.polygon.length > 2) { remember(); fillPolygon(state.polygon); }
    state.polygon = []; render();
  });
}

// ------------------------------------------------------------------ frames, drafts and masks
function keepDraft() {
  if (state.session && state.dirty && state.labels) {
    state.drafts.set(state.frame, { labels: state.labels, undo: state.undo, grab: state.grab });
  }
}

async function loadFrame(index, { keep = true } = {}) {
  const s = state.session;
  if (!s) return;
  if (keep) keepDraft();
  const ticket = ++state.loading;
  const frame = Math.max(0, Math.min(index, s.frames - 1));
  const img = new Image();
  img.src = `/api/sessions/${s.id}/frames/${pad(frame)}.jpg`;
  await img.decode().catch(() => { throw new Error(`frame ${frame} could not be loaded`); });
  let labels = new Uint8Array(s.width * s.height), annotated = false;
  const draft = state.drafts.get(frame);
  if (!draft) {
    const res = await fetch(`/api/sessions/${s.id}/masks/${pad(frame)}.png`, { credentials: "same-origin", cache: "no-store" });
    if (res.status === 200) {  // 204: no mask yet
      annotated = res.headers.get("X-Annotated") === "true";
      const px = await decodeImage(await res.blob());
      for (let i = 0; i < labels.length; i++) labels[i] = COLOUR_TO_LABEL.get((px[4 * i] << 16) | (px[4 * i + 1] << 8) | px[4 * i + 2]) || 0;
    } else if (res.status !== 204) {
      let text = `${res.status}`;
      try { text = (await res.json()).error || text; } catch (e) { /* keep the status */ }
      throw new Error(text);
    }
  }
  if (ticket !== state.loading || s !== state.session) return;  // a newer request won
  state.frame = frame; state.image = img; state.polygon = []; state.drag = null;
  if (draft) {
    state.labels = draft.labels; state.undo = draft.undo; state.grab = draft.grab; state.dirty = true;
    state.drafts.delete(frame);
  } else {
    state.labels = labels; state.undo = []; state.grab = null; state.dirty = false;
  }
  state.annotatedHere = annotated || s.annotated.includes(frame);
  for (const v of new Set(state.labels)) if (v && !state.objects.includes(v)) state.objects.push(v);
  renderObjects();
  $("scrub").value = frame;
  const what = state.dirty ? " (unsaved draft)" : state.annotatedHere ? " (annotated)" :
    s.computed_frames.includes(frame) ? " (computed)" : "";
  $("frame-label").textContent = `frame ${frame} / ${s.frames - 1}${what}`;
  $("unannotate").disabled = !s.annotated.includes(frame);
  location.replace(`#session=${s.id}&frame=${frame}`);
  markTimeline(true);
  render();
}

function pad(i) { return String(i).padStart(5, "0"); }

async function labelsAsPng() {
  const off = element("canvas", { width: state.width, height: state.height });
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
  const frame = state.frame;
  const res = await api.call("PUT", `/api/sessions/${state.session.id}/masks/${pad(frame)}.png`, await labelsAsPng(), "image/png");
  const body = await res.json();
  state.session.annotated = body.annotated;
  if (frame === state.frame) { state.dirty = false; state.annotatedHere = true; }
  await loadFrame(state.frame, { keep: false });
  say(`frame ${frame} saved as an annotation (objects ${body.objects.join(", ")})`);
}

async function removeAnnotation() {
  const frame = state.frame;
  if (!confirm(`Remove the annotation of frame ${frame}? (Its computed mask, if any, stays until the next propagation.)`)) return;
  const body = await api.json("DELETE", `/api/sessions/${state.session.id}/masks/${pad(frame)}.png`);
  state.session.annotated = body.annotated;
  state.drafts.delete(frame);
  await loadFrame(frame, { keep: false });
  say(`frame ${frame} is no longer annotated`);
}

// ------------------------------------------------------------------ propagation
function setRunning(running) {
  $("cancel").disabled = !running; $("propagate").disabled = running;
}

async function propagate() {
  if (state.dirty) await saveAnnotation();
  const body = await api.json("POST", `/api/sessions/${state.session.id}/propagate`,
    { frame: state.frame, direction: $("direction").value, until: $("until").value });
  if (body.note) say(body.note);
  watchJob(body.job, state.session.id);
}

function showProgress(job) {
  $("progress").max = Math.max(job.total, 1); $("progress").value = job.done;
  let text = `${job.done}/${job.total} frames`;
  if (job.state === "queued") {
    text = `queued (${job.position || "?"} in line` + (job.waiting_for ? `, after ${job.waiting_for.label}` : "") + ")";
  } else if (job.state === "running") {
    text += `, ${job.fps} FPS` + (job.eta_seconds == null ? "" : `, ETA ${Math.round(job.eta_seconds)} s`);
  }
  $("progress-text").textContent = text;
}

function watchJob(jobId, sessionId) {
  if (state.job && state.job.events) state.job.events.close();
  const events = new EventSource(`/api/jobs/${jobId}/events`);
  state.job = { id: jobId, session: sessionId, events, last: null };
  setRunning(true);
  events.onmessage = guard(async (e) => {
    const job = JSON.parse(e.data);
    if (!state.job || state.job.id !== jobId) return;
    const mine = state.session && state.session.id === sessionId;
    if (mine) showProgress(job);
    if (mine && job.last_frame != null && job.last_frame !== state.job.last) {
      state.job.last = job.last_frame;
      if (!state.session.computed_frames.includes(job.last_frame)) state.session.computed_frames.push(job.last_frame);
      if ($("follow").checked && !state.dirty) await loadFrame(job.last_frame);
      else if (job.last_frame === state.frame && !state.dirty) await loadFrame(state.frame, { keep: false });
      markTimeline();
    }
    if (["done", "failed", "cancelled", "interrupted"].includes(job.state)) await jobEnded(job);
  });
  events.onerror = guard(async () => {
    // The stream broke: the studio stopped or restarted. Ask for the job until it answers.
    events.close();
    if (!state.job || state.job.id !== jobId) return;
    say("lost contact with the studio (stopped or restarting?): waiting for it…", true);
    for (let attempt = 0; attempt < 60; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      if (!state.job || state.job.id !== jobId) return;
      try {
        const job = await api.json("GET", `/api/jobs/${jobId}`);
        if (["done", "failed", "cancelled", "interrupted"].includes(job.state)) { await jobEnded(job); return; }
        watchJob(jobId, sessionId);  // it is still running: follow it again
        return;
      } catch (err) {
        if (/no job/.test(err.message)) { await jobEnded({ state: "interrupted", done: 0, total: 0, error: "the studio restarted and has no record of this job" }); return; }
      }
    }
    await jobEnded({ state: "interrupted", done: 0, total: 0, error: "the studio does not answer: reload the page once it runs again" });
  });
}

async function jobEnded(job) {
  if (state.job && state.job.events) state.job.events.close();
  const sessionId = state.job && state.job.session;
  state.job = null;
  setRunning(false);
  if (!state.session || state.session.id !== sessionId) return;
  showProgress(job);
  try {
    const fresh = await api.json("GET", `/api/sessions/${state.session.id}`);
    Object.assign(state.session, fresh);
    if (!state.dirty) await loadFrame(state.frame, { keep: false });
    markTimeline();
  } catch (err) { say(err.message, true); return; }
  if (job.state === "failed" || job.state === "interrupted") say(`propagation ${job.state}: ${job.error}`, true);
  else say(`propagation ${job.state}: ${job.done} of ${job.total} frames in ${job.seconds} s`);
}

// ------------------------------------------------------------------ session, objects, timeline, exports
function renderObjects() {
  const box = $("objects");
  box.replaceChildren();
  for (const id of state.objects) {
    const swatch = element("span", { className: "swatch", style: { background: `rgb(${PALETTE[id].join(",")})` } });
    const el = element("span", { className: "object" + (id === state.object ? " active" : "") }, swatch, String(id));
    el.onclick = () => { state.object = id; renderObjects(); };
    box.append(el);
  }
}

function markTimeline(scroll = false) {
  if (!state.session) return;
  const annotated = new Set(state.session.annotated), computed = new Set(state.session.computed_frames);
  document.querySelectorAll("#timeline img").forEach((t) => {
    const f = +t.dataset.frame;
    t.classList.toggle("annotated", annotated.has(f));
    t.classList.toggle("computed", computed.has(f) && !annotated.has(f));
    t.classList.toggle("draft", state.drafts.has(f) || (f === state.frame && state.dirty));
    const current = f === state.frame || (f < state.frame && f + state.timelineStep > state.frame);
    t.classList.toggle("current", current);
    if (current && scroll) t.scrollIntoView({ block: "nearest", inline: "nearest" });
  });
}

async function download(format) {
  // Fetched, not linked: a failed export shows its error instead of downloading it as a file.
  say(`exporting ${format}…`);
  const res = await api.call("GET", `/api/sessions/${state.session.id}/export?format=${encodeURIComponent(format)}`);
  const blob = await res.blob();
  const name = (/filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "") || [])[1] || `export.${format}`;
  const link = element("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(link); link.click(); link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  say(`exported ${name}`);
}

async function openSession(session, frame = null) {
  if (state.job && state.job.session !== session.id) $("progress-text").textContent = "";
  keepDraft();
  if (state.session && state.session.id !== session.id) {
    if (state.drafts.size && !confirm(`Drop the unsaved drafts of ${state.drafts.size} frame(s) of ${state.session.name}?`)) return;
    state.drafts.clear();
  }
  state.dirty = false;
  state.session = session; state.width = session.width; state.height = session.height;
  state.objects = [1]; state.object = 1;
  const c = canvas(); c.width = session.width; c.height = session.height;
  c.style.width = "100%"; c.style.maxWidth = `${Math.max(session.width, 760)}px`;  // small videos drawn larger
  $("main").hidden = false;
  $("scrub").max = session.frames - 1;
  $("progress").value = 0;
  if (!state.job) $("progress-text").textContent = "";
  const timeline = $("timeline");
  timeline.replaceChildren();
  const step = Math.max(1, Math.ceil(session.frames / 300));
  state.timelineStep = step;
  for (let i = 0; i < session.frames; i += step) {
    const t = element("img", { loading: "lazy", alt: `frame ${i}`, title: `frame ${i}`, dataset: { frame: i },
                               src: `/api/sessions/${session.id}/frames/thumb_${pad(i)}.jpg` });
    t.onclick = guard(() => loadFrame(i));
    timeline.append(t);
  }
  const links = ["palette", "objects", "coco", "mp4"].map((f) => {
    const b = element("button", { className: "link", textContent: f });
    b.onclick = guard(() => download(f));
    return b;
  });
  $("exports").replaceChildren(...links);
  renderObjects();
  await loadFrame(frame ?? (session.annotated.length ? session.annotated[0] : 0), { keep: false });
  say(`${session.name}: ${session.frames} frames, ${session.width}x${session.height}, ${session.fps.toFixed(2)} fps`);
  await refreshSessions();
}

async function refreshSessions() {
  const { sessions } = await api.json("GET", "/api/sessions");
  const options = sessions.map((s) => element("option", { value: s.id,
    textContent: `${s.name} (${s.frames} frames, ${s.annotated.length} annotated)` }));
  $("sessions").replaceChildren(element("option", { value: "", textContent: "earlier sessions…" }), ...options);
}

// ------------------------------------------------------------------ fine-tuning and models
async function refreshFinetune() {
  const { sessions } = await api.json("GET", "/api/sessions");
  const usable = sessions.filter((s) => s.annotated.length >= 2);
  const boxes = usable.map((s) => element("label", {}, element("input", { type: "checkbox", value: s.id, checked: true }),
    ` ${s.name} (${s.annotated.length} annotated)`));
  $("ft-sessions").replaceChildren(...(boxes.length ? boxes : [element("span", { textContent: "annotate at least 2 frames of a video first" })]));
  const { models } = await api.json("GET", "/api/models");
  $("models").replaceChildren(...models.filter((m) => m.usable).map((m) => element("option", { value: m.name, selected: m.current,
    textContent: `${m.name}${m.current ? " (in use)" : ""}${m.val_jf != null ? `, J&F ${m.val_jf}` : ""}` })));
}

async function startFinetune() {
  const sessions = [...document.querySelectorAll("#ft-sessions input:checked")].map((b) => b.value);
  if (!sessions.length) throw new Error("pick the videos to fine-tune on (each with at least 2 annotated frames)");
  const body = await api.json("POST", "/api/finetune", { sessions, minutes: +$("ft-minutes").value });
  $("ft-start").disabled = true; $("ft-cancel").disabled = false;
  state.finetune = body.job;
  const events = new EventSource(`/api/jobs/${body.job}/events`);
  const end = () => { events.close(); $("ft-start").disabled = false; $("ft-cancel").disabled = true; state.finetune = null; };
  events.onmessage = guard(async (e) => {
    const job = JSON.parse(e.data);
    const jf = job.val_jf == null ? "" : `, validation J&F ${job.val_jf}` + (job.val_jf_before != null ? ` (before ${job.val_jf_before})` : "");
    const where = job.state === "queued" ? `queued (${job.position || "?"} in line)` : `${job.done}/${job.total || "?"} iterations`;
    $("ft-text").textContent = `${job.state}: ${where}${jf}`;
    if (["done", "failed", "cancelled", "interrupted"].includes(job.state)) {
      end();
      await refreshFinetune();
      if (job.state === "done") {
        $("models").value = job.model;
        say(`fine-tuned model ${job.model} is ready${jf}: press "use this model" to propagate with it`);
      } else if (job.error) say(`fine-tuning ${job.state}: ${job.error}`, true);
    }
  });
  events.onerror = () => { end(); say("lost contact with the studio during fine-tuning (restarted?)", true); };
}

function guard(fn) {
  return async (...args) => { try { await fn(...args); } catch (err) { say(err.message, true); } };
}

async function fromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const id = params.get("session");
  if (!id) return;
  try {
    await openSession(await api.json("GET", `/api/sessions/${encodeURIComponent(id)}`), params.has("frame") ? +params.get("frame") : null);
  } catch (err) { say(`the session of this address could not be opened: ${err.message}`, true); }
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
      `For real videos start the studio with published weights (python -m studio --checkpoint test_checkpoints/simvos_bs.pth --variant simvos_bs): ${info.weights_help || ""}`;
  }
  if (info.videos.length) {
    $("videos-box").hidden = false;
    $("videos").append(...info.videos.map((v) => element("option", { value: v, textContent: v })));
  }
  await refreshSessions();
  $("sessions").onchange = guard(async (e) => { if (e.target.value) await openSession(await api.json("GET", `/api/sessions/${e.target.value}`)); });
  $("videos").onchange = guard(async (e) => {
    if (!e.target.value) return;
    say("opening the video…");
    await openSession(await api.json("POST", "/api/sessions", { video: e.target.value }));
  });
  $("upload").onchange = guard(async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    if (file.size > info.max_upload_mb * 2 ** 20) throw new Error(`${file.name} is larger than the studio takes (--max_upload_mb ${info.max_upload_mb})`);
    say(`uploading ${file.name}…`);
    const form = new FormData(); form.append("video", file);
    const res = await api.call("POST", "/api/sessions", form);
    await openSession(await res.json());
  });
  $("import").onchange = guard(async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (!file) return;
    await api.call("PUT", `/api/sessions/${state.session.id}/masks/${pad(state.frame)}.png`, file, "image/png");
    Object.assign(state.session, await api.json("GET", `/api/sessions/${state.session.id}`));
    state.dirty = false;
    await loadFrame(state.frame, { keep: false });
    say(`imported ${file.name} as the annotation of frame ${state.frame}`);
  });
  $("add-object").onclick = () => {
    const id = Math.max(0, ...state.objects) + 1;
    state.objects.push(id); state.object = id; state.grab = null; renderObjects();
  };
  $("undo").onclick = () => {
    if (!state.undo.length) return;
    const last = state.undo.pop();
    state.labels = last.labels; state.grab = last.grab;
    changed(); render();
  };
  $("clear").onclick = () => { remember(); state.labels = state.labels.map((v) => (v === state.object ? 0 : v)); state.grab = null; changed(); render(); };
  $("discard").onclick = guard(async () => { state.dirty = false; state.drafts.delete(state.frame); await loadFrame(state.frame, { keep: false }); say("draft discarded"); });
  $("unannotate").onclick = guard(removeAnnotation);
  $("save").onclick = guard(saveAnnotation);
  $("propagate").onclick = guard(propagate);
  $("cancel").onclick = guard(async () => { if (state.job) await api.json("DELETE", `/api/jobs/${state.job.id}`); });
  $("scrub").oninput = guard(async (e) => loadFrame(+e.target.value));
  $("opacity").oninput = render;
  $("outline").onchange = render;
  $("play").onclick = () => {
    if (state.playing) { clearInterval(state.playing); state.playing = null; $("play").textContent = "▶"; return; }
    $("play").textContent = "⏸";
    state.playing = setInterval(guard(async () => {
      if (state.frame >= state.session.frames - 1) { $("play").click(); return; }
      await loadFrame(state.frame + 1);
    }), 1000 / Math.min(state.session.fps || 10, 30));
  };
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && state.polygon.length > 2) { remember(); fillPolygon(state.polygon); state.polygon = []; render(); }
    if ((e.ctrlKey || e.metaKey) && e.key === "z") $("undo").click();
  });
  window.addEventListener("beforeunload", (e) => {
    if (state.dirty || state.drafts.size) { e.preventDefault(); e.returnValue = ""; }
  });
  $("ft-start").onclick = guard(startFinetune);
  $("ft-cancel").onclick = guard(async () => { if (state.finetune) await api.json("DELETE", `/api/jobs/${state.finetune}`); });
  $("use-model").onclick = guard(async () => {
    const body = await api.json("POST", "/api/model", { name: $("models").value });
    await refreshFinetune();
    say(`the next propagations use ${body.model}`);
  });
  await refreshFinetune();
  await fromHash();
}

main().catch((err) => say(err.message, true));
