"""An evaluation report to look at: ``<results>/report/index.html``, a static page (no server, no
network) with its plots and overlays next to it.

    python -m evaluation.report --results_path results/ckpt --davis_path DAVIS/2017/trainval [--set val]
    python -m evaluation.report --results_path OUT --gt GT_DIR [--pred PRED_DIR] [--images FRAMES_DIR]
    ... --compare results/other_ckpt        # per-sequence differences between two checkpoints

Per-frame J and F come from the J&F pass (evaluation/jf.py), never recomputed; frames are decoded
only for the strips and animations of the worst sequences.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import time
from dataclasses import dataclass

import cv2
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from dataset.davis import IMAGE_EXTENSIONS
from dataset.palette_io import read_label_png, read_rgb
from evaluation.jf import GLOBAL_COLUMNS, SequenceScores, add_scoring_flags, evaluate, result_tables, scoring_inputs
from dataset.video_io import write_animation
from outputs.formats import overlay
from util.cli import run_cli

LOST = 0.5          # J below this: the object counts as lost on that frame
STRIP_CONTEXT = 2   # frames shown on each side of a sequence's worst frame
GIF_WIDTH = 640     # an animation's width (ground truth | prediction), at most


@dataclass
class SequenceSummary:
    name: str
    jf: float
    j: float
    f: float
    scores: SequenceScores

    @property
    def worst_frame(self) -> int:
        """Index (among the scored frames) of the frame with the lowest J averaged over objects."""
        return int(np.argmin(self.scores.J.mean(0)))


def summarise(metrics: dict) -> list[SequenceSummary]:
    """One entry per sequence, worst J&F first: J&F = (mean of object J-Means + mean of F-Means) / 2."""
    rows = []
    for name, s in metrics["frames"].items():
        j = float(np.mean(np.nanmean(s.J, axis=1))) if len(s.frames) else float("nan")
        f = float(np.mean(np.nanmean(s.F, axis=1))) if len(s.frames) else float("nan")
        rows.append(SequenceSummary(name, (j + f) / 2, j, f, s))
    return sorted(rows, key=lambda r: (r.jf, r.name))


# ---------------------------------------------------------------------------- plots
def _save(fig: Figure, path: str) -> str:
    fig.savefig(path, dpi=80, bbox_inches="tight")
    return os.path.basename(path)


def bar_chart(rows: list[SequenceSummary], path: str) -> str:
    """Per-sequence J and F as horizontal bars, worst J&F at the top."""
    fig = Figure(figsize=(7, 0.8 + 0.22 * len(rows)))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [r.j for r in rows], height=0.4, label="J (region)", color="#4c72b0")
    ax.barh(y + 0.2, [r.f for r in rows], height=0.4, label="F (boundary)", color="#dd8452")
    ax.set_yticks(y, [r.name for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.axvline(LOST, color="grey", lw=0.8, ls=":")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title("per sequence, worst J&F first", fontsize=9)
    return _save(fig, path)


def timeline(row: SequenceSummary, path: str) -> str:
    """J over the scored frames, one line per object; frames where an object's J < 0.5 marked. The
    axis counts frames as the titles and strips name them (the file stems' numbers)."""
    s = row.scores
    fig = Figure(figsize=(6, 1.9))
    ax = fig.add_subplot()
    numbered = all(stem.isdigit() for stem in s.frames)
    t = np.array([int(stem) for stem in s.frames]) if numbered else np.arange(1, len(s.frames) + 1)
    for k, obj in enumerate(s.objects):
        line, = ax.plot(t, s.J[k], lw=1.2, label=f"object {obj}")
        lost = s.J[k] < LOST
        ax.plot(t[lost], s.J[k][lost], "x", color=line.get_color(), ms=5)
    ax.axhline(LOST, color="grey", lw=0.8, ls=":")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("frame" if numbered else "scored frame (frame 0 is the annotation)", fontsize=7)
    ax.set_ylabel("J", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.set_title(f"{row.name}: J&F {row.jf:.3f} (x: J < {LOST})", fontsize=8)
    ax.legend(fontsize=6, loc="lower left", ncol=min(len(s.objects), 5))
    return _save(fig, path)


# ---------------------------------------------------------------------------- overlays
def _frame(image_root: str | None, seq: str, stem: str, shape: tuple[int, int]) -> np.ndarray:
    """The RGB frame of ``stem`` (any image extension), or mid-grey when there are no frames."""
    if image_root:
        for ext in IMAGE_EXTENSIONS:
            path = os.path.join(image_root, seq, stem + ext)
            if os.path.isfile(path):
                return read_rgb(path)
    return np.full((*shape, 3), 128, np.uint8)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """The image with ``text`` once, in white on a dark banner across its top."""
    out = img.copy()
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
    cv2.rectangle(out, (0, 0), (min(width + 8, out.shape[1] - 1), height + base + 6), (20, 20, 20), thickness=-1)
    cv2.putText(out, text, (4, height + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def strip(row: SequenceSummary, gt_root: str, pred_root: str, image_root: str | None, path: str) -> str:
    """Frames around the worst one, a row each: frame | ground truth | prediction."""
    s, worst = row.scores, row.worst_frame
    rows = []
    for t in range(max(worst - STRIP_CONTEXT, 0), min(worst + STRIP_CONTEXT + 1, len(s.frames))):
        stem = s.frames[t]
        gt = read_label_png(os.path.join(gt_root, row.name, stem + ".png"), "ground truth")
        pred = read_label_png(os.path.join(pred_root, row.name, stem + ".png"), "prediction")
        rgb = _frame(image_root, row.name, stem, gt.shape)
        mark = " (worst)" if t == worst else ""
        rows.append(np.concatenate([_label(rgb, f"frame {stem}{mark}"),
                                    _label(overlay(rgb, gt), "ground truth"),
                                    _label(overlay(rgb, pred), f"prediction, J {s.J[:, t].mean():.2f}")], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return os.path.basename(path)


def animation(row: SequenceSummary, gt_root: str, pred_root: str, image_root: str | None, path: str) -> str:
    """GIF of the annotated frames that have a prediction: ground truth | prediction."""
    stems = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(gt_root, row.name)) if f.endswith(".png"))
    frames = []
    for stem in stems:
        pred_path = os.path.join(pred_root, row.name, stem + ".png")
        if not os.path.isfile(pred_path):
            continue
        gt = read_label_png(os.path.join(gt_root, row.name, stem + ".png"), "ground truth")
        rgb = _frame(image_root, row.name, stem, gt.shape)
        pair = np.concatenate([overlay(rgb, gt), overlay(rgb, read_label_png(pred_path, "prediction"))], axis=1)
        if pair.shape[1] > GIF_WIDTH:
            pair = cv2.resize(pair, (GIF_WIDTH, round(pair.shape[0] * GIF_WIDTH / pair.shape[1])), interpolation=cv2.INTER_AREA)
        frames.append(pair)
    write_animation(frames, path)
    return os.path.basename(path)


# ---------------------------------------------------------------------------- page
def _table(header: list[str], rows: list[list], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v if isinstance(v, str) else f'{v:.3f}')}</td>" for v in r)
                   + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(src: str, alt: str) -> str:
    return f'<img src="{html.escape(src)}" alt="{html.escape(alt)}">'


STYLE = """body{font-family:sans-serif;margin:24px;max-width:1400px}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}th{background:#eee}
td:first-child{text-align:left}img{max-width:100%;margin:4px 0;display:block}
.grid{display:flex;flex-wrap:wrap;gap:6px}.grid img{width:460px}h2{border-bottom:1px solid #ddd;padding-bottom:4px}"""


def build_report(metrics: dict, gt_root: str, pred_root: str, out_dir: str, image_root: str | None = None,
                 worst: int = 5, compare: tuple[str, dict] | None = None, title: str = "") -> str:
    """Writes ``out_dir/index.html`` (plus its images and ``data.json``); returns the page's path.

    metrics: what :func:`evaluation.jf.evaluate` returned for ``pred_root`` against ``gt_root``;
    compare: (label, metrics of another results folder on the same ground truth).
    """
    os.makedirs(out_dir, exist_ok=True)
    rows = summarise(metrics)
    shown = rows[:worst]
    global_row, _ = result_tables(metrics)
    parts = [f"<h1>{html.escape(title or 'Evaluation report')}</h1>",
             f"<p>{len(rows)} sequences, {sum(len(r.scores.objects) for r in rows)} objects, "
             f"{sum(len(r.scores.frames) for r in rows)} scored frames. Predictions: <code>{html.escape(pred_root)}</code>; "
             f"ground truth: <code>{html.escape(gt_root)}</code>.</p>",
             "<h2>Global results</h2>", _table(GLOBAL_COLUMNS, [list(global_row)]),
             "<h2>Per sequence</h2>", _img(bar_chart(rows, os.path.join(out_dir, "sequences.png")), "J and F per sequence")]
    if compare:
        parts += _comparison(rows, compare)
    parts.append(f"<h2>The {len(shown)} worst sequences</h2>")
    for row in shown:
        safe = row.name.replace(os.sep, "_")
        parts += [f"<h3>{html.escape(row.name)}: J&amp;F {row.jf:.3f} (J {row.j:.3f}, F {row.f:.3f}), "
                  f"worst frame {html.escape(row.scores.frames[row.worst_frame])}</h3>",
                  _img(timeline(row, os.path.join(out_dir, f"timeline_{safe}.png")), f"J over time, {row.name}"),
                  _img(strip(row, gt_root, pred_root, image_root, os.path.join(out_dir, f"strip_{safe}.png")),
                       f"frames around the worst frame of {row.name}"),
                  _img(animation(row, gt_root, pred_root, image_root, os.path.join(out_dir, f"animation_{safe}.gif")),
                       f"ground truth and prediction, {row.name}")]
    parts.append("<h2>J over time, every sequence</h2><div class=\"grid\">")
    for row in rows[len(shown):]:
        safe = row.name.replace(os.sep, "_")
        parts.append(_img(timeline(row, os.path.join(out_dir, f"timeline_{safe}.png")), f"J over time, {row.name}"))
    parts.append("</div>")
    page = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>" + html.escape(title or "Evaluation report")
            + f"</title><style>{STYLE}</style></head><body>" + "\n".join(parts) + "</body></html>\n")
    data = {"worst": [r.name for r in shown],
            "sequences": {r.name: {"J&F": r.jf, "J": r.j, "F": r.f, "objects": r.scores.objects,
                                   "frames": r.scores.frames, "J_per_frame": r.scores.J.tolist(),
                                   "F_per_frame": r.scores.F.tolist()} for r in rows}}
    with open(os.path.join(out_dir, "data.json"), "w") as f:
        json.dump(data, f)
    path = os.path.join(out_dir, "index.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


def _comparison(rows: list[SequenceSummary], compare: tuple[str, dict]) -> list[str]:
    label, other_metrics = compare
    other = {r.name: r for r in summarise(other_metrics)}
    common = [r for r in rows if r.name in other]
    changes = sorted(([r.name, r.jf, other[r.name].jf, r.jf - other[r.name].jf] for r in common), key=lambda c: c[3])
    return [f"<h2>Compared with {html.escape(label)}</h2>",
            f"<p>{len(common)} sequences in both; sorted by the change in J&amp;F (this minus the other), "
            "largest drop first.</p>",
            _table(["Sequence", "J&F (this)", "J&F (other)", "change"], changes, "compare")]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scoring_flags(p)
    p.add_argument("--images", help="generic mode: folder of <sequence>/<frame>.jpg frames for the overlays")
    p.add_argument("--compare", help="another results folder on the same ground truth: per-sequence differences")
    p.add_argument("--worst", type=int, default=5, help="sequences shown with frame strips and animations")
    args = p.parse_args(argv)
    start = time.time()
    inputs = scoring_inputs(args)
    metrics = evaluate(inputs.jobs, args.workers)
    compare = None
    if args.compare:
        compare = (args.compare, evaluate(scoring_inputs(args, pred=args.compare).jobs, args.workers))
    path = build_report(metrics, inputs.gt_root, inputs.pred_root, os.path.join(inputs.out, "report"),
                        args.images or inputs.image_root, args.worst, compare, title=os.path.basename(inputs.out.rstrip("/")))
    print(f"report: {path} ({time.time() - start:.1f} s)")


if __name__ == "__main__":
    run_cli(main, "the report was not finished")
