"""Every CPU entry point sets its OpenMP threads before torch loads them: waits that yield the core, as
many threads as usable cores, one per data-loader worker; SIMVOS_THREADS and explicit OMP_* variables win.
What a started process runs with is read from its OpenMP runtime's own report (OMP_DISPLAY_ENV)."""
import ast
import os
import re
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from util.cpu_threads import thread_settings, usable_cores

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Every top-level script, the studio, the demo and (through their package) the benchmarks.
ENTRY_POINTS = sorted(f for f in os.listdir(ROOT) if f.endswith(".py")) + [
    "studio/__main__.py", "demo/run_demo.py", "benchmarks/__init__.py"]


def openmp_report(args: list[str], **env: str) -> dict[str, str]:
    """The OpenMP settings a process started with ``args`` runs with (libgomp's OMP_DISPLAY_ENV report),
    and ``torch_threads`` when it prints torch.get_num_threads()."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_")) and k != "SIMVOS_THREADS"}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**clean, "OMP_DISPLAY_ENV": "VERBOSE", **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = dict(re.findall(r"^\s+(\w+) = '([^']*)'", proc.stderr, re.M))
    assert "GOMP_SPINCOUNT" in report, "no OpenMP report: is PyTorch's OpenMP runtime GNU libgomp still?"
    if proc.stdout.strip():
        report["torch_threads"] = proc.stdout.split()[-1]
    return report


def test_the_settings_follow_the_usable_cores_and_keep_what_the_caller_chose():
    assert usable_cores() == len(os.sched_getaffinity(0))
    assert thread_settings({}) == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(usable_cores())}
    assert thread_settings({"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}) == {}
    assert thread_settings({"OMP_NUM_THREADS": "3", "SIMVOS_THREADS": "5"})["OMP_NUM_THREADS"] == "5"
    assert thread_settings({"SIMVOS_THREADS": "default"}) == {}
    for bad in ("0", "two", "-1"):
        with pytest.raises(ValueError, match="SIMVOS_THREADS"):
            thread_settings({"SIMVOS_THREADS": bad})


def test_every_entry_point_sets_the_threads_before_anything_imports_torch():
    for path in ENTRY_POINTS:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            body = [node for node in ast.parse(f.read()).body
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and getattr(node, "module", None) != "__future__"]
        first = body[0].names[0].name if isinstance(body[0], ast.Import) else body[0].module
        assert first == "util.cpu_threads", f"{path}: its first import is {first}"


@pytest.mark.slow
def test_a_started_script_waits_passively_with_the_usable_cores_and_obeys_the_overrides():
    report = openmp_report(["train_simvos.py", "--help"])   # the real entry point, torch loaded at import
    assert report["GOMP_SPINCOUNT"] == "0" and report["OMP_NUM_THREADS"] == str(usable_cores())
    show_threads = ["-c", "import util.cpu_threads, torch; print(torch.get_num_threads())"]
    one = openmp_report(show_threads, SIMVOS_THREADS="1")
    assert (one["OMP_NUM_THREADS"], one["torch_threads"], one["GOMP_SPINCOUNT"]) == ("1", "1", "0")
    defaults = openmp_report(show_threads, SIMVOS_THREADS="default")
    assert defaults["GOMP_SPINCOUNT"] != "0"                 # libgomp's own default: spin before sleeping


class _WorkerThreads(Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, index):
        return torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY")


def test_data_loader_workers_run_one_thread_and_inherit_the_passive_waits():
    (threads, policy), = DataLoader(_WorkerThreads(), batch_size=None, num_workers=1)
    assert (int(threads), policy) == (1, "PASSIVE")
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"     # the tests' own process and its children (conftest)
