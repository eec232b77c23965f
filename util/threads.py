"""Overlapping I/O with the network: a reader thread ahead of the consumer and a writer thread behind
it, each with a bounded queue (memory stays flat), order kept, errors re-raised where they belong."""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator

_DONE = object()


def prefetched(items: Iterable, depth: int = 4) -> Iterator:
    """Yields ``items`` in order while a thread produces up to ``depth`` of them ahead (decoding the
    next frames while the network runs). An error of the producer is raised at its place; closing the
    generator stops the producer."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, raised there
            buffer.put((_DONE, exc))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


class BackgroundWriter:
    """Runs submitted calls in order on one thread (PNG encoding while the network runs); at most
    ``depth`` wait. ``close()`` waits for them and raises the first error; a failed call stops the rest."""

    def __init__(self, depth: int = 8):
        self.tasks: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            task = self.tasks.get()
            if task is None:
                return
            if self.error is None:
                fn, args = task
                try:
                    fn(*args)
                except BaseException as exc:
                    self.error = exc

    def submit(self, fn: Callable, *args) -> None:
        if self.error is not None:
            self.close()
        self.tasks.put((fn, args))

    def close(self) -> None:
        if self.thread.is_alive():
            self.tasks.put(None)
            self.thread.join()
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.close()
        else:  # already failing: let the running writes finish, report the first error
            try:
                self.close()
            except BaseException:
                pass


class InlineWriter:
    """BackgroundWriter's interface, running each call at once (overlap switched off)."""

    def submit(self, fn: Callable, *args) -> None:
        fn(*args)

    def close(self) -> None:
        return None

    def __enter__(self) -> "InlineWriter":
        return self

    def __exit__(self, *exc) -> None:
        return None


def writer_for(overlap: bool) -> BackgroundWriter | InlineWriter:
    return BackgroundWriter() if overlap else InlineWriter()
