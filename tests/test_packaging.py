"""The wheel: built from a clean checkout, it holds every package and the studio's page, and the
studio starts from it outside the repository."""
import os
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_a_wheel_holds_the_studio_and_runs_outside_the_repository(tmp_path):
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools in the environment")
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", ROOT, str(checkout)], check=True)
    # What is not committed yet is part of the checkout under test too.
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, tracked):
        source, target = os.path.join(ROOT, rel), checkout / rel
        if os.path.isfile(source):
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(open(source, "rb").read())
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(checkout)], check=True, capture_output=True)
    (wheel,) = wheels.iterdir()
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    for needed in ("studio/static/index.html", "studio/static/main.js", "studio/static/api.js", "studio/static/style.css", "studio/__main__.py",
                   "outputs/formats.py", "inference_core/session.py", "dataset/lists/yv_subset.txt", "segment_video.py"):
        assert needed in names, needed
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-m", "studio", "--help"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--checkpoint" in proc.stdout and "--live_sessions" in proc.stdout
    where = subprocess.run([sys.executable, "-c", "import studio.app as a; print(a.STATIC)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(site)) and os.path.isfile(os.path.join(where, "index.html"))
