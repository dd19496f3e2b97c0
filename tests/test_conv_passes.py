"""benchmarks.conv_passes: each pass of a 3x3 convolution computes what its name says (in both layouts), and
--quick prints a row per pass and system with positive finite timings (no speed is asserted)."""

import math
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np

from benchmarks import conv_passes
from tests.configs import table_rows

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_layouts_passes_are_one_convolution_transposed():
    """Both layouts' passes on the same numbers (NCHW's inputs are NHWC's transposed) give the same forward,
    input gradient and kernel gradient, transposed back, to float32 rounding."""
    nhwc, nchw = conv_passes.xla_passes(2, 6, 3, "NHWC"), conv_passes.xla_passes(2, 6, 3, "NCHW")
    # xla_passes draws its own numbers per layout: redraw NCHW's from NHWC's to compare
    x, k, g = (
        np.random.default_rng(0).standard_normal(s, np.float32) for s in ((2, 6, 6, 3), (3, 3, 3, 3), (2, 6, 6, 3))
    )
    dims = conv_passes.LAYOUTS
    conv = lambda layout: (
        lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dims[layout])
    )
    to_nchw, to_oihw = (0, 3, 1, 2), (3, 2, 0, 1)
    y1, vjp1 = jax.vjp(conv("NHWC"), x, k)
    y2, vjp2 = jax.vjp(conv("NCHW"), x.transpose(to_nchw), k.transpose(to_oihw))
    (dx1, dk1), (dx2, dk2) = vjp1(g), vjp2(g.transpose(to_nchw))
    np.testing.assert_allclose(np.asarray(y2).transpose(0, 2, 3, 1), y1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(dx2).transpose(0, 2, 3, 1), dx1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(dk2).transpose(2, 3, 1, 0), dk1, rtol=1e-5, atol=1e-5)
    # and the benchmark's own calls return a pass's output: the kernel gradient has the kernel's shape
    assert nhwc["kernel grad"]().shape == (3, 3, 3, 3) and nchw["input grad"]().shape == (2, 3, 6, 6)


def test_quick_run_prints_every_pass_of_every_layout():
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "benchmarks.conv_passes", "--quick", "--notorch"]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = table_rows(run.stdout, "| batch:side:channels |")
    assert [(r["pass"], r["system"]) for r in rows] == [
        (p, s) for p in conv_passes.PASSES for s in ("XLA NHWC", "XLA NCHW")
    ]
    assert all(math.isfinite(float(r["ms"])) and float(r["ms"]) > 0 and r["torch s / this s"] == "-" for r in rows)
