// Sessions: opening one (an earlier session, a video of the --videos folder, an upload, the
// address's #session=...), the list of earlier sessions told apart by date and counts.
import * as api from "./api.js";
import { buildExports } from "./exports.js";
import { keepDraft, loadFrame } from "./frames.js";
import { canvas } from "./overlay.js";
import { state, $, element, say, sessionLabels, workspaceChanged } from "./state.js";
import { buildTimeline } from "./timeline.js";
import { renderObjects } from "./tools.js";

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
  const c = canvas();
  c.width = session.width; c.height = session.height;
  c.style.width = "100%"; c.style.maxWidth = `${Math.max(session.width, 760)}px`;  // small videos drawn larger
  $("main").hidden = false;
  $("scrub").max = session.frames - 1;
  $("progress").value = 0;
  if (!state.job) $("progress-text").textContent = "";
  buildTimeline(session);
  buildExports(state.info.exports);
  renderObjects();
  await loadFrame(frame ?? (session.annotated.length ? session.annotated[0] : 0), { keep: false });
  say(`${session.name}: ${session.frames} frames, ${session.width}x${session.height}, ${session.fps.toFixed(2)} fps`);
  workspaceChanged();
}

export async function refreshSessions() {
  const { sessions } = await api.sessions();
  const labels = sessionLabels(sessions);
  const options = sessions.map((s) => {
    const { name, facts } = labels.get(s.id);
    return element("option", { value: s.id, textContent: `${name} — ${facts}` });
  });
  $("sessions").replaceChildren(element("option", { value: "", textContent: "earlier sessions…" }), ...options);
  if (state.session) $("sessions").value = state.session.id;
}

export async function openById(id, frame = null) {
  await openSession(await api.json("GET", `/api/sessions/${encodeURIComponent(id)}`), frame);
}

export async function openFromVideos(name) {
  say("opening the video…");
  await openSession(await api.json("POST", "/api/sessions", { video: name }));
}

export async function upload(file) {
  const limit = state.info.limits.max_upload_mb;
  if (file.size > limit * 2 ** 20) throw new Error(`${file.name} is larger than the studio takes (--max_upload_mb ${limit})`);
  say(`uploading ${file.name}…`);
  const form = new FormData();
  form.append("video", file);
  const res = await api.call("POST", "/api/sessions", form);
  await openSession(await res.json());
}

/** Opens the session (and frame) the address names (#session=...&frame=...), if any. */
export async function fromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const id = params.get("session");
  if (!id) return;
  try {
    await openById(id, params.has("frame") ? +params.get("frame") : null);
  } catch (err) { say(`the session of this address could not be opened: ${err.message}`, true); }
}
