"""benchmarks.word2vec_speed --quick: one alternated round of ours and gensim, each in its own process, on a small
Zipf corpus; the table's figures are positive and finite for both (no speed is asserted). Skipped without gensim."""

import importlib.util
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.configs import table_rows

ROOT = pathlib.Path(__file__).resolve().parent.parent

if importlib.util.find_spec("gensim") is None:
    pytest.skip("gensim is not installed (the 'test' extra)", allow_module_level=True)


@pytest.mark.slow
def test_quick_run_prints_positive_finite_figures_of_both_systems(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "benchmarks.word2vec_speed", "--quick", f"--workdir={tmp_path}"]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-3000:])
    out = run.stdout
    rows = table_rows(out, "| run |")
    assert [r["system"].split()[0] for r in rows] == ["ours", "gensim"]
    assert rows[0]["vocabulary"] == rows[1]["vocabulary"]  # the same file, the same min_count
    for r in rows:
        for column in ("end to end s", "train words/s", "CPU s", "peak RSS MB", "vocabulary"):
            value = float(r[column].replace(",", ""))
            assert math.isfinite(value) and value > 0, (column, r)
        for column in ("analogy", "Spearman"):
            assert math.isfinite(float(r[column])), (column, r)
    assert float(rows[0]["compile s"]) > 0
    assert "ratio ours / gensim: end-to-end speed" in out
    questions = re.search(r"quality on ([\d,]+) analogy questions", out)
    assert questions and int(questions.group(1).replace(",", "")) > 100  # the planted sets
