"""The documentation stays usable: every relative link and ``#anchor`` of README.md and docs/*.md
resolves, and every script or module their shell code blocks run exists and answers ``--help``.

Anchors are computed as GitHub slugs headings: the heading's text (links reduced to their text,
code and emphasis marks dropped) in lower case, every character that is not a letter, digit,
space, ``-`` or ``_`` removed, spaces turned into ``-``; a repeated slug gets ``-1``, ``-2``, ...
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
PYTHON_RUN = re.compile(r"(?:^|[\s;&|(])python3?\s+(?:-\S+\s+)*?(?:-m\s+([\w.]+)|([\w./-]+\.py)\b)")
TORCHRUN_SCRIPT = re.compile(r"(?:^|[\s;&|(])torchrun\s.*?([\w./-]+\.py)\b")
LAUNCHED_SCRIPT = re.compile(r"-m\s+torch\.distributed\.(?:launch|run)\s.*?([\w./-]+\.py)\b")


def documents(root: Path = ROOT) -> list[Path]:
    """README.md and every docs/*.md under ``root``."""
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def split_blocks(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(prose lines, [(info string, lines) of each fenced code block])."""
    prose, blocks, fence, info, body = [], [], None, "", []
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence, info, body = match.group(1), match.group(2).lower(), []
            else:
                prose.append(line)
        elif match and match.group(1).startswith(fence) and not match.group(2):
            blocks.append((info, body))
            fence = None
        else:
            body.append(line)
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (before duplicates are numbered)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives the headings of a markdown file."""
    seen: dict[str, int] = {}
    result = set()
    for line in split_blocks(path.read_text(encoding="utf-8"))[0]:
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[str]:
    """The targets of the markdown links and images of a file, code spans and blocks left out."""
    prose = "\n".join(CODE_SPAN.sub("", line) for line in split_blocks(path.read_text(encoding="utf-8"))[0])
    return LINK.findall(prose)  # a link's text may wrap onto the next line


def broken_links(docs: list[Path]) -> list[str]:
    """'file: target (why)' for every relative link or anchor that does not resolve."""
    problems, cache = [], {}
    for doc in docs:
        for target in links(doc):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
                continue  # http(s), mailto: not checked here
            where, _, anchor = target.partition("#")
            dest = (doc.parent / where).resolve() if where else doc
            if not dest.exists():
                problems.append(f"{doc.name}: {target} (no such file)")
                continue
            if anchor and dest.suffix == ".md":
                if dest not in cache:
                    cache[dest] = anchors(dest)
                if anchor not in cache[dest]:
                    problems.append(f"{doc.name}: {target} (no heading with anchor #{anchor} in {dest.name})")
    return problems


def commands(docs: list[Path]) -> set[tuple[str, str]]:
    """{("script", path) or ("module", name)} run by the shell code blocks of the documents."""
    found = set()
    for doc in docs:
        for info, body in split_blocks(doc.read_text(encoding="utf-8"))[1]:
            if info not in SHELL_BLOCKS:
                continue
            for line in body:
                line = re.sub(r"^\s*\$\s+", "", line).split(" #", 1)[0]
                if line.lstrip().startswith("#"):
                    continue
                for module, script in PYTHON_RUN.findall(line):
                    found.add(("module", module) if module else ("script", script))
                for pattern in (TORCHRUN_SCRIPT, LAUNCHED_SCRIPT):
                    found.update(("script", script) for script in pattern.findall(line))
    return found


def missing(command: tuple[str, str], root: Path = ROOT) -> bool:
    """Whether a script or module of the documents does not exist (a module: in the repository,
    else importable from this interpreter)."""
    kind, name = command
    if kind == "script":
        return not (root / name).is_file()
    path = root.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file() or (path / "__main__.py").is_file():
        return False
    if (root / name.split(".")[0]).exists():
        return True  # a module of ours that is not there
    try:
        return importlib.util.find_spec(name) is None
    except ModuleNotFoundError:
        return True


def test_slug_follows_githubs_rules():
    assert slug("Scoring (J&F)") == "scoring-jf"
    assert slug("8. J&F (davis2017-evaluation, semi-supervised)") == "8-jf-davis2017-evaluation-semi-supervised"
    assert slug("`build_predictor` and model flags") == "build_predictor-and-model-flags"
    assert slug("Fine-tuning on [your](x.md) videos") == "fine-tuning-on-your-videos"
    assert slug("The studio against segment_video.py") == "the-studio-against-segment_videopy"


def test_checker_finds_broken_links_and_missing_scripts(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text(
        "# Top\n## Part\n## Part\n[ok](#part-1) [bad](#part-2) [file](docs/a.md#more) [gone](docs/b.md)\n"
        "`[code](nowhere.md)` [wrapped\nlink](#nowhere)\n```bash\npython run.py --x\npython -m pkg.tool\n"
        "torchrun --nproc_per_node=2 other.py\n# python comment.py\n```\n"
        "```python\npython not_shell.py\n```\n", encoding="utf-8")
    (tmp_path / "docs" / "a.md").write_text("# A\n```bash\n# More\n```\n[back](../README.md#top) [img](x.png)\n",
                                            encoding="utf-8")
    (tmp_path / "run.py").write_text("", encoding="utf-8")
    docs = documents(tmp_path)
    assert sorted(broken_links(docs)) == sorted([
        "README.md: #part-2 (no heading with anchor #part-2 in README.md)",
        "README.md: #nowhere (no heading with anchor #nowhere in README.md)",
        "README.md: docs/a.md#more (no heading with anchor #more in a.md)",
        "README.md: docs/b.md (no such file)",
        "a.md: x.png (no such file)"])
    found = commands(docs)
    assert found == {("script", "run.py"), ("module", "pkg.tool"), ("script", "other.py")}
    assert [c for c in sorted(found) if missing(c, tmp_path)] == [("module", "pkg.tool"), ("script", "other.py")]


def test_readme_stays_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines: move the depth into docs/ (at most 250)"


def test_readme_links_every_docs_page():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(ROOT / "README.md")}
    assert sorted(p.name for p in documents()[1:] if p.resolve() not in linked) == []


def test_every_link_and_anchor_resolves():
    assert broken_links(documents()) == []


def test_every_documented_script_exists():
    found = commands(documents())
    assert ("script", "train_simvos.py") in found and ("module", "evaluation.davis_metrics") in found
    assert sorted(c for c in found if missing(c)) == []


def _help(command: tuple[str, str]) -> tuple[tuple[str, str], int, str]:
    kind, name = command
    argv = [sys.executable, name, "--help"] if kind == "script" else [sys.executable, "-m", name, "--help"]
    env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    return command, done.returncode, (done.stderr or done.stdout)[-600:]


def ours(command: tuple[str, str], root: Path = ROOT) -> bool:
    """A script or module of the repository (not of an installed package such as torch)."""
    kind, name = command
    return (root / (name if kind == "script" else name.split(".")[0])).exists()


@pytest.mark.slow
def test_every_documented_script_answers_help():
    """Each of our scripts and modules the documents run, once (a launcher such as
    torch.distributed.launch is only checked to exist, above)."""
    found = sorted(c for c in commands(documents()) if ours(c) and not missing(c))
    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f"{name} --help: exit {rc}\n{tail}" for (kind, name), rc, tail in pool.map(_help, found) if rc != 0]
    assert failures == []
