// The fine-tune panel: the workspace's sessions (refreshed whenever the workspace changes), ticked
// only by the person, with the server's plan for them (which session is held out for validation);
// the run followed through its event stream (read again after a drop, picked up again after a
// reload); the models with their state and size, only usable ones selectable, the others deletable.
import * as api from "./api.js";
import { state, $, element, guard, say, sessionLabels, workspaceChanged } from "./state.js";

const chosen = new Set();   // ids of the sessions the person ticked (nothing ticked by default)
let sessionNames = new Map();
let refreshing = null;      // the refresh under way: {again, done}
let planTicket = 0;         // the latest plan asked for: older answers are dropped
const ended = new Set();    // fine-tune jobs seen to their end (never followed again)

function size(bytes) {
  if (bytes == null) return "";
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
  return `${bytes.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function names(ids) {
  return (ids || []).map((id) => sessionNames.get(id) || id).join(", ");
}

function renderSessions(sessions, labels) {
  const need = state.info.finetune.min_annotated_frames;
  const usable = (s) => s.annotated.length >= need;
  for (const id of [...chosen]) if (!sessions.some((s) => s.id === id && usable(s))) chosen.delete(id);
  const rows = sessions.map((s) => {
    const box = element("input", { type: "checkbox", value: s.id, checked: chosen.has(s.id), disabled: !usable(s) });
    box.onchange = () => {
      if (box.checked) chosen.add(s.id); else chosen.delete(s.id);
      guard(showPlan)();
    };
    const { name, facts } = labels.get(s.id);
    return element("label", { className: "ft-session" + (usable(s) ? "" : " unusable") }, box, " ",
      element("b", { textContent: name }), element("small", { textContent: ` ${facts}${usable(s) ? "" : ` (needs ${need} annotated)`}` }));
  });
  const none = !sessions.some(usable);
  $("ft-sessions").replaceChildren(...rows,
    ...(none ? [element("span", { textContent: `annotate at least ${need} frames of a video first` })] : []));
}

async function showPlan() {
  // What the server would do with the ticked sessions: which one it holds out to validate on.
  const ticket = ++planTicket, sessions = [...chosen];
  if (!sessions.length) { $("ft-plan").textContent = ""; return; }
  let text;
  try {
    const plan = await api.json("POST", "/api/finetune/plan", { sessions, minutes: +$("ft-minutes").value });
    text = `trains on ${names(plan.trains_on)}` +
      (plan.held_out.length ? `; held out for validation: ${names(plan.held_out)}` : "; nothing held out for validation") +
      `; starts from ${plan.starts_from}`;
  } catch (err) {
    if (err.status !== 400) throw err;
    text = err.message;
  }
  if (ticket === planTicket) $("ft-plan").textContent = text;
}

function renderModels(models) {
  const { job_states: states, finished_job_states: finished } = state.info;
  const active = (m) => states.includes(m.state) && !finished.includes(m.state);   // queued or running
  const picked = document.querySelector("#models input:checked");
  const keep = picked ? picked.value : null;
  const rows = models.map((m) => {
    const radio = element("input", { type: "radio", name: "model", value: m.name, disabled: !m.usable,
                                     checked: m.usable && (keep ? keep === m.name : m.current) });
    const jf = m.val_jf == null ? "" : `J&F ${m.val_jf}` + (m.val_jf_before != null ? ` (before ${m.val_jf_before})` : "");
    const facts = [m === models[0] ? "" : m.state, size(m.size_bytes), jf, m.sessions ? `on ${names(m.sessions)}` : "",
                   m.held_out && m.held_out.length ? `validated on ${names(m.held_out)}` : "",
                   m.current ? "in use" : ""].filter(Boolean).join(" · ");
    const label = element("label", { title: m.error || "" }, radio, " ", element("b", { textContent: m.name }),
                          element("small", { textContent: ` ${facts}` }));
    const row = element("div", { className: "model" + (m.usable ? "" : " unusable") }, label);
    if (m !== models[0] && !m.current && !active(m)) {   // the start model is listed first and stays
      const remove = element("button", { className: "link", textContent: "delete", title: `delete the model ${m.name}` });
      remove.onclick = guard(() => deleteModel(m));
      row.append(remove);
    }
    return row;
  });
  $("models").replaceChildren(...rows);
  $("use-model").disabled = !models.some((m) => m.usable);
  // A run started before this page was loaded (or before a restart of the stream) is followed.
  const running = models.find((m) => m.job && active(m) && !ended.has(m.job));
  if (running && !state.finetune) followFinetune(running.job);
}

/** Lists the sessions and the models again (one refresh at a time, one more if asked meanwhile). */
export function refreshFinetune() {
  if (refreshing) { refreshing.again = true; return refreshing.done; }
  const run = refreshing = { again: false };
  run.done = (async () => {
    try {
      do {
        run.again = false;
        const [{ sessions }, { models }] = await Promise.all([api.sessions(), api.json("GET", "/api/models")]);
        const labels = sessionLabels(sessions);
        sessionNames = new Map([...labels].map(([id, label]) => [id, label.distinct]));
        renderSessions(sessions, labels);
        renderModels(models);
      } while (run.again);
    } finally {
      refreshing = null;
    }
    await showPlan();
  })();
  return run.done;
}

async function deleteModel(model) {
  if (!confirm(`Delete the model ${model.name}${model.size_bytes ? ` (${size(model.size_bytes)})` : ""}?`)) return;
  const body = await api.json("DELETE", `/api/models/${encodeURIComponent(model.name)}`);
  say(`model ${body.model} deleted (${size(body.freed_bytes)} freed)`);
  await refreshFinetune();
}

async function useModel() {
  const picked = document.querySelector("#models input:checked");
  if (!picked) throw new Error("pick a finished model first");
  const body = await api.json("POST", "/api/model", { name: picked.value });
  document.dispatchEvent(new CustomEvent("model-changed"));
  await refreshFinetune();
  say(`the next propagations use ${body.model}`);
}

async function startFinetune() {
  const sessions = [...chosen];
  if (!sessions.length) {
    throw new Error(`tick the videos to fine-tune on (each with at least ${state.info.finetune.min_annotated_frames} annotated frames)`);
  }
  const body = await api.json("POST", "/api/finetune", { sessions, minutes: +$("ft-minutes").value });
  chosen.clear();                      // the next run is chosen afresh
  followFinetune(body.job);
  await refreshFinetune();
}

function describe(job) {
  const jf = job.val_jf == null ? "" : `, validation J&F ${job.val_jf}` + (job.val_jf_before != null ? ` (before ${job.val_jf_before})` : "");
  const where = job.state === "queued" ? `queued (${job.position || "?"} in line)` : `${job.done}/${job.total || "?"} iterations`;
  const held = job.held_out && job.held_out.length ? `, validating on ${names(job.held_out)}` : "";
  return `${job.model || "fine-tuning"} ${job.state}: ${where}${jf}${held}`;
}

function followFinetune(jobId) {
  if (state.finetune) state.finetune.stop.abort();
  const stop = new AbortController();
  state.finetune = { id: jobId, stop };
  $("ft-cancel").disabled = false;
  const ours = () => state.finetune && state.finetune.id === jobId;
  const onState = (job) => { if (ours()) $("ft-text").textContent = describe(job); };
  const onDrop = () => { if (ours()) $("ft-text").textContent = "lost contact with the studio (stopped or restarting?): waiting for it…"; };
  guard(async () => {
    const job = await api.followJob(jobId, { finished: state.info.finished_job_states, onState, onDrop, signal: stop.signal });
    if (!job || !ours()) return;
    ended.add(jobId);
    state.finetune = null;
    $("ft-cancel").disabled = true;
    $("ft-text").textContent = describe(job);
    workspaceChanged();
    if (job.state === "done") say(`fine-tuned model ${job.model} is ready: pick it under "Models" and press "use this model"`);
    else if (job.error) say(`fine-tuning ${job.state}: ${job.error}`, true);
  })();
}

async function cancelFinetune() {
  if (state.finetune) await api.json("DELETE", `/api/jobs/${state.finetune.id}`);
}

/** The panel's limits and default from the server; refreshed whenever the workspace changes. */
export function bindFinetune() {
  const ft = state.info.finetune;
  Object.assign($("ft-minutes"), { min: ft.min_minutes, max: ft.max_minutes, value: ft.default_minutes });
  $("ft-start").disabled = !ft.available;
  if (!ft.available) $("ft-text").textContent = "fine-tuning needs the studio's start model as a file (--checkpoint)";
  $("ft-minutes").onchange = guard(showPlan);
  document.addEventListener("workspace-changed", guard(refreshFinetune));
  $("ft-start").onclick = guard(startFinetune);
  $("ft-cancel").onclick = guard(cancelFinetune);
  $("use-model").onclick = guard(useModel);
}
