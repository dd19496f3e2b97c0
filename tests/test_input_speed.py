"""benchmarks.input_speed --quick: a row for every input pipeline and thread count, in the printed table and in the
--json file alike, each with positive, finite batches/s and a need that follows from its model's FLOPs (no speed is
asserted)."""

import json
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.configs import table_rows

ROOT = pathlib.Path(__file__).resolve().parent.parent

PIPELINES = {
    "npz",
    "npz_flip",
    "npz_flip_streamed",
    "images_flip",
    "digits_autoencoder",
    "digits_vae",
    "digits_gan",
    "digits_streamed",
    "digits_resize_flip",
    "digits_resize_autoencoder",
    "digits_resize_vae",
    "digits_resize_gan",
    "word2vec_sgns",
    "word2vec_cbow",
}
THREADS = (1, 2)


def figure(cell: str) -> float:
    return float(cell.replace(",", ""))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """(stdout, the --json file's contents) of a --quick run with --threads=1,2."""
    tmp = tmp_path_factory.mktemp("input_speed")
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    threads = ",".join(map(str, THREADS))
    cmd = [sys.executable, "-m", "benchmarks.input_speed", "--quick", f"--threads={threads}"]
    cmd += [f"--json={tmp / 'rows.json'}", f"--workdir={tmp / 'work'}"]
    run = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-3000:])
    with open(tmp / "rows.json", encoding="utf-8") as f:
        return run.stdout, json.load(f)


@pytest.mark.slow
def test_every_pipeline_has_a_row_per_thread_count_with_positive_finite_rates(quick_run):
    out, _ = quick_run
    rows = table_rows(out, "| pipeline |")
    need = next(column for column in rows[0] if column.startswith("needed examples/s"))
    assert need == "needed examples/s (H100 @ 40%)"
    assert len(rows) == len(PIPELINES) * len(THREADS)
    for r in rows:
        for column in ("batches/s", "examples/s", need, "ratio (have/need)"):
            value = figure(r[column])
            assert math.isfinite(value) and value > 0, (column, r)
        assert figure(r["examples/s"]) == pytest.approx(figure(r["batches/s"]) * int(r["batch"]), rel=0.01), r
        ratio = figure(r["examples/s"]) / figure(r[need])
        assert figure(r["ratio (have/need)"]) == pytest.approx(ratio, rel=0.01), r
        assert r["verdict"] == ("keeps up" if ratio >= 1 else "falls short"), r
        assert int(r["threads"]) in THREADS and figure(r["first batch s"]) >= 0
    assert re.search(rf"host: {os.cpu_count()} CPUs", out)


@pytest.mark.slow
def test_json_holds_the_tables_rows_with_the_needs_from_the_models_flops(quick_run):
    out, written = quick_run
    rows = written["rows"]
    assert {r["key"] for r in rows} == PIPELINES
    assert sorted((r["key"], r["threads"]) for r in rows) == sorted((k, t) for k in PIPELINES for t in THREADS)
    table = table_rows(out, "| pipeline |")
    assert [(r["pipeline"], r["model"], str(r["threads"])) for r in rows] == [
        (r["pipeline"], r["model it feeds"], r["threads"]) for r in table
    ]
    assert (written["cpus"], written["peak_tflops"], written["mfu"], written["quick"], written["flops_of"]) == (
        os.cpu_count(),
        989.4,
        0.4,
        True,
        "lowered",
    )
    for r in rows:
        assert math.isfinite(r["batches_per_s"]) and r["batches_per_s"] > 0, r
        assert math.isfinite(r["flops_per_example"]) and r["flops_per_example"] > 0, r
        assert r["needed_examples_per_s"] == pytest.approx(0.4 * 989.4e12 / r["flops_per_example"]), r
        assert r["ratio"] == pytest.approx(r["batches_per_s"] * r["batch"] / r["needed_examples_per_s"]), r
    by_key = {r["key"]: r for r in rows}
    assert by_key["digits_gan"]["batch"] == 64 and by_key["npz"]["batch"] == 128  # the models' configs' batches
    # the same DDPM on flipped and unflipped batches of the same images: the same FLOPs, the same need
    assert by_key["npz"]["needed_examples_per_s"] == by_key["npz_flip"]["needed_examples_per_s"]
