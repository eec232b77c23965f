// The drawing tools on the canvas (brush, eraser, polygon, GrabCut box and strokes), the objects
// list (ids bounded by the server's max_objects) and undo.
import * as api from "./api.js";
import { masksChanged, point, render, canvas } from "./overlay.js";
import { state, $, element, guard, say, PALETTE } from "./state.js";
import { labelFrame } from "./frames.js";
import { markTimeline } from "./timeline.js";

const UNDO_BYTES = 256 * 2 ** 20;  // the undo history of one frame keeps at most this many bytes of label maps

function tool() { return document.querySelector("input[name=tool]:checked").value; }

// ------------------------------------------------------------------ objects
export function renderObjects() {
  const max = state.info.max_objects;
  const box = $("objects");
  box.replaceChildren();
  for (const id of state.objects) {
    const swatch = element("span", { className: "swatch", style: { background: `rgb(${PALETTE[id].join(",")})` } });
    const el = element("span", { className: "object" + (id === state.object ? " active" : "") }, swatch, String(id));
    el.onclick = () => { state.object = id; renderObjects(); };
    box.append(el);
  }
  const full = Math.max(0, ...state.objects) >= max;
  $("add-object").disabled = full;
  $("add-object").title = full ? `the studio takes at most ${max} objects per video` : "";
}

export function addObject() {
  const id = Math.max(0, ...state.objects) + 1;
  if (id > state.info.max_objects) {
    say(`at most ${state.info.max_objects} objects per video: reuse an object id or clear one`, true);
    return;
  }
  state.objects.push(id); state.object = id; state.grab = null;
  renderObjects();
}

/** Adds the objects present in the labels to the objects list. */
export function knowObjects(labels) {
  const present = new Uint8Array(256);
  for (let i = 0; i < labels.length; i++) present[labels[i]] = 1;
  for (let v = 1; v < 256; v++) if (present[v] && !state.objects.includes(v)) state.objects.push(v);
  state.objects.sort((a, b) => a - b);
}

// ------------------------------------------------------------------ undo
function snapshot() {
  const g = state.grab;
  return { labels: state.labels.slice(), grab: g && {
    box: g.box && g.box.slice(), foreground: g.foreground.slice(), background: g.background.slice(), before: g.before } };
}

function remember() {
  state.undo.push(snapshot());
  const keep = Math.max(2, Math.min(40, Math.floor(UNDO_BYTES / state.labels.length)));
  while (state.undo.length > keep) state.undo.shift();
}

export function undo() {
  if (!state.undo.length) return;
  const last = state.undo.pop();
  state.labels = last.labels; state.grab = last.grab;
  changed();
}

export function clearObject() {
  remember();
  state.labels = state.labels.map((v) => (v === state.object ? 0 : v));
  state.grab = null;
  changed();
}

/** The labels changed (inside the box, else anywhere): a draft now, redrawn there. */
export function changed(box) {
  if (!state.dirty) { state.dirty = true; markTimeline(); labelFrame(); }   // the frame's draft marked once
  if (box) masksChanged(...box);
  else masksChanged();
}

// ------------------------------------------------------------------ brush, eraser, polygon
function paint([x0, y0], [x1, y1]) {
  // A disc of the brush's radius along the segment: the current object (brush) or nothing where the
  // current object was (eraser); only the segment's box is recoloured.
  const r = +$("size").value, value = tool() === "eraser" ? 0 : state.object, lab = state.labels, w = state.width;
  const steps = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) / Math.max(1, r / 2)));
  for (let s = 0; s <= steps; s++) {
    const x = Math.round(x0 + (x1 - x0) * s / steps), y = Math.round(y0 + (y1 - y0) * s / steps);
    for (let yy = Math.max(0, y - r); yy <= Math.min(state.height - 1, y + r); yy++) {
      for (let xx = Math.max(0, x - r); xx <= Math.min(w - 1, x + r); xx++) {
        if ((xx - x) ** 2 + (yy - y) ** 2 > r * r) continue;
        const i = yy * w + xx;
        if (value || lab[i] === state.object) lab[i] = value;
      }
    }
  }
  changed([Math.min(x0, x1) - r, Math.min(y0, y1) - r, Math.max(x0, x1) + r, Math.max(y0, y1) + r]
    .map((v, k) => Math.max(0, Math.min(k % 2 ? state.height - 1 : w - 1, v))));
}

