"""benchmarks.xla_flags --quick: the defaults' row has positive finite timings and a zero difference from itself;
XLA's own convolutions give the defaults' forward to float32 rounding; a flag this jaxlib does not know fails its
own process and its row says so (no speed is asserted)."""

import math
import os
import pathlib
import subprocess
import sys

import pytest

from tests.configs import table_rows

ROOT = pathlib.Path(__file__).resolve().parent.parent
YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="  # what train.core.parallel.xla_cpu_convolutions sets


@pytest.mark.slow
def test_quick_sweep_times_the_defaults_and_reports_an_unknown_flag(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # The test suite's persistent XLA cache (tests/conftest.py), keyed by XLA_FLAGS too: each setting's programs are
    # its own, and a rerun skips most of the compiling; the older threefry lowering compiles the init twice as fast.
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "jax"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    env.setdefault("JAX_THREEFRY_PARTITIONABLE", "false")
    settings = ";".join(["", YNN_OFF, "--xla_cpu_no_such_flag_for_test=1"])
    cmd = [sys.executable, "-m", "benchmarks.xla_flags", "--quick", f"--settings={settings}"]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = table_rows(run.stdout, "| XLA_FLAGS |")
    assert [r["XLA_FLAGS"] for r in rows] == ["(defaults)", YNN_OFF, "--xla_cpu_no_such_flag_for_test=1"]
    defaults, eigen, unknown = rows
    for column in ("train ms", "forward ms"):
        assert math.isfinite(float(defaults[column])) and float(defaults[column]) > 0, defaults
    assert float(defaults["train speed-up"]) == 1.0 and float(defaults["forward max abs diff"]) == 0.0
    assert unknown["train ms"].startswith("failed:"), unknown
    # train.ddpm's XLA:CPU convolutions (parallel.xla_cpu_convolutions): the same U-Net to float32 rounding
    assert 0.0 <= float(eigen["forward max abs diff"]) < 1e-5, eigen
