"""Data parallelism on JAX's own runtime: many devices, many processes, one compilation."""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.test_loop import ROOT, final_params, losses, softmax_task, tiny_config
from train import data, loop, parallel

SCRIPT = """
import sys
from train import data, loop, parallel
from tests.test_loop import softmax_task, tiny_config
if len(sys.argv) > 3:
    parallel.initialize_distributed(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
import jax
ds = data.load_images("digits", sys.argv[2])
loop.train(tiny_config(num_steps=4, checkpoint_every=2), sys.argv[1], softmax_task(ds))
print("DEVICES", jax.device_count(), "PROCESSES", jax.process_count())
"""


def _env(**extra):
    # Same PRNG implementation as this process (tests/conftest.py), so both sides draw the same numbers.
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": ROOT,
            "JAX_THREEFRY_PARTITIONABLE": str(jax.config.jax_threefry_partitionable), **extra}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return data.load_images("digits", str(tmp_path_factory.mktemp("tfds")))


@pytest.fixture(scope="module")
def single_device_run(digits, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("one"))
    loop.train(tiny_config(num_steps=4, checkpoint_every=2), workdir, softmax_task(digits))
    return workdir


def _assert_same_training(workdir, reference, digits):
    # Same global batch and step keys: equal up to the order of the gradient all-reduce (float32).
    np.testing.assert_allclose([l for _, l in losses(workdir)], [l for _, l in losses(reference)], rtol=1e-5)
    a, b = final_params(workdir, digits, tiny_config())[1], final_params(reference, digits, tiny_config())[1]
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_eight_devices_equal_one(digits, single_device_run, tmp_path):
    workdir = str(tmp_path / "eight")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, workdir, str(tmp_path / "tfds")], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DEVICES 8 PROCESSES 1" in proc.stdout
    _assert_same_training(workdir, single_device_run, digits)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_and_checkpoint_together(digits, single_device_run, tmp_path):
    workdir, address = str(tmp_path / "two"), f"127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, workdir, str(tmp_path / f"tfds{i}"), address, "2", str(i)],
                              cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "DEVICES 2 PROCESSES 2" in out
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
    _assert_same_training(workdir, single_device_run, digits)


def test_distributed_flags_must_come_together():
    with pytest.raises(Exception, match="go together"):
        parallel.initialize_distributed("127.0.0.1:1234", None, None)
    with pytest.raises(Exception, match="process_id=3 must be in 0..1"):
        parallel.initialize_distributed("127.0.0.1:1234", 2, 3)


def test_step_compiles_once(digits):
    c = tiny_config()
    task, mesh = softmax_task(digits), parallel.data_mesh()
    state, step = loop.init_state(task, c, mesh), loop.compile_step(task, c, mesh)
    it = data.batches(digits.train, c.batch_size, c.seed)
    for _ in range(5):
        state, metrics, _ = step(state, parallel.shard_batch(next(it), mesh))
    jax.block_until_ready(metrics)
    assert step._cache_size() == 1
