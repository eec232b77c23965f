// A frame and its mask: loading (the mask asked for only when the session lists the frame as
// annotated or computed), unsaved drafts kept when moving away, saving, importing and removing an
// annotation.
import * as api from "./api.js";
import { masksChanged } from "./overlay.js";
import { state, $, element, pad, say, workspaceChanged, COLOUR_TO_LABEL, PALETTE } from "./state.js";
import { markTimeline } from "./timeline.js";
import { decodeImage, knowObjects, renderObjects } from "./tools.js";

let annotatedHere = false;   // the server says the shown frame's mask is an annotation

/** "frame i / n" with what the shown frame holds: an unsaved draft, an annotation, a computed mask. */
export function labelFrame() {
  const s = state.session, frame = state.frame;
  const what = state.dirty ? " (unsaved draft)" : annotatedHere || s.annotated.includes(frame) ? " (annotated)" :
    s.computed_frames.includes(frame) ? " (computed)" : "";
  $("frame-label").textContent = `frame ${frame} / ${s.frames - 1}${what}`;
}

export function keepDraft() {
  if (state.session && state.dirty && state.labels) {
    state.drafts.set(state.frame, { labels: state.labels, undo: state.undo, grab: state.grab });
  }
}

/** Shows frame ``index`` of the open session with its draft, else its mask (annotation or result). */
export async function loadFrame(index, { keep = true } = {}) {
  const s = state.session;
  if (!s) return;
  if (keep) keepDraft();
  const ticket = ++state.loading;
  const frame = Math.max(0, Math.min(index, s.frames - 1));
  const image = await api.bitmap(`/api/sessions/${s.id}/frames/${pad(frame)}.jpg`);
  let labels = new Uint8Array(s.width * s.height), annotated = false;
  const draft = state.drafts.get(frame);
  if (!draft && (s.annotated.includes(frame) || s.computed_frames.includes(frame))) {
    const res = await api.call("GET", `/api/sessions/${s.id}/masks/${pad(frame)}.png`);
    if (res.status !== 204) {  // 204: the mask went since the session was listed
      annotated = res.headers.get("X-Annotated") === "true";
      const px = await decodeImage(await res.blob());
      for (let i = 0; i < labels.length; i++) labels[i] = COLOUR_TO_LABEL.get((px[4 * i] << 16) | (px[4 * i + 1] << 8) | px[4 * i + 2]) || 0;
    }
  }
  if (ticket !== state.loading || s !== state.session) { image.close(); return; }  // a newer request won
  if (state.image) state.image.close();
  state.frame = frame; state.image = image; state.polygon = []; state.drag = null;
  if (draft) {
    state.labels = draft.labels; state.undo = draft.undo; state.grab = draft.grab; state.dirty = true;
    state.drafts.delete(frame);
  } else {
    state.labels = labels; state.undo = []; state.grab = null; state.dirty = false;
  }
  knowObjects(state.labels);
  renderObjects();
  $("scrub").value = frame;
  annotatedHere = annotated;
  labelFrame();
  $("unannotate").disabled = !s.annotated.includes(frame);
  location.replace(`#session=${s.id}&frame=${frame}`);
  markTimeline(true);
  masksChanged();
}

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

async function refreshSession() {
  Object.assign(state.session, await api.json("GET", `/api/sessions/${state.session.id}`));
  workspaceChanged();
}

export async function saveAnnotation() {
  if (!state.labels.some((v) => v)) throw new Error("the mask is empty: draw an object first");
  const frame = state.frame, session = state.session;
  const res = await api.call("PUT", `/api/sessions/${session.id}/masks/${pad(frame)}.png`, await labelsAsPng(), "image/png");
  const body = await res.json();
  session.annotated = body.annotated;
  if (session !== state.session) return;
  if (frame === state.frame) state.dirty = false;
  await loadFrame(state.frame, { keep: false });
  say(`frame ${frame} saved as an annotation (objects ${body.objects.join(", ")})`);
  await refreshSession();
}

export async function removeAnnotation() {
  const frame = state.frame;
  if (!confirm(`Remove the annotation of frame ${frame}? (Its computed mask, if any, stays until the next propagation.)`)) return;
  const body = await api.json("DELETE", `/api/sessions/${state.session.id}/masks/${pad(frame)}.png`);
  state.session.annotated = body.annotated;
  state.drafts.delete(frame);
  await refreshSession();
  await loadFrame(frame, { keep: false });
  say(`frame ${frame} is no longer annotated`);
}

export async function importMask(file) {
  await api.call("PUT", `/api/sessions/${state.session.id}/masks/${pad(state.frame)}.png`, file, "image/png");
  await refreshSession();
  state.dirty = false;
  await loadFrame(state.frame, { keep: false });
  say(`imported ${file.name} as the annotation of frame ${state.frame}`);
}

export async function discardDraft() {
  state.dirty = false;
  state.drafts.delete(state.frame);
  await loadFrame(state.frame, { keep: false });
  say("draft discarded");
}
