"""`make demo` (smoke-sized): interrupted, it says so in one line and exits non-zero with its training
state kept; run again, it goes on from that state and finishes the whole pipeline."""
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ITERATIONS = 12   # saves every 3


def start_demo(tmp_path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "demo.run_demo", "--size", "smoke", "--iterations", str(ITERATIONS),
           "--output", str(tmp_path / "out"), "--data", str(tmp_path / "data")]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_an_interrupted_demo_says_so_and_the_next_run_goes_on_from_its_training_state(tmp_path):
    demo = start_demo(tmp_path)
    saves = tmp_path / "out" / "saves"
    deadline = time.time() + 240
    while not list(saves.glob("*/demo/checkpoint_*.pth")) and demo.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    demo.send_signal(signal.SIGINT)          # to the demo alone, as a terminal's Ctrl-C would reach it
    out, err = demo.communicate(timeout=240)
    assert demo.returncode == 128 + signal.SIGINT, out + err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted (SIGINT): the training state")
    kept = sorted(saves.glob("*/demo/checkpoint_*.pth"))
    stopped_at = int(kept[-1].stem.split("_")[1])
    assert 0 < stopped_at < ITERATIONS and not (tmp_path / "out" / "checkpoints").exists()

    again = start_demo(tmp_path)
    out, err = again.communicate(timeout=400)
    assert again.returncode == 0, out + err[-3000:]
    assert f"resumed from {kept[-1]} at iteration {stopped_at}" in out
    assert (tmp_path / "out" / "checkpoints" / "demo.pth").is_file()
    assert "demo J&F: model=" in out
