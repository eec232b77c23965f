// The page's one state object and the small helpers every module uses. No server string is ever
// parsed as HTML: elements are built and their text set (textContent).

export const state = {
  info: null,         // GET /api/info: every fact the server knows (limits, states, directions, exports)
  session: null, frame: 0, labels: null, width: 0, height: 0,
  object: 1, objects: [1], undo: [], dirty: false, image: null, playing: null,
  polygon: [], drag: null, stroke: null,
  grab: null,         // the current GrabCut: {box, foreground: [[x, y, r]], background: [...], before: labels}
  drafts: new Map(),  // frame -> {labels, undo, grab}: unsaved drawings kept when moving away
  job: null,          // the propagation followed: {id, session, stop (AbortController), last}
  finetune: null,     // the fine-tune followed: {id, stop}
  loading: 0,         // the latest frame request: older answers are dropped
  timelineStep: 1,    // frames per thumbnail
};

export const $ = (id) => document.getElementById(id);

export function say(text, error = false) {
  const m = $("message");
  m.textContent = text;
  m.className = error ? "error" : "";
}

export function element(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style") Object.assign(el.style, value);
    else el[key] = value;
  }
  for (const child of children) el.append(child);
  return el;
}

/** An event handler whose errors are shown as the page's one message line. */
export function guard(fn) {
  return async (...args) => { try { await fn(...args); } catch (err) { say(err.message, true); } };
}

export function pad(i) { return String(i).padStart(5, "0"); }

/** A session's creation time (ISO 8601 from the server) as this browser words dates. */
export function when(iso) {
  return new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "medium" });
}

/** How a person tells the sessions apart: id -> {name, facts, distinct}. ``name``: the session's
 *  name, with the video it came from when that says more, and its id when another session has the
 *  same name and date; ``facts``: date, annotated and total frames; ``distinct``: the name alone
 *  where it is unique, else with its date (for sentences that name sessions). */
export function sessionLabels(sessions) {
  const count = (same) => sessions.filter(same).length;
  return new Map(sessions.map((s) => {
    const video = s.video && s.video !== s.name && !s.video.startsWith(`${s.name}.`) ? ` (${s.video})` : "";
    const twin = count((o) => o.name === s.name && o.created === s.created) > 1 ? ` #${s.id.slice(0, 6)}` : "";
    const name = s.name + video + twin;
    const distinct = count((o) => o.name === s.name) > 1 ? `${name} of ${when(s.created)}` : name;
    return [s.id, { name, distinct, facts: `${when(s.created)}, ${s.annotated.length} annotated / ${s.frames} frames` }];
  }));
}

/** The workspace changed (a session created, an annotation saved or removed, a job ended): the
 *  panels that list sessions or models refresh themselves. */
export function workspaceChanged() {
  document.dispatchEvent(new CustomEvent("workspace-changed"));
}

// The DAVIS palette: label -> [r, g, b], and back.
export const PALETTE = [];
export const COLOUR_TO_LABEL = new Map();
for (let label = 0; label < 256; label++) {
  let r = 0, g = 0, b = 0, c = label;
  for (let bit = 0; bit < 8; bit++) {
    r |= ((c >> 0) & 1) << (7 - bit); g |= ((c >> 1) & 1) << (7 - bit); b |= ((c >> 2) & 1) << (7 - bit);
    c >>= 3;
  }
  PALETTE.push([r, g, b]);
  if (!COLOUR_TO_LABEL.has((r << 16) | (g << 8) | b)) COLOUR_TO_LABEL.set((r << 16) | (g << 8) | b, label);
}
