"""CPU threads chosen on purpose for every entry point (the scripts, the studio, the demo, the benchmarks,
the tests): PyTorch's OpenMP threads yield their core while they wait, and there are as many of them as
the cores this process may run on.

Why: OpenMP threads that spin while waiting for a core that another process holds make a CPU run many
times slower beside other work (the demo's training 14-25x beside two busy processes: docs/benchmarks.md,
"Under load"); waiting passively cost nothing measurable alone. The OpenMP runtime of the PyTorch wheels (GNU libgomp) reads its settings once, when ``import
torch`` loads it, so an entry point imports this module before anything imports torch::

    import util.cpu_threads  # noqa: F401  (first: OpenMP settings before torch loads)

and the processes it starts (data-loader workers, evaluation scripts, launchers) inherit the environment.
Data-loader workers run one intra-op thread each: PyTorch's worker loop sets it (torch.set_num_threads(1)).

Overrides, read once at import:
    SIMVOS_THREADS=N        N intra-op threads (instead of the cores of ``os.sched_getaffinity``)
    SIMVOS_THREADS=default  leave PyTorch's and OpenMP's own defaults (spinning waits)
    OMP_NUM_THREADS, OMP_WAIT_POLICY set by the caller are kept (SIMVOS_THREADS=N wins over OMP_NUM_THREADS).
"""
from __future__ import annotations

import os
import sys
from typing import Mapping

OVERRIDE = "SIMVOS_THREADS"
LEAVE_DEFAULTS = "default"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a container's or a job's share, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def thread_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables to set on top of ``environ``: ``OMP_WAIT_POLICY`` PASSIVE unless given, and
    ``OMP_NUM_THREADS`` from ``SIMVOS_THREADS``, else kept if given, else :func:`usable_cores`.
    Raises ValueError on a ``SIMVOS_THREADS`` that is neither a positive number nor ``default``."""
    choice = environ.get(OVERRIDE, "").strip()
    if choice.lower() == LEAVE_DEFAULTS:
        return {}
    settings = {}
    if not environ.get("OMP_WAIT_POLICY"):
        settings["OMP_WAIT_POLICY"] = "PASSIVE"
    if choice:
        if not choice.isdigit() or int(choice) < 1:
            raise ValueError(f"{OVERRIDE}={choice!r}: expected a number of threads (1 or more) or '{LEAVE_DEFAULTS}'")
        settings["OMP_NUM_THREADS"] = str(int(choice))
    elif not environ.get("OMP_NUM_THREADS"):
        settings["OMP_NUM_THREADS"] = str(usable_cores())
    return settings


def apply() -> None:
    """Sets :func:`thread_settings` in this process's environment: read by OpenMP when torch loads (not
    after: import this module first), and inherited by the processes this one starts."""
    try:
        settings = thread_settings(os.environ)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    os.environ.update(settings)


apply()
