"""Data parallelism on JAX's own runtime: many devices, many processes, one compilation."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.test_loop import ROOT, final_params, losses, softmax_task, tiny_config
from train.core import loop, parallel
from train.data import images as data

SCRIPT = """
import sys
from train.data import images as data
from train.core import loop, parallel
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
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": ROOT,
        "JAX_THREEFRY_PARTITIONABLE": str(jax.config.jax_threefry_partitionable),
        **extra,
    }


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
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, workdir, str(tmp_path / "tfds")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DEVICES 8 PROCESSES 1" in proc.stdout
    _assert_same_training(workdir, single_device_run, digits)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_and_checkpoint_together(digits, single_device_run, tmp_path):
    workdir, address = str(tmp_path / "two"), f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, workdir, str(tmp_path / f"tfds{i}"), address, "2", str(i)],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "DEVICES 2 PROCESSES 2" in out
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
    _assert_same_training(workdir, single_device_run, digits)


SPLIT = """
import os, sys
from train.core import parallel
n = parallel.split_cpu(int(sys.argv[1]))
import jax
print("SPLIT", n, jax.device_count(), parallel.wait_each_step(), parallel.split_cpu(5))
"""


@pytest.mark.parametrize(
    "ask, forced, want",
    [
        (0, None, min(len(os.sched_getaffinity(0)), 8)),  # one device per core, at most 8
        (3, None, 3),
        (1, None, 1),
        (3, 4, 4),  # XLA_FLAGS' forced count wins
    ],
)
def test_split_cpu_gives_one_device_per_core_or_the_count_asked(ask, forced, want):
    """split_cpu(n) before JAX starts sets the CPU device count; called again after, it changes nothing.
    Several CPU devices make the training loop wait for each step (XLA:CPU collective deadlock guard)."""
    env = _env(XLA_FLAGS=f"--xla_force_host_platform_device_count={forced}") if forced else _env()
    if not forced:
        env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, "-c", SPLIT, str(ask)], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"SPLIT {want} {want} {want > 1} {want}" in proc.stdout


XLA_FLAG_SETTER = """
import os, sys
from train.core import parallel
if sys.argv[1] == "after":
    import jax
    jax.devices()  # the backends have started: XLA has read its flags
print("ON", getattr(parallel, sys.argv[2])(), os.environ.get("XLA_FLAGS", ""))
"""
SCHEDULER = "--xla_cpu_enable_concurrency_optimized_scheduler"
YNN = "--xla_cpu_experimental_ynn_fusion_type"


