"""The code passes ruff's lint and format checks (pyproject.toml's [tool.ruff]: line length 120)."""

from __future__ import annotations

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
