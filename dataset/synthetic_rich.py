"""Two more families of synthetic videos, deterministic for a seed, generated offline.

``rich`` (the demo's training and val split): irregular outlines that deform (radial harmonics,
sometimes with a hole), articulated figures with thin swinging limbs, and the basic polygons;
1/f-noise textures and backgrounds (natural-image statistics); look-alike distractors (same texture
family and colour; objects are distinct in colour from the background, not from each other); slow and
fast wandering motion, objects leaving and re-entering the frame, occlusions; lighting drift, scale
change and blur.

``glyph`` (the transfer check, never trained on): letter and digit silhouettes (Hershey font glyphs,
thick strokes), flat colours with checker and plaid patterns over gradient-and-grid backgrounds, slow
curved paths.

Both return (frames [h, w, 3] uint8 RGB, label maps [h, w] uint8), like ``synthetic.make_video``.
"""
from __future__ import annotations

import cv2
import numpy as np

GLYPHS = "AEFHKLMRSTWXYZ2345789&%#"
HERSHEY = [cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX]


def pink_noise(rng: np.random.Generator, h: int, w: int, alpha: float) -> np.ndarray:
    """[h, w] noise with a 1/f^alpha amplitude spectrum, scaled to [0, 1]."""
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** alpha
    spectrum[0, 0] = 0
    x = np.fft.irfft2(spectrum, s=(h, w))
    return ((x - x.min()) / (np.ptp(x) + 1e-8)).astype(np.float32)


def natural_texture(rng: np.random.Generator, h: int, w: int, colour: np.ndarray, spread: float) -> np.ndarray:
    """[h, w, 3] float texture: a colour modulated by 1/f noise, with some hue variation."""
    base = pink_noise(rng, h, w, rng.uniform(1.4, 2.2))
    detail = pink_noise(rng, h, w, 1.0)
    tint = np.stack([pink_noise(rng, h, w, 2.0) for _ in range(3)], -1) - 0.5
    shade = (0.55 + 0.6 * (base - 0.5) + 0.25 * (detail - 0.5))[..., None]
    return np.clip(colour[None, None] * shade + spread * tint, 0, 1)


# ---------------------------------------------------------------------------- rich family
class _Wanderer:
    """A position wandering smoothly (Ornstein-Uhlenbeck velocity) inside a box larger than the
    frame, so that an object can leave it and come back."""

    def __init__(self, rng, h, w, speed, start):
        self.rng, self.h, self.w, self.speed = rng, h, w, speed
        self.pos = np.array(start, float)
        angle = rng.uniform(0, 2 * np.pi)
        self.vel = speed * np.array([np.cos(angle), np.sin(angle)])

    def step(self):
        self.vel = 0.85 * self.vel + 0.15 * self.speed * self.rng.normal(size=2)
        self.vel *= self.speed / max(np.linalg.norm(self.vel), 1e-6) * self.rng.uniform(0.7, 1.3)
        self.pos += self.vel
        for d, size in ((0, self.w), (1, self.h)):
            lo, hi = -0.1 * size, 1.1 * size
            if not lo < self.pos[d] < hi:
                self.vel[d] = -self.vel[d]
                self.pos[d] = np.clip(self.pos[d], lo, hi)
        return self.pos.copy()


def _blob_mask(h, w, centre, radius, harmonics, t, hole):
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    r = np.ones_like(angles)
    for k, (amp, phase, drift) in enumerate(harmonics, start=2):
        r += amp * np.sin(k * angles + phase + drift * t)
    pts = np.stack([centre[0] + radius * r * np.cos(angles), centre[1] + radius * r * np.sin(angles)], 1)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [pts.round().astype(np.int32)], 1)
    if hole:
        cv2.circle(mask, tuple(int(v) for v in centre), int(radius * 0.35), 0, -1)
    return mask.astype(bool)


