// Propagation jobs: the direction and range chosen (the directions are the server's), the job's
// event stream followed (read again after a drop, until the job is in one of the server's finished
// states; after a reload of the tab too), progress, the frames it computes shown as they come.
import * as api from "./api.js";
import { loadFrame, saveAnnotation } from "./frames.js";
import { state, $, element, guard, say, workspaceChanged } from "./state.js";
import { markTimeline } from "./timeline.js";

const FOLLOWED = "simvos-studio-job";   // sessionStorage: the job this tab follows, kept across a reload

// How the page words the server's directions (a direction it does not know is shown as is).
const DIRECTION_WORDS = { forward: "forward", backward: "backward", both_ways: "both ways from this frame" };

// How the page words where a job stops (the server's choices; one it does not know is shown as is).
const UNTIL_WORDS = { end: "to the end", next: "up to the next annotated frame" };

export function fillDirections(directions, until) {
  $("direction").replaceChildren(...directions.map((d) => element("option", { value: d, textContent: DIRECTION_WORDS[d] || d })));
  $("until").replaceChildren(...until.map((u) => element("option", { value: u, textContent: UNTIL_WORDS[u] || u })));
  $("until").value = until.includes("end") ? "end" : until[0];
}

function setRunning(running) {
  $("cancel").disabled = !running; $("propagate").disabled = running;
}

export async function propagate() {
  if (state.dirty) await saveAnnotation();
  const body = await api.json("POST", `/api/sessions/${state.session.id}/propagate`,
    { frame: state.frame, direction: $("direction").value, until: $("until").value });
  if (body.note) say(body.note);
  watchJob(body.job, state.session.id);
}

export async function cancel() {
  if (state.job) await api.json("DELETE", `/api/jobs/${state.job.id}`);
}

function showProgress(job) {
  $("progress").max = Math.max(job.total, 1); $("progress").value = job.done;
  let text = `${job.done}/${job.total} frames`;
  if (job.state === "queued") {
    text = `queued (${job.position || "?"} in line` + (job.waiting_for ? `, after the ${job.waiting_for.label}` : "") + ")";
  } else if (job.state === "running") {
    text += `, ${job.fps} FPS` + (job.eta_seconds == null ? "" : `, ETA ${Math.round(job.eta_seconds)} s`);
  }
  $("progress-text").textContent = text;
}

function watchJob(jobId, sessionId) {
  if (state.job) state.job.stop.abort();
  const stop = new AbortController();
  state.job = { id: jobId, session: sessionId, stop, last: null };
  sessionStorage.setItem(FOLLOWED, JSON.stringify({ job: jobId, session: sessionId }));
  setRunning(true);
  const ours = () => state.job && state.job.id === jobId;
  // Each state shown; a frame that fails to load is said, and the job is followed on.
  const onState = guard(async (job) => {
    if (!ours()) return;
    const mine = state.session && state.session.id === sessionId;
    if (mine) showProgress(job);
    if (mine && job.last_frame != null && job.last_frame !== state.job.last) {
      state.job.last = job.last_frame;
      if (!state.session.computed_frames.includes(job.last_frame)) state.session.computed_frames.push(job.last_frame);
      markTimeline();
      if ($("follow").checked && !state.dirty) await loadFrame(job.last_frame);
      else if (job.last_frame === state.frame && !state.dirty) await loadFrame(state.frame, { keep: false });
    }
  });
  const onDrop = () => { if (ours()) say("lost contact with the studio (stopped or restarting?): waiting for it…", true); };
  guard(async () => {
    const job = await api.followJob(jobId, { finished: state.info.finished_job_states, onState, onDrop, signal: stop.signal });
    if (job && ours()) await jobEnded(job);
  })();
}

/** Follows again the job this tab followed before a reload, if any. */
export function resumeJob() {
  const kept = JSON.parse(sessionStorage.getItem(FOLLOWED) || "null");
  if (kept) watchJob(kept.job, kept.session);
}

async function jobEnded(job) {
  const sessionId = state.job.session;
  state.job = null;
  sessionStorage.removeItem(FOLLOWED);
  setRunning(false);
  workspaceChanged();
  if (!state.session || state.session.id !== sessionId) return;
  showProgress(job);
  Object.assign(state.session, await api.json("GET", `/api/sessions/${state.session.id}`));
  if (!state.dirty) await loadFrame(state.frame, { keep: false });
  markTimeline();
  if (job.error) say(`propagation ${job.state}: ${job.error}`, true);
  else say(`propagation ${job.state}: ${job.done} of ${job.total} frames in ${job.seconds} s`);
}
