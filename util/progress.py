"""Progress in frames with an ETA: a progressbar2 bar on a terminal, else (or without progressbar2)
a plain line every few seconds."""
from __future__ import annotations

import sys
import time


class FrameProgress:
    def __init__(self, total: int, label: str = "frames", show: bool = True, period: float = 5.0):
        self.total, self.label, self.show, self.period = max(total, 1), label, show, period
        self.done = 0
        self.start = self.last = time.perf_counter()
        self.bar = None
        if show and sys.stderr.isatty():
            try:
                import progressbar
                self.bar = progressbar.ProgressBar(max_value=self.total, fd=sys.stderr, widgets=[
                    f"{label}: ", progressbar.Counter(), f"/{self.total} ", progressbar.Bar(), " ",
                    progressbar.AdaptiveETA()])
                self.bar.start()
            except ImportError:
                self.bar = None

    def update(self, count: int = 1) -> None:
        self.done += count
        if not self.show:
            return
        if self.bar is not None:
            self.bar.update(min(self.done, self.total))
            return
        now = time.perf_counter()
        if now - self.last >= self.period or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate else float("inf")
            print(f"{self.label}: {self.done}/{self.total} frames, {rate:.2f} FPS, ETA {eta:.0f} s",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.finish(dirty=self.done < self.total)
