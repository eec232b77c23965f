// The timeline: a thumbnail per step of frames (at most about 300), fetched with the token once
// scrolled into view, marked annotated / computed / draft / current.
import * as api from "./api.js";
import { loadFrame } from "./frames.js";
import { state, $, element, guard, pad } from "./state.js";

const MAX_THUMBS = 300;
let thumbs = null;   // the IntersectionObserver that fetches thumbnails as they come into view

export function buildTimeline(session) {
  if (!thumbs) {
    thumbs = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        thumbs.unobserve(entry.target);
        const { session: sid, frame } = entry.target.dataset;
        api.showImage(entry.target, `/api/sessions/${sid}/frames/thumb_${pad(+frame)}.jpg`).catch(() => {
          entry.target.alt = `frame ${frame} (not loaded)`;
        });
      }
    }, { root: $("timeline"), rootMargin: "0px 600px" });
  }
  thumbs.disconnect();
  const timeline = $("timeline");
  timeline.replaceChildren();
  const step = Math.max(1, Math.ceil(session.frames / MAX_THUMBS));
  state.timelineStep = step;
  for (let i = 0; i < session.frames; i += step) {
    const t = element("img", { alt: `frame ${i}`, title: `frame ${i}`, dataset: { frame: i, session: session.id } });
    t.onclick = guard(() => loadFrame(i));
    timeline.append(t);
    thumbs.observe(t);
  }
}

export function markTimeline(scroll = false) {
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