function fillPolygon(points) {
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  const x0 = Math.min(...xs), y0 = Math.min(...ys), x1 = Math.max(...xs), y1 = Math.max(...ys);
  const off = element("canvas", { width: x1 - x0 + 1, height: y1 - y0 + 1 });
  const ctx = off.getContext("2d");
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(x - x0, y - y0) : ctx.moveTo(x - x0, y - y0)));
  ctx.closePath(); ctx.fill();
  const alpha = ctx.getImageData(0, 0, off.width, off.height).data;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      if (alpha[4 * ((y - y0) * off.width + (x - x0)) + 3] > 127) state.labels[y * state.width + x] = state.object;
    }
  }
  changed([x0, y0, x1, y1]);
}

// ------------------------------------------------------------------ GrabCut
async function objectMaskBase64(labels) {
  // The current object's mask as a binary PNG, base64: GrabCut refines it with the strokes.
  const off = element("canvas", { width: state.width, height: state.height });
  const ctx = off.getContext("2d"), img = ctx.createImageData(state.width, state.height);
  const words = new Uint32Array(img.data.buffer);
  for (let i = 0; i < labels.length; i++) words[i] = labels[i] === state.object ? 0xffffffff : 0xff000000;
  ctx.putImageData(img, 0, 0);
  const blob = await new Promise((resolve) => off.toBlob(resolve, "image/png"));
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

export async function decodeImage(blob) {
  const bitmap = await createImageBitmap(blob);
  const off = element("canvas", { width: bitmap.width, height: bitmap.height });
  const ctx = off.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return ctx.getImageData(0, 0, off.width, off.height).data;
}

async function grabcut(refine) {
  // A new box: GrabCut inside it, the object's result replaces its old pixels. A stroke: GrabCut
  // starts from the object's current mask and the strokes are hard constraints.
  const g = state.grab, frame = state.frame, session = state.session;
  say("GrabCut…");
  const body = { frame, box: g.box, foreground: g.foreground, background: g.background };
  if (refine) body.mask = await objectMaskBase64(state.labels);
  const res = await api.call("POST", `/api/sessions/${session.id}/grabcut`, JSON.stringify(body), "application/json");
  const mask = await decodeImage(await res.blob());
  if (frame !== state.frame || session !== state.session) return;  // the user moved on: the answer is another frame's
  const next = (refine ? state.labels : g.before).slice();
  for (let i = 0; i < next.length; i++) {
    if (next[i] === state.object) next[i] = 0;
    if (mask[4 * i] > 127) next[i] = state.object;
  }
  state.labels = next;
  changed();
  say("GrabCut done: + / − strokes refine it (each keeps its size); brush and eraser fix the edges; then save as annotation.");
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

// ------------------------------------------------------------------ the mouse and the keyboard
export function bindCanvas() {
  const c = canvas();
  let down = false, last = null;
  c.addEventListener("mousedown", (e) => {
    if (!state.labels) return;
    const p = point(e), t = tool();
    if (t === "brush" || t === "eraser") { remember(); down = "paint"; last = p; paint(p, p); }
    if (t === "grabcut") state.drag = [...p, ...p];
    if (t === "grab-fg" || t === "grab-bg") {
      remember();
      if (!state.grab) state.grab = { box: null, foreground: [], background: [], before: state.labels.slice() };
      state.stroke = t === "grab-fg" ? state.grab.foreground : state.grab.background;
      state.stroke.push([...p, +$("size").value]);
      down = "hint"; render();
    }
    if (t === "polygon") { state.polygon.push(p); render(); }
  });
  c.addEventListener("mousemove", (e) => {
    if (down === "hint") { state.stroke.push([...point(e), +$("size").value]); render(); return; }
    if (down === "paint") { const p = point(e); paint(last, p); last = p; }
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
  const closePolygon = () => {
    if (state.polygon.length > 2) { remember(); fillPolygon(state.polygon); }
    state.polygon = []; render();
  };
  c.addEventListener("dblclick", () => { if (tool() === "polygon") closePolygon(); });
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && state.polygon.length > 2) closePolygon();
    if ((e.ctrlKey || e.metaKey) && e.key === "z") undo();
  });
}