def _figure_mask(h, w, centre, size, limbs, t, angle):
    """A torso ellipse with limbs of two thin segments swinging at their joints."""
    mask = np.zeros((h, w), np.uint8)
    c = tuple(int(v) for v in centre)
    cv2.ellipse(mask, c, (int(size * 0.55), int(size * 0.3)), np.degrees(angle), 0, 360, 1, -1)
    for base_angle, length, width, swing, phase in limbs:
        a1 = angle + base_angle + swing * np.sin(0.35 * t + phase)
        joint = centre + size * 0.45 * np.array([np.cos(angle + base_angle), np.sin(angle + base_angle)])
        knee = joint + length * np.array([np.cos(a1), np.sin(a1)])
        a2 = a1 + 0.8 * swing * np.sin(0.35 * t + phase + 1.2)
        foot = knee + length * 0.9 * np.array([np.cos(a2), np.sin(a2)])
        for p, q in ((joint, knee), (knee, foot)):
            cv2.line(mask, tuple(int(v) for v in p), tuple(int(v) for v in q), 1, int(width), cv2.LINE_8)
    return mask.astype(bool)


def _polygon_mask(h, w, centre, size, kind, angle):
    if kind == "ellipse":
        a = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        pts = np.stack([np.cos(a), 0.6 * np.sin(a)], 1)
    elif kind == "rectangle":
        pts = np.array([[-1, -0.55], [1, -0.55], [1, 0.55], [-1, 0.55]], float)
    else:  # star
        a = np.linspace(0, 2 * np.pi, 10, endpoint=False)
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([r * np.cos(a), r * np.sin(a)], 1)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [(pts @ rot.T * size + centre).round().astype(np.int32)], 1)
    return mask.astype(bool)


def _distinct_colour(rng: np.random.Generator, background: np.ndarray, min_distance: float = 0.3,
                     tries: int = 20) -> np.ndarray:
    """An object colour at least ``min_distance`` (RGB, 0..1) from the background's mean colour:
    objects may look like each other, not like the background (camouflage is beyond a 5-minute model)."""
    for _ in range(tries):
        colour = rng.uniform(0.1, 1.0, 3)
        if np.linalg.norm(colour - background) >= min_distance:
            break
    return colour


