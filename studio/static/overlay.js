// The canvas: the frame with the masks over it.
//
// The masks' colours live in an offscreen canvas (one pixel per frame pixel), recoloured only where
// the labels changed: the whole of it when a frame's mask is loaded, replaced or the outline view is
// toggled, the brush's box while painting. The view is the frame and that canvas composited by the
// browser (drawImage with globalAlpha for the opacity), redrawn only inside the box that changed:
// no JavaScript loop over the frame's pixels per mouse move, and a change of opacity recolours nothing.
import { state, $, PALETTE } from "./state.js";

const layer = document.createElement("canvas");
const layerContext = layer.getContext("2d");
// label -> its colour as one RGBA word (little-endian: the bytes are r, g, b, a), 0 = transparent.
const WORD = new Uint32Array(256);
for (let label = 1; label < 256; label++) {
  const [r, g, b] = PALETTE[label];
  WORD[label] = ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

export const canvas = () => $("canvas");

/** Recolours the mask layer inside the box [x0, y0, x1, y1] (frame pixels, inclusive; the whole
 *  frame without one) from state.labels, then draws the view there. */
export function masksChanged(x0 = 0, y0 = 0, x1 = state.width - 1, y1 = state.height - 1) {
  const w = state.width, h = state.height, lab = state.labels;
  if (layer.width !== w || layer.height !== h) {
    layer.width = w; layer.height = h;
    [x0, y0, x1, y1] = [0, 0, w - 1, h - 1];
  }
  // An outline pixel depends on its neighbours: recolour one more pixel around the box.
  x0 = Math.max(0, x0 - 1); y0 = Math.max(0, y0 - 1); x1 = Math.min(w - 1, x1 + 1); y1 = Math.min(h - 1, y1 + 1);
  const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  const colours = layerContext.createImageData(bw, bh), words = new Uint32Array(colours.data.buffer);
  const outline = $("outline").checked;
  for (let y = y0, k = 0; y <= y1; y++) {
    for (let x = x0, i = y * w + x0; x <= x1; x++, i++, k++) {
      const v = lab ? lab[i] : 0;
      const shown = v && (!outline || (x > 0 && lab[i - 1] !== v) || (x < w - 1 && lab[i + 1] !== v) ||
                                      (y > 0 && lab[i - w] !== v) || (y < h - 1 && lab[i + w] !== v));
      words[k] = shown ? WORD[v] : 0;
    }
  }
  layerContext.putImageData(colours, x0, y0);
  render([x0, y0, x1, y1]);
}

/** Draws the view inside the box [x0, y0, x1, y1] (the whole frame without one): the frame, the
 *  masks at the chosen opacity, then the tools' marks. */
export function render(box = null) {
  const ctx = canvas().getContext("2d");
  if (!state.image) return;
  const [x0, y0, x1, y1] = box || [0, 0, state.width - 1, state.height - 1];
  const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  ctx.save();
  ctx.beginPath(); ctx.rect(x0, y0, bw, bh); ctx.clip();
  ctx.drawImage(state.image, x0, y0, bw, bh, x0, y0, bw, bh);
  if (state.labels && layer.width === state.width) {
    ctx.globalAlpha = $("outline").checked ? 1 : +$("opacity").value / 100;
    ctx.drawImage(layer, x0, y0, bw, bh, x0, y0, bw, bh);
    ctx.globalAlpha = 1;
  }
  drawMarks(ctx);
  ctx.restore();
}

function drawMarks(ctx) {
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
  ctx.globalAlpha = 0.6;
  for (const [colour, points] of strokes) {
    ctx.fillStyle = colour;
    for (const [x, y, r] of points) { ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fill(); }
  }
  ctx.globalAlpha = 1;
}

/** The frame pixel under a mouse event, clamped to the frame. */
export function point(event) {
  const c = canvas(), rect = c.getBoundingClientRect();
  const x = Math.round((event.clientX - rect.left) * c.width / rect.width);
  const y = Math.round((event.clientY - rect.top) * c.height / rect.height);
  return [Math.max(0, Math.min(state.width - 1, x)), Math.max(0, Math.min(state.height - 1, y))];
}
