"""Shared test set-up: a persistent XLA compilation cache, since compile time dominates on CPU."""

import os
import pathlib

import jax
import pytest

_CACHE = pathlib.Path(
    os.environ.get("ZOO_TEST_JAX_CACHE", pathlib.Path(__file__).resolve().parent.parent / ".pytest_cache" / "jax")
)
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
# The older threefry lowering compiles conv-kernel initialisers about twice as fast on CPU; random values
# differ from the default's but, like the default's, do not depend on how arrays are sharded.
jax.config.update("jax_threefry_partitionable", False)
# In-process tests compare against single-device references: one CPU device, unless a run forces more. Training
# modules that split the CPU into devices (train.word2vec, parallel.split_cpu) then keep this count.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    jax.config.update("jax_num_cpu_devices", 1)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One TFDS data dir per test process: digits are prepared, and the feature classifier trained, once."""
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="module")
def straight_run(request, data_dir, tmp_path_factory):
    """(workdir, figures) of a 6-step smoke run in one go of the test module's TRAIN entry point (with its
    STRAIGHT_OVERRIDES): the reference its resume and determinism tests compare with."""
    from tests.configs import run_straight

    overrides = getattr(request.module, "STRAIGHT_OVERRIDES", {})
    return run_straight(request.module.TRAIN, data_dir, tmp_path_factory, **overrides)
