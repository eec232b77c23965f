import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Before torch loads: passive OpenMP waits and threads from the usable cores, for this process and,
# through the environment, every process a test starts (a busy machine does not stall the suite).
import util.cpu_threads  # noqa: E402,F401
import torch  # noqa: E402

from model import build_model, config_from_flags  # noqa: E402


def tiny_config(token_learner: bool = False, local_window: bool = False, depth: int = 4, train_img_size: int = 64, **kw):
    """A 4-block ViT-Ti-sized SimVOS for CPU tests (B path, or BS path with 3 within-frame blocks)."""
    return config_from_flags("vit_tiny", layer_index=2 if token_learner or local_window else 0,
                             use_token_learner=token_learner, num_bases_foreground=6, num_bases_background=5,
                             use_local_window=local_window, train_img_size=train_img_size, depth=depth, **kw)


@pytest.fixture
def tiny_b():
    torch.manual_seed(0)
    return build_model(tiny_config()).eval()


@pytest.fixture
def tiny_bs():
    torch.manual_seed(0)
    return build_model(tiny_config(token_learner=True, local_window=True)).eval()


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """A vit_tiny (12 blocks) checkpoint in the published bare format, trained grid 64x64: what the
    scripts' tests load with ``--backbone_type vit_tiny --layer_index 0``."""
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.manual_seed(0)
    torch.save(build_model(config_from_flags("vit_tiny", train_img_size=64)).state_dict(), path)
    return path


def write_sidecar_checkpoint(path: str):
    """Writes a seeded vit_tiny (12 blocks, trained grid 64x64) checkpoint at ``path`` as our
    training does (the bare state_dict and its sidecar of model flags); its ModelConfig."""
    from model.variants import write_sidecar
    torch.manual_seed(0)
    config = config_from_flags("vit_tiny", layer_index=0, use_token_learner=False, train_img_size=64)
    torch.save(build_model(config).state_dict(), path)
    write_sidecar(path, config)
    return config


@pytest.fixture(scope="session")
def davis_root(tmp_path_factory):
    """A tiny DAVIS-2017 tree for training: 4 train videos of 6 frames, 48x64."""
    from dataset.synthetic import make_davis_dataset
    root = tmp_path_factory.mktemp("train")
    make_davis_dataset(str(root / "DAVIS/2017/trainval"), n_train=4, n_val=1, size=(48, 64), n_frames=6, seed=1)
    return root / "DAVIS"


# ------------------------------------------------------------------ the studio's tests
@pytest.fixture(scope="module")
def predictor():
    """A predictor over a seeded tiny B-path network on the CPU (the studio's tests)."""
    from inference_core import SimVOSPredictor
    torch.manual_seed(0)
    return SimVOSPredictor(build_model(tiny_config()).eval(), "cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """(an H.264 MP4 of 12 synthetic 48x64 frames with 2 objects, its frames (12, 48, 64, 3) uint8,
    their labels (12, 48, 64)) (the studio's tests)."""
    import numpy as np
    from dataset.synthetic import make_video
    from tests.test_own_videos import write_h264
    folder = tmp_path_factory.mktemp("clip")
    frames, labels = make_video(np.random.default_rng(7), 12, 48, 64, 2)
    write_h264(folder / "clip.mp4", frames)
    return folder / "clip.mp4", frames, labels


# ------------------------------------------------------------------ a real browser
def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def no_browser(reason: str) -> None:
    """Skips a browser test, or fails it under ``CI=true``: a green CI run has run the browser tests."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: the browser tests must run, not skip)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def browser_page():
    """A fresh page; requests it made are in ``page.requested`` (URLs)."""
    binary = chromium_binary()
    if binary is None:
        no_browser("Chromium is not installed and could not be installed here (needs root and Debian's "
                   "'chromium' package; `make browser` installs it)")
    try:
        from playwright import sync_api
    except ImportError:
        no_browser("playwright is not installed (it is in requirements.txt)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
            page = context.new_page()   # page.context.new_page() opens more pages in the same context
            page.requested = []
            page.on("request", lambda request: page.requested.append(request.url))
            yield page
        finally:
            browser.close()


def dead_pid() -> int:
    """A process id that no process has now (for temporary names left by a killed writer)."""
    import subprocess
    import sys
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(child.stdout)
