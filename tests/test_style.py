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


def long_functions(path: pathlib.Path, most: int) -> list[str]:
    """The functions (and methods) of a file longer than `most` lines, as 'name: lines'."""
    nodes = ast.walk(ast.parse(path.read_text()))
    return [
        f"{n.name}: {n.end_lineno - n.lineno + 1}"
        for n in nodes
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > most
    ]


def test_functions_stay_short_and_entry_points_thin():
    """No function of train/ or zoo/ over 80 lines, no entry module (train/<name>.py) over 300: the math and the
    machinery live in their own modules, an entry point declares and joins them."""
    from train import registry

    paths = sorted([*(ROOT / "train").rglob("*.py"), *(ROOT / "zoo").rglob("*.py")])
    long = {p.relative_to(ROOT).as_posix(): f for p in paths if (f := long_functions(p, 80))}
    assert not long, long
    sizes = {name: len((ROOT / "train" / f"{name}.py").read_text().splitlines()) for name in registry.NAMES}
    assert max(sizes.values()) <= 300, sizes
    assert long_functions(ROOT / "train" / "core" / "loop.py", 20)  # the check can fire
