"""benchmarks.unet_speed --quick runs and prints both libraries' training, forward and sampling img/s: positive and
finite (no speed is asserted).

Skipped where torch or denoising-diffusion-pytorch is not installed (the pins of the 'peers' extra, installed
with --no-deps as docs/performance.md shows). The peer is looked up, not imported: the benchmark imports it in
its own process, standing in for a torchvision that does not load beside a CPU torch.
"""

import importlib.util
import math
import os
import pathlib
import subprocess
import sys

import pytest

from tests.configs import table_rows

ROOT = pathlib.Path(__file__).resolve().parent.parent

for _module in ("torch", "denoising_diffusion_pytorch"):
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed (the 'peers' extra)", allow_module_level=True)


@pytest.mark.slow
def test_quick_run_prints_positive_finite_rates_of_both_libraries(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    # The test suite's persistent XLA cache (tests/conftest.py): a rerun skips most of the compiling.
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "jax"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    env.setdefault("JAX_THREEFRY_PARTITIONABLE", "false")
    cmd = [sys.executable, "-m", "benchmarks.unet_speed", "--quick"]
    run = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "parameters: ours UNet" in out and "peer Unet" in out

    rows = table_rows(out, "| step |")
    assert {r["step"] for r in rows} == {"train", "forward"}
    for r in rows:
        for column in ("jax img/s", "torch img/s", "jax/torch"):
            value = float(r[column])
            assert math.isfinite(value) and value > 0, (column, r)
        share = float(r["jax % of roofline"].rstrip("%"))
        assert math.isfinite(share) and share > 0, r

    samplers = table_rows(out, "| sampler |")
    assert {r["sampler"] for r in samplers} == {"ddim", "ancestral"}
    for r in samplers:
        for column in ("jax img/s", "torch img/s", "jax/torch", "jax s/call", "torch s/call"):
            value = float(r[column])
            assert math.isfinite(value) and value > 0, (column, r)
        assert float(r["jax s/call"]) * float(r["jax img/s"]) == pytest.approx(float(r["batch"]), rel=0.1), r

    (before,) = table_rows(out, "| size |")
    for column, cell in before.items():
        assert math.isfinite(float(cell)) and float(cell) >= 0, (column, before)
