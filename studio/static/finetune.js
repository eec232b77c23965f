// The fine-tune panel: the workspace's sessions (refreshed whenever the workspace changes), ticked
// only by the person; the run followed through its event stream (read again after a drop); the
// models with their state and size, only usable ones selectable, the others deletable.
import * as api from "./api.js";
import { state, $, element, guard, say, workspaceChanged } from "./state.js";

const chosen = new Set();   // ids of the sessions the person ticked (nothing ticked by default)
let sessionNames = new Map();
let pending = null;

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

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

function renderSessions(sessions) {
  const need = state.info.finetune.min_annotated_frames;
  const present = new Set(sessions.map((s) => s.id));
  for (const id of [...chosen]) if (!present.has(id)) chosen.delete(id);
  const rows = sessions.map((s) => {
    const usable = s.annotated.length >= need;
    if (!usable) chosen.delete(s.id);
    const box = element("input", { type: "checkbox", value: s.id, checked: chosen.has(s.id), disabled: !usable });
    box.onchange = () => { if (box.checked) chosen.add(s.id); else chosen.delete(s.id); };
    const facts = `${when(s.created)} · ${s.annotated.length} annotated / ${s.frames} frames` +
      (usable ? "" : ` (needs ${need} annotated)`);
    return element("label", { className: "ft-session" + (usable ? "" : " unusable") }, box, " ",
      element("b", { textContent: s.name }), element("small", { textContent: ` ${facts}` }));
  });
  const none = !sessions.some((s) => s.annotated.length >= need);
  $("ft-sessions").replaceChildren(...rows,
    ...(none ? [element("span", { textContent: `annotate at least ${need} frames of a video first` })] : []));
}

function renderModels(models) {
  const picked = document.querySelector("#models input:checked");
  const keep = picked ? picked.value : null;
  const rows = models.map((m) => {
    const usable = m.usable !== false;
    const radio = element("input", { type: "radio", name: "model", value: m.name, disabled: !usable,
                                     checked: usable && (keep ? keep === m.name : m.current) });
    const facts = [m.state && m.state !== "done" ? m.state : "", size(m.size_bytes),
                   m.val_jf != null ? `J&F ${m.val_jf}` + (m.val_jf_before != null ? ` (before ${m.val_jf_before})` : "") : "",
                   m.sessions ? `on ${names(m.sessions)}` : "", m.held_out && m.held_out.length ? `validated on ${names(m.held_out)}` : "",
                   m.current ? "in use" : ""].filter(Boolean).join(" · ");
    const row = element("div", { className: "model" + (usable ? "" : " unusable") },
      element("label", {}, radio, " ", element("b", { textContent: m.name }), element("small", { textContent: facts ? ` ${facts}` : "" })));
    if (m.name !== "start" && !m.current) {
      const remove = element("button", { className: "link", textContent: "delete", title: `delete the model ${m.name}` });
      remove.onclick = guard(() => deleteModel(m));
      row.append(remove);
    }
    return row;
  });
  $("models").replaceChildren(...rows);
  $("use-model").disabled = !models.some((m) => m.usable !== false);
}

/** Lists the sessions and the models again (coalesced: one refresh at a time, one more if asked meanwhile). */
export function refreshFinetune() {
  if (pending) { pending.again = true; return pending.done; }
  pending = { again: false };
  pending.done = (async () => {
    try {
      do {
        pending.again = false;
        const [{ sessions }, { models }] = await Promise.all([api.json("GET", "/api/sessions"), api.json("GET", "/api/models")]);
        sessionNames = new Map(sessions.map((s) => [s.id, s.name]));
        renderSessions(sessions);
        renderModels(models);
      } while (pending.again);
    } finally {
      pending = null;
    }
  })();
  return pending.done;
}

async function deleteModel(model) {
  if (!confirm(`Delete the model ${model.name}${model.size_bytes ? ` (${size(model.size_bytes)})` : ""}?`)) return;
  await api.json("DELETE", `/api/models/${encodeURIComponent(model.name)}`);
  say(`model ${model.name} deleted`);
  await refreshFinetune();
}

export async function useModel() {
  const picked = document.querySelector("#models input:checked");
  if (!picked) throw new Error("pick a finished model first");
  const body = await api.json("POST", "/api/model", { name: picked.value });
  await refreshFinetune();
  say(`the next propagations use ${body.model}`);
}

export async function startFinetune() {
  const sessions = [...chosen];
  const need = state.info.finetune.min_annotated_frames;
  if (!sessions.length) throw new Error(`tick the videos to fine-tune on (each with at least ${need} annotated frames)`);
  const body = await api.json("POST", "/api/finetune", { sessions, minutes: +$("ft-minutes").value });
  chosen.clear();                      // the next run is chosen afresh
  await refreshFinetune();
  followFinetune(body.job);
}

function describe(job) {
  const jf = job.val_jf == null ? "" : `, validation J&F ${job.val_jf}` + (job.val_jf_before != null ? ` (before ${job.val_jf_before})` : "");
  const where = job.state === "queued" ? `queued (${job.position || "?"} in line)` : `${job.done}/${job.total || "?"} iterations`;
  const held = job.held_out && job.held_out.length ? `, validating on ${names(job.held_out)}` : "";
  return `${job.state}: ${where}${jf}${held}`;
}

export function followFinetune(jobId) {
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
    state.finetune = null;
    $("ft-cancel").disabled = true;
    $("ft-text").textContent = describe(job);
    workspaceChanged();
    if (job.state === "done") say(`fine-tuned model ${job.model} is ready: pick it under "model" and press "use this model"`);
    else if (job.error) say(`fine-tuning ${job.state}: ${job.error}`, true);
  })();
}

export async function cancelFinetune() {
  if (state.finetune) await api.json("DELETE", `/api/jobs/${state.finetune.id}`);
}

/** The panel's limits and default from the server; refreshed whenever the workspace changes. */
export function bindFinetune() {
  const ft = state.info.finetune;
  Object.assign($("ft-minutes"), { min: ft.min_minutes ?? "", max: ft.max_minutes, value: ft.default_minutes });
  document.addEventListener("workspace-changed", guard(refreshFinetune));
  $("ft-start").onclick = guard(startFinetune);
  $("ft-cancel").onclick = guard(cancelFinetune);
  $("use-model").onclick = guard(useModel);
}