def make_rich_video(rng: np.random.Generator, n_frames: int, h: int, w: int, n_objects: int,
                    appear: list[int] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    appear = appear or [0] * n_objects
    pad = 48
    background_colour = rng.uniform(0.2, 0.9, 3)
    background = natural_texture(rng, h + 2 * pad, w + 2 * pad, background_colour, 0.35)
    pan = rng.uniform(-1.5, 1.5, 2)
    light = rng.uniform(-0.25, 0.25)
    blur_frames = set(np.flatnonzero(rng.random(n_frames) < 0.08).tolist())
    objects = []
    for i in range(n_objects):
        kind = str(rng.choice(["blob", "figure", "polygon"], p=[0.4, 0.35, 0.25]))
        size = rng.uniform(0.16, 0.30) * min(h, w)
        if i > 0 and rng.random() < 0.5:          # a look-alike of the first object
            colour = np.clip(objects[0]["colour"] + rng.normal(0, 0.06, 3), 0, 1)
        else:
            colour = _distinct_colour(rng, background_colour)
        speed = rng.choice([rng.uniform(0.3, 1.0), rng.uniform(1.5, 3.0)]) * min(h, w) / 112
        start = (rng.uniform(size, w - size), rng.uniform(size, h - size))
        objects.append({
            "kind": kind, "size": size, "colour": colour, "path": _Wanderer(rng, h, w, speed, start),
            "texture": natural_texture(rng, h, w, colour, 0.12),
            "harmonics": [(rng.uniform(0, 0.25), rng.uniform(0, 6.3), rng.uniform(-0.15, 0.15)) for _ in range(4)],
            "hole": kind == "blob" and rng.random() < 0.25,
            "limbs": [(rng.uniform(0, 2 * np.pi), size * rng.uniform(0.35, 0.6), rng.integers(2, 6),
                       rng.uniform(0.3, 0.9), rng.uniform(0, 6.3)) for _ in range(int(rng.integers(2, 5)))],
            "polygon": str(rng.choice(["ellipse", "rectangle", "star"])),
            "angle": rng.uniform(0, np.pi), "spin": rng.uniform(-0.08, 0.08), "grow": rng.uniform(-0.012, 0.012)})
    frames, labels = [], []
    for t in range(n_frames):
        ox, oy = np.clip((np.array([pad, pad]) + pan * t).astype(int), 0, 2 * pad)
        img = background[oy:oy + h, ox:ox + w].copy()
        label = np.zeros((h, w), np.uint8)
        for i, o in enumerate(objects):
            centre = o["path"].step() if t else o["path"].pos.copy()
            if t < appear[i]:
                continue
            size = o["size"] * (1 + o["grow"] * t)
            angle = o["angle"] + o["spin"] * t
            if o["kind"] == "blob":
                inside = _blob_mask(h, w, centre, size, o["harmonics"], t, o["hole"])
            elif o["kind"] == "figure":
                inside = _figure_mask(h, w, centre, size, o["limbs"], t, angle)
            else:
                inside = _polygon_mask(h, w, centre, size, o["polygon"], angle)
            img[inside] = o["texture"][inside]
            label[inside] = i + 1
        img = np.clip(img * (1 + light * t / max(n_frames - 1, 1)), 0, 1)
        frame = (img * 255).astype(np.uint8)
        if t in blur_frames:
            frame = cv2.GaussianBlur(frame, (5, 5), 1.2)
        frames.append(frame)
        labels.append(label)
    return frames, labels


# ---------------------------------------------------------------------------- glyph family (transfer)
def _pattern(rng, h, w, colour):
    yy, xx = np.mgrid[:h, :w]
    period = rng.integers(6, 14)
    if rng.random() < 0.5:
        checks = ((yy // period + xx // period) % 2)[..., None]
    else:
        checks = ((np.sin(xx * 2 * np.pi / period) > 0.6) | (np.sin(yy * 2 * np.pi / period) > 0.6))[..., None]
    return np.clip(colour[None, None] * (0.75 + 0.3 * checks), 0, 1).astype(np.float32)


def _glyph_mask(h, w, char, font, scale, thickness, centre, angle):
    (tw, th), base = cv2.getTextSize(char, font, scale, thickness)
    canvas = np.zeros((th + base + 2 * thickness, tw + 2 * thickness), np.uint8)
    cv2.putText(canvas, char, (thickness, th + thickness), font, scale, 1, thickness, cv2.LINE_8)
    rot = cv2.getRotationMatrix2D((canvas.shape[1] / 2, canvas.shape[0] / 2), np.degrees(angle), 1.0)
    rot[:, 2] += np.array(centre) - np.array([canvas.shape[1] / 2, canvas.shape[0] / 2])
    return cv2.warpAffine(canvas, rot, (w, h), flags=cv2.INTER_NEAREST).astype(bool)


def make_glyph_video(rng: np.random.Generator, n_frames: int, h: int, w: int, n_objects: int,
                     appear: list[int] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    appear = appear or [0] * n_objects
    yy, xx = np.mgrid[:h, :w]
    c0, c1 = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    ramp = (xx / w * np.cos(rng.uniform(0, np.pi)) + yy / h * np.sin(rng.uniform(0, np.pi)))[..., None] % 1
    background = c0 * (1 - ramp) + c1 * ramp
    grid = rng.integers(10, 24)
    background[(xx % grid == 0) | (yy % grid == 0)] *= 0.6
    objects = []
    for i in range(n_objects):
        colour = objects[0]["colour"] if i > 0 and rng.random() < 0.5 else rng.uniform(0.05, 1.0, 3)
        scale = rng.uniform(1.6, 2.6) * min(h, w) / 128
        objects.append({"char": str(rng.choice(list(GLYPHS))), "font": int(rng.choice(HERSHEY)), "scale": scale,
                        "thickness": int(rng.integers(4, 9)), "colour": colour, "pattern": _pattern(rng, h, w, colour),
                        "centre": np.array([rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h]),
                        "amplitude": rng.uniform(0.05, 0.2, 2) * np.array([w, h]), "freq": rng.uniform(0.05, 0.15, 2),
                        "phase": rng.uniform(0, 6.3, 2), "angle": rng.uniform(-0.4, 0.4), "spin": rng.uniform(-0.03, 0.03)})
    frames, labels = [], []
    for t in range(n_frames):
        img = background.copy()
        label = np.zeros((h, w), np.uint8)
        for i, o in enumerate(objects):
            if t < appear[i]:
                continue
            centre = o["centre"] + o["amplitude"] * np.sin(o["freq"] * t + o["phase"])
            inside = _glyph_mask(h, w, o["char"], o["font"], o["scale"], o["thickness"], centre, o["angle"] + o["spin"] * t)
            img[inside] = o["pattern"][inside]
            label[inside] = i + 1
        frames.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
        labels.append(label)
    return frames, labels
