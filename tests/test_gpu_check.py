"""make gpu-check's CPU form (--quick) runs every step and writes its two files, so that the prepared
GPU run cannot rot between GPU sessions."""
import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_gpu_check_quick_form_writes_every_section(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path), "--quick",
                           "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["environment"]["torch"]
    assert {r["model"] for r in report["inference"]} == {"SimVOS-B (tiny)", "SimVOS-BS (tiny)"}
    assert all(r["max_abs_p_error"] < 1e-4 for r in report["inference"])      # fp32 engine = published loop
    assert report["sdpa_kernels"]["fp32_flash"] == "ok"                       # CPU SDPA has a flash kernel
    assert report["evaluation_script"]["script_fps"] > 0 and report["training"]["iterations_per_s"] > 0
    assert report["training"]["published_iterations_per_s"] > 0
    ddp = report["ddp"]
    assert ddp["returncode"] == 0 and ddp["ranks_agree"], f"parsed {ddp['checksums']} from:\n{ddp['stdout_tail']}"
    assert "| SimVOS-BS (tiny) | 3 | fp32 |" in (tmp_path / "gpu_check.md").read_text()
