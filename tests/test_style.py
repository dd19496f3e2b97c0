"""The code passes ruff's lint and format checks (pyproject.toml's [tool.ruff]: line length 120)."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _ruff(*args):
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_lint_passes():
    out = _ruff("check", "--no-cache", ".")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_ruff_format_leaves_every_file_as_it_is():
    out = _ruff("format", "--no-cache", "--check", ".")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def imported_modules(path: pathlib.Path) -> set[str]:
    """The modules a file imports (`import a.b`, `from a.b import c`: a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return names


def test_the_backbone_imports_no_data_or_evaluation():
    """train/core knows no kind of data: nothing of train.data or train.evaluation (the image side brings its
    batches and its run, train.data.image_runs)."""
    above = ("train.data", "train.evaluation")
    for path in sorted((ROOT / "train" / "core").glob("*.py")):
        bad = sorted(m for m in imported_modules(path) if m.startswith(above))
        assert not bad, (path.name, bad)
    assert "train.data.images" in imported_modules(ROOT / "train" / "data" / "image_runs.py")  # the check can fire
