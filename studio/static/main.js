// SimVOS studio page: the entry module. Takes the token, reads /api/info (every fact the page shows
// that the server knows), then wires the controls to the modules:
//   api.js (token, requests, event streams)   state.js (state, helpers)   overlay.js (the canvas)
//   tools.js (drawing, objects, undo)          frames.js (frames, drafts, annotations)
//   timeline.js   jobs.js (propagation)   finetune.js (fine-tuning, models)   exports.js   sessions.js
import * as api from "./api.js";
import { bindFinetune, refreshFinetune } from "./finetune.js";
import { discardDraft, importMask, loadFrame, removeAnnotation, saveAnnotation } from "./frames.js";
import { cancel, fillDirections, propagate, resumeJob } from "./jobs.js";
import { masksChanged, render } from "./overlay.js";
import { fromHash, openById, openFromVideos, refreshSessions, upload } from "./sessions.js";
import { state, $, element, guard, say } from "./state.js";
import { addObject, bindCanvas, clearObject, undo } from "./tools.js";

function showModelNote(info) {
  const note = $("model-note");
  note.hidden = !info.demo_model && info.published;
  if (note.hidden) return;
  note.textContent = (info.demo_model
    ? "This is the demo model, trained for minutes on synthetic videos: on real video it is worse than copying the first mask. "
    : `This checkpoint (${info.backbone}) is not a published SimVOS network. `) +
    "For real videos start the studio with published weights (python -m studio --checkpoint test_checkpoints/simvos_bs.pth " +
    `--variant simvos_bs)${info.weights_help ? `: ${info.weights_help}` : "."}`;
}

function bindControls() {
  $("sessions").onchange = guard(async (e) => { if (e.target.value) await openById(e.target.value); });
  $("videos").onchange = guard(async (e) => { if (e.target.value) await openFromVideos(e.target.value); });
  $("upload").onchange = guard(async (e) => { if (e.target.files[0]) await upload(e.target.files[0]); });
  $("import").onchange = guard(async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (file) await importMask(file);
  });
  $("add-object").onclick = addObject;
  $("undo").onclick = undo;
  $("clear").onclick = clearObject;
  $("discard").onclick = guard(discardDraft);
  $("unannotate").onclick = guard(removeAnnotation);
  $("save").onclick = guard(saveAnnotation);
  $("propagate").onclick = guard(propagate);
  $("cancel").onclick = guard(cancel);
  $("scrub").oninput = guard(async (e) => loadFrame(+e.target.value));
  $("opacity").oninput = render;                  // the opacity is the layer's alpha: nothing recoloured
  $("outline").onchange = () => masksChanged();   // the outline view recolours the layer once
  $("play").onclick = () => {
    if (state.playing) { clearInterval(state.playing); state.playing = null; $("play").textContent = "▶"; return; }
    $("play").textContent = "⏸";
    state.playing = setInterval(guard(async () => {
      if (state.frame >= state.session.frames - 1) { $("play").click(); return; }
      await loadFrame(state.frame + 1);
    }), 1000 / Math.min(state.session.fps || 10, 30));
  };
  window.addEventListener("beforeunload", (e) => {
    if (state.dirty || state.drafts.size) { e.preventDefault(); e.returnValue = ""; }
  });
  document.addEventListener("workspace-changed", guard(refreshSessions));
  document.addEventListener("model-changed", guard(async () => {   // the note follows the model in use
    state.info = await api.json("GET", "/api/info");
    showModelNote(state.info);
  }));
}

async function main() {
  if (!api.takeToken()) { say(api.NO_TOKEN, true); return; }
  const info = state.info = await api.json("GET", "/api/info");
  showModelNote(info);
  if (info.videos.length) {
    $("videos-box").hidden = false;
    $("videos").append(...info.videos.map((v) => element("option", { value: v, textContent: v })));
  }
  fillDirections(info.directions, info.until);
  bindCanvas();
  bindControls();
  bindFinetune();
  await Promise.all([refreshSessions(), refreshFinetune()]);
  await fromHash();
  resumeJob();
}

main().catch((err) => say(err.message, true));
