"""The layering rule, checked on every module's imports (those inside functions too):

util < model < dataset < inference_core (computes, writes no files) < outputs (own-video formats,
exports, publishing) < evaluation | training | studio (siblings) < top-level scripts, demo/, benchmarks/. No module imports a script; tests import no benchmark or demo code."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYERS = {"util": 0, "model": 1, "dataset": 2, "inference_core": 3, "outputs": 4, "evaluation": 5, "training": 5,
          "studio": 5, "demo": 6, "benchmarks": 6}
SIBLINGS = {(a, b) for a in ("evaluation", "training", "studio") for b in ("evaluation", "training", "studio") if a != b}
SKIP_DIRS = {"tests", "data", "demo_output", "results", "saves", "runs", "__pycache__"}


def imported_modules(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def project_modules(root: str):
    """(module name, path) of every .py file of the project outside tests and generated folders."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS]
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                yield os.path.relpath(path, root)[:-3].replace(os.sep, "."), path


def layering_violations(root: str) -> list[str]:
    scripts = {f[:-3] for f in os.listdir(root) if f.endswith(".py")}
    bad = []
    for module, path in project_modules(root):
        top = module.split(".")[0]
        own = 6 if top in scripts else LAYERS.get(top)
        for name in imported_modules(path):
            target = name.split(".")[0]
            if target in scripts and target != top:
                bad.append(f"{module} imports the script {target}")
            elif target in LAYERS and own is not None and LAYERS[target] > own:
                bad.append(f"{module} (layer {own}) imports {name} (layer {LAYERS[target]})")
            elif (top, target) in SIBLINGS:
                bad.append(f"{module} imports its sibling {name}")
    return bad


def test_no_import_runs_up_the_layers():
    assert layering_violations(ROOT) == []


def test_tests_import_no_benchmark_or_demo_code():
    bad = [f"{m}: {n}" for m, p in project_modules(os.path.join(ROOT, "tests"))
           for n in imported_modules(p) if n.split(".")[0] in ("benchmarks", "demo")]
    assert bad == []


@pytest.mark.parametrize("module,source,expected", [
    ("util/x.py", "from model import build_model\n", "util.x (layer 0) imports model (layer 1)"),
    ("dataset/x.py", "def f():\n    from inference_core.engine import InferenceCore\n", "dataset.x (layer 2) imports inference_core.engine"),
    ("inference_core/x.py", "from evaluation import jf\n", "inference_core.x (layer 3) imports evaluation (layer 5)"),
    ("inference_core/x.py", "from outputs.formats import overlay\n", "inference_core.x (layer 3) imports outputs.formats (layer 4)"),
    ("evaluation/x.py", "import my_script\n", "evaluation.x imports the script my_script"),
    ("training/x.py", "from evaluation import report\n", "training.x imports its sibling evaluation"),
])
def test_the_check_finds_upward_imports(tmp_path, module, source, expected):
    (tmp_path / "my_script.py").write_text("import model\n")
    os.makedirs(tmp_path / os.path.dirname(module), exist_ok=True)
    (tmp_path / module).write_text(source)
    assert any(v.startswith(expected) for v in layering_violations(str(tmp_path)))
    (tmp_path / module).write_text("import os\n")
    assert layering_violations(str(tmp_path)) == []


def test_the_jf_command_imports_no_torch():
    """Scoring is numpy/OpenCV work: torch (and timm) would cost seconds per process and worker."""
    import subprocess
    import sys
    code = "import sys, evaluation.davis_metrics, evaluation.jf; print('torch' in sys.modules, 'timm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