@pytest.mark.parametrize(
    "setter, when, flags, want_on, want_flags",
    [
        ("schedule_depth_first", "before", "", True, f"{SCHEDULER}=false"),
        ("schedule_depth_first", "before", f"{SCHEDULER}=true", False, f"{SCHEDULER}=true"),  # the user's wins
        ("schedule_depth_first", "after", "", False, ""),  # too late to take effect: XLA_FLAGS left alone
        ("xla_cpu_convolutions", "before", "", True, f"{YNN}="),
        ("xla_cpu_convolutions", "before", "--xla_dump_to=/tmp/x", True, f"--xla_dump_to=/tmp/x {YNN}="),
        ("xla_cpu_convolutions", "before", f"{YNN}=dot", False, f"{YNN}=dot"),
        ("xla_cpu_convolutions", "after", "", False, ""),
    ],
)
def test_xla_flag_setters_act_only_before_jax_starts_and_never_over_the_users(setter, when, flags, want_on, want_flags):
    env = _env(XLA_FLAGS=flags)
    proc = subprocess.run(
        [sys.executable, "-c", XLA_FLAG_SETTER, when, setter],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"ON {want_on} {want_flags}".strip() == proc.stdout.strip().splitlines()[-1].strip()


def _python(script: str, *args: str, env: dict) -> str:
    """The stdout of `python -c script args` in the repository, after checking it exited 0."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


CPU_SETTINGS = """
import os, sys
from train.core import parallel
import jax
on = (parallel.schedule_depth_first(), parallel.xla_cpu_convolutions(), parallel.deterministic_ops(True))
flags = os.environ.get("XLA_FLAGS", "")
devices = parallel.split_cpu(0)  # last: on the CPU it starts JAX's backends to count the devices
print("PLANNED", parallel.planned_backend(), "ON", devices, *on[:2], "CPUS", jax.config.jax_num_cpu_devices)
print("DETERMINISTIC", on[2])
print("FLAGS", flags)
"""


@pytest.mark.parametrize("platforms, backend", [("cuda", "gpu"), ("tpu", "tpu"), ("cuda,cpu", "gpu"), ("cpu", "cpu")])
def test_cpu_settings_apply_only_where_the_cpu_is_the_backend(platforms, backend):
    """A GPU- or TPU-shaped environment (JAX_PLATFORMS names the accelerator first) keeps XLA_FLAGS and the CPU
    device count as they were: split_cpu, schedule_depth_first and xla_cpu_convolutions do nothing there, decided by
    parallel.planned_backend without starting a backend; on the CPU they apply. The GPU's deterministic-ops flag
    is passed through wherever it is asked for."""
    stdout = _python(CPU_SETTINGS, env=_env(JAX_PLATFORMS=platforms, XLA_FLAGS=""))
    out = dict(line.split(" ", 1) for line in stdout.splitlines() if " " in line)
    flags = out.get("FLAGS", "").split()
    assert out["DETERMINISTIC"] == "True" and f"{parallel.DETERMINISTIC_FLAG}=true" in flags
    if backend == "cpu":
        cores = min(len(os.sched_getaffinity(0)), 8)
        assert out["PLANNED"].split() == ["cpu", "ON", str(cores), "True", "True", "CPUS", str(cores)]
        assert f"{SCHEDULER}=false" in flags and f"{YNN}=" in flags
    else:
        assert out["PLANNED"].split() == [backend, "ON", "0", "False", "False", "CPUS", "-1"]
        assert flags == [f"{parallel.DETERMINISTIC_FLAG}=true"]  # nothing of the CPU's


@pytest.mark.parametrize(
    "plugins, device_files, libtpu, want",
    [
        (["xla_cuda12"], ["/dev/nvidiactl"], False, "gpu"),
        (["xla_cuda12"], [], False, None),  # a CUDA wheel on a machine without the driver: JAX stays on the CPU
        ([], [], True, "tpu"),
        ([], ["/dev/nvidiactl"], False, None),
    ],
)
def test_installed_accelerator_needs_a_plugin_and_for_a_gpu_its_driver(
    plugins, device_files, libtpu, want, monkeypatch
):
    entry = lambda name: type("EntryPoint", (), {"name": name})()
    monkeypatch.setattr(parallel.importlib.metadata, "entry_points", lambda group: [entry(n) for n in plugins])
    monkeypatch.setattr(parallel.pkgutil, "iter_modules", lambda path: [])
    monkeypatch.setattr(parallel.os.path, "exists", lambda f: f in device_files)
    real_find_spec = parallel.importlib.util.find_spec
    monkeypatch.setattr(
        parallel.importlib.util,
        "find_spec",
        lambda n: (object() if libtpu else None) if n == "libtpu" else real_find_spec(n),
    )
    assert parallel.installed_accelerator() == want


@pytest.mark.parametrize("backend, want", [("cpu", 1), ("gpu", min(len(os.sched_getaffinity(0)), 8))])
def test_input_threads_stay_one_on_the_cpu_and_use_the_hosts_cores_beside_an_accelerator(backend, want, monkeypatch):
    monkeypatch.setattr(parallel, "planned_backend", lambda: backend)
    assert parallel.input_threads(1) == want
    options = parallel.read_options(1)
    assert options.num_threads == want and options.prefetch_buffer_size >= 2 * want
    assert parallel.read_options(1, num_threads=3).num_threads == 3  # asked for: as asked


DETERMINISTIC_CLI = """
import dataclasses, os, sys
from train import autoencoder
from train.core import cli
show = lambda config, workdir: print("FLAGS", os.environ.get("XLA_FLAGS", ""), config.deterministic)
sys.argv = ["autoencoder", "--workdir", sys.argv[1], *sys.argv[2:]]
cli.main(dataclasses.replace(autoencoder.ENTRY, train=show))
"""


@pytest.mark.parametrize("args, want", [((), False), (("--config.deterministic=True",), True)])
def test_config_deterministic_reaches_xla_before_the_run(args, want, tmp_path):
    """--config.deterministic=True puts XLA:GPU's deterministic-ops flag into XLA_FLAGS before the module runs
    (before JAX's backends start, when XLA reads it); without it XLA_FLAGS stays as it was."""
    out = _python(DETERMINISTIC_CLI, str(tmp_path / "run"), *args, env=_env(XLA_FLAGS=""))
    line = next(line for line in out.splitlines() if line.startswith("FLAGS"))
    assert (f"{parallel.DETERMINISTIC_FLAG}=true" in line.split()) == want and line.endswith(str(want))


class _Counting:
    """An input iterator of numbered batches with a grain-like position."""

    def __init__(self):
        self.next_index = 0

    def __next__(self):
        self.next_index += 1
        return {"x": np.full((4, 2), self.next_index - 1, np.float32)}

    def get_state(self):
        return {"next_index": self.next_index}

    def set_state(self, state):
        self.next_index = state["next_index"]


def test_device_prefetch_hands_out_batches_in_order_with_the_position_of_those_taken():
    """Batches arrive on the devices ahead of use, in order, as sharded jax Arrays; the position a checkpoint
    saves is that of the batches handed out (not of those in flight), and a restored position restarts there."""
    mesh = parallel.data_mesh()
    it = parallel.DevicePrefetch(_Counting(), mesh, size=2)
    assert json_state(it) == {"next_index": 0}
    first = [next(it) for _ in range(3)]
    assert [int(b["x"][0, 0]) for b in first] == [0, 1, 2]
    assert isinstance(first[0]["x"], jax.Array) and first[0]["x"].sharding == parallel.batch_sharding(mesh)
    assert it.iterator.next_index == 4  # one batch in flight
    assert json_state(it) == {"next_index": 3}
    it.set_state(b'{"next_index": 1}')
    assert int(next(it)["x"][0, 0]) == 1 and json_state(it) == {"next_index": 2}


def test_indexed_records_come_in_order_from_any_threads_and_resume_where_their_position_says():
    """IndexedRecords hands out record(0), record(1), ... in order whatever its threads finish first (later
    indices here finish sooner), keeps at most 2 * threads ahead, reports grain's position and restarts there;
    a record's error reaches the reader."""
    import threading
    import time

    made, lock = [], threading.Lock()

    def record(i):
        time.sleep(0.02 * (i % 3 == 0))
        with lock:
            made.append(i)
        if i == 9:
            raise ValueError("record 9 is bad")
        return {"i": i}

    it = parallel.IndexedRecords(record, num_threads=3)
    assert [next(it)["i"] for _ in range(5)] == [0, 1, 2, 3, 4]
    assert it.get_state() == {"next_index": 5}
    time.sleep(0.1)
    assert max(made) <= 4 + 2 * 3
    it.set_state(b'{"next_index": 2}')
    assert [next(it)["i"] for _ in range(3)] == [2, 3, 4] and it.get_state() == {"next_index": 5}
    it.set_state({"next_index": 8})
    assert next(it)["i"] == 8
    with pytest.raises(ValueError, match="record 9 is bad"):
        next(it)


def test_a_word2vec_run_imports_neither_grain_orbax_nor_scipy_until_it_needs_them():
    """train.word2vec's process keeps grain and orbax (37 MB) and scipy (11 MB) out until a checkpoint is opened
    or a sparse matrix is made: peak memory against gensim's (benchmarks.word2vec_speed)."""
    script = (
        "import sys, train.word2vec\n"
        "from train.core import checkpoint\n"
        "print(sorted(m for m in ('grain', 'orbax', 'scipy', 'tensorstore') if m in sys.modules))"
    )
    assert _python(script, env=_env()).split() == ["[]"]


def json_state(it):
    import json

    return json.loads(it.get_state())


def test_distributed_flags_must_come_together():
    with pytest.raises(Exception, match="go together"):
        parallel.initialize_distributed("127.0.0.1:1234", None, None)
    with pytest.raises(Exception, match="process_id=3 must be in 0..1"):
        parallel.initialize_distributed("127.0.0.1:1234", 2, 3)


# ----------------------------------------------------------------------------- every training module


def module_configs(data_dir):
    """Each training module with a gradient step (PCA has none; word2vec: tests/test_train_word2vec.py), on a
    tiny config with no warmup (so the first step moves the parameters), plus a vmapped beta sweep."""
    from tests import test_train_autoencoder, test_train_ddpm, test_train_gan, test_train_vae

    common = dict(batch_size=16, warmup_steps=0)
    sweep = test_train_vae.tiny_config(data_dir, **common)
    sweep.sweep.beta = (0.5, 4.0)
    small_unet = {"model.ch_mult": (1,), "model.attn_resolutions": (8,)}
    return {
        "ddpm": test_train_ddpm.tiny_config(data_dir, **common, **small_unet),
        "autoencoder": test_train_autoencoder.tiny_config(data_dir, **common, **{"model.arch": "conv"}),
        "vae": test_train_vae.tiny_config(data_dir, **common),
        "gan": test_train_gan.tiny_config(data_dir, **common, **{"model.arch": "dcgan", "loss": "wgan-gp"}),
        "vae_beta_sweep": sweep,
    }


MODULES_SCRIPT = """
import importlib, sys
import jax, numpy as np
from jax.sharding import Mesh
from tests.test_parallel import module_configs
from train.core import config as config_lib, loop, parallel
from train.data import images as data
out, data_dir = sys.argv[1], sys.argv[2]
ds = data.load_images("digits", data_dir)
for name, c in module_configs(data_dir).items():
    task = importlib.import_module("train." + name.split("_")[0]).make_task(c, ds)
    replicas = config_lib.sweep_replicas(c)
    it = data.batches(ds.train, c.batch_size, c.seed)
    batches = [next(it) for _ in range(3)]
    if replicas:  # one seed: every replica reads the same stream
        batches = [jax.tree.map(lambda x: np.stack([x] * len(replicas)), b) for b in batches]
    for label, devices in (("one", jax.devices()[:1]), ("eight", jax.devices())):
        mesh = Mesh(np.asarray(devices), ("data",))
        state, step = loop.init_state(task, c, mesh, replicas), loop.compile_step(task, c, mesh, replicas)
        if label == "one":
            np.savez(f"{out}/{name}_init.npz", *jax.tree.leaves(jax.device_get(state.params)))
        for i, batch in enumerate(batches):
            state, metrics, _ = step(state, parallel.shard_batch(batch, mesh, axis=1 if replicas else 0))
            if i == 0:
                np.savez(f"{out}/{name}_{label}.npz", *jax.tree.leaves(jax.device_get(state.params)))
        jax.block_until_ready(metrics)
        print("COMPILED", name, label, "devices", mesh.devices.size, "cache", step._cache_size(), flush=True)
"""


def test_every_training_module_on_eight_devices_equals_one_device(tmp_path):
    """One step of each module on the same global batch: the 8-device mesh gives the 1-device parameters up to
    the summation order of the all-reduce (rtol 1e-5, atol 1e-6, against Adam steps of ~1e-3), and 3 steps
    compile once on each mesh."""
    data_dir = str(tmp_path / "tfds")
    env = _env(
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
        JAX_COMPILATION_CACHE_DIR=os.path.join(ROOT, ".pytest_cache", "jax_subprocess"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", MODULES_SCRIPT, str(tmp_path), data_dir],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in module_configs(data_dir):
        for label, n in (("one", 1), ("eight", 8)):
            assert f"COMPILED {name} {label} devices {n} cache 1" in proc.stdout, (name, proc.stdout)
        init, one, eight = (np.load(tmp_path / f"{name}_{label}.npz") for label in ("init", "one", "eight"))
        assert max(np.max(np.abs(one[k] - init[k])) for k in one.files) > 1e-4, name  # the step moved them
        for k in one.files:
            np.testing.assert_allclose(eight[k], one[k], rtol=1e-5, atol=1e-6, err_msg=f"{name} parameter {k}")


def test_step_compiles_once(digits):
    c = tiny_config()
    task, mesh = softmax_task(digits), parallel.data_mesh()
    state, step = loop.init_state(task, c, mesh), loop.compile_step(task, c, mesh)
    it = data.batches(digits.train, c.batch_size, c.seed)
    for _ in range(5):
        state, metrics, _ = step(state, parallel.shard_batch(next(it), mesh))
    jax.block_until_ready(metrics)
    assert step._cache_size() == 1


SUM_TOUCHED = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import PartitionSpec as P
from train.core import parallel
mesh = parallel.data_mesh()
assert mesh.size == 4
rng = np.random.default_rng(0)
V, D = 300, 3
old = rng.normal(size=(V, D)).astype(np.float32)
ids = rng.integers(0, V, size=(4, 20)).astype(np.int32)  # each device's rows, repeats and overlaps included
new = np.repeat(old[None], 4, axis=0)
for d in range(4):
    new[d, ids[d]] += rng.normal(size=(20, D)).astype(np.float32)
def summed(chunk):
    def f(o, n, i):
        return parallel.sum_touched(o, n[0], i[0], "data", chunk)[None]
    spec = dict(in_specs=(P(), P("data"), P("data")), out_specs=P("data"), check_vma=False)
    return np.asarray(jax.jit(jax.shard_map(f, mesh=mesh, **spec))(old, new, ids))
dense = old + (new - old).sum(axis=0)
for chunk in (7, 50, V - 1, None):  # many chunks, a few, two, and the whole table (V <= SUM_CHUNK_ROWS)
    out = summed(chunk)
    assert all(np.array_equal(out[d], out[0]) for d in range(4)), chunk
    np.testing.assert_allclose(out[0], dense, rtol=1e-6, atol=1e-6, err_msg=str(chunk))
    untouched = np.setdiff1d(np.arange(V), ids)
    assert untouched.size and np.array_equal(out[0][untouched], old[untouched]), chunk
print("OK")
"""


def test_sum_touched_equals_the_dense_sum_of_the_devices_changes():
    """parallel.sum_touched, on 4 devices that each change their own rows of a table: every device ends with
    old + the sum of all devices' changes (the dense psum's result), the untouched rows as they were, however
    many chunks the touched rows take."""
    out = _python(SUM_TOUCHED, env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"))
    assert "OK" in out
