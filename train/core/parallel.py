"""Data parallelism on jax.sharding: one 'data' mesh axis over every device of every process."""

from __future__ import annotations

import collections
import concurrent.futures
import importlib.metadata
import importlib.util
import json
import os
import pkgutil

import jax
import numpy as np
from jax._src import xla_bridge  # backends_are_initialized: no public equivalent
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def _cluster_detected() -> bool:
    """Environments where jax.distributed.initialize() finds its peers by itself."""
    slurm = int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ
    tpu_pod = len([h for h in os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1
    ompi = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
    return slurm or tpu_pod or ompi


def initialize_distributed(coordinator_address=None, num_processes=None, process_id=None) -> None:
    """Join a multi-process run: with explicit flags, or by JAX's own cluster detection (TPU pods, SLURM,
    Open MPI); a single process does nothing. CPU processes talk through gloo collectives."""
    from train.core.errors import ConfigError

    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if any(given) and not all(given):
        raise ConfigError(
            "--coordinator_address, --num_processes and --process_id go together; "
            f"got coordinator_address={coordinator_address!r}, num_processes={num_processes!r}, "
            f"process_id={process_id!r}"
        )
    if all(given):
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ConfigError(
                f"--process_id={process_id} must be in 0..{num_processes - 1} (--num_processes={num_processes})"
            )
        if ":" not in coordinator_address:
            raise ConfigError(f"--coordinator_address={coordinator_address!r} must be HOST:PORT")
    elif not _cluster_detected():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


# The JAX plugins (entry points of group jax_plugins, or modules of the jax_plugins namespace) of each accelerator,
# by the start of their names, and the device files its driver makes: a plugin alone (a CUDA wheel on a laptop)
# leaves JAX on the CPU.
ACCELERATOR_PLUGINS = {
    "gpu": ("xla_cuda", "jax_cuda", "cuda", "xla_rocm", "jax_rocm", "rocm"),
    "tpu": ("tpu", "libtpu"),
}
ACCELERATOR_DEVICE_FILES = {"gpu": ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd"), "tpu": ()}
PLATFORM_ALIASES = {"cuda": "gpu", "rocm": "gpu", "gpu": "gpu", "tpu": "tpu", "cpu": "cpu"}


def planned_backend() -> str:
    """'cpu', 'gpu' or 'tpu': the backend JAX makes its default, decided without starting any: the one that runs
    when JAX has started; else the first of jax_platforms / JAX_PLATFORMS when set; else an accelerator whose
    plugin is installed (and, for a GPU, whose driver's device files exist); else the CPU. The one place that
    decides whether the CPU-only settings below (split_cpu, schedule_depth_first, xla_cpu_convolutions) apply."""
    if xla_bridge.backends_are_initialized():
        return jax.default_backend()
    platforms = (jax.config.jax_platforms or os.environ.get("JAX_PLATFORMS", "")).strip()
    if platforms:
        first = platforms.split(",")[0].strip().lower()
        return PLATFORM_ALIASES.get(first, first)
    return installed_accelerator() or "cpu"


def installed_accelerator() -> str | None:
    """'tpu' or 'gpu' when JAX has a plugin for one on this host (and its device files exist), else None."""
    names = {ep.name.lower() for ep in importlib.metadata.entry_points(group="jax_plugins")}
    try:
        import jax_plugins  # the namespace package plugins install their modules into

        names |= {m.name.lower() for m in pkgutil.iter_modules(jax_plugins.__path__)}
    except ImportError:
        pass
    if importlib.util.find_spec("libtpu") is not None:
        names.add("libtpu")
    for backend in ("tpu", "gpu"):
        files = ACCELERATOR_DEVICE_FILES[backend]
        if any(n.startswith(ACCELERATOR_PLUGINS[backend]) for n in names) and (
            not files or any(os.path.exists(f) for f in files)
        ):
            return backend
    return None


def split_cpu(n: int = 0, most: int = 8) -> int:
    """Make this host's CPU n JAX devices (0: one per core, at most `most`): XLA:CPU runs each device's share
    of a sharded program in its own thread, so work that does not spread over cores by itself (word2vec's
    gathers and scatter-adds) uses all of them. Returns the CPU device count in force: n only when called
    before JAX's backends start and no count was forced already (XLA_FLAGS'
    --xla_force_host_platform_device_count, jax_num_cpu_devices); 0 where the default backend is an accelerator
    (planned_backend), whose hosts it leaves untouched."""
    from train.core.errors import ConfigError

    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(
            f"config.cpu_devices={n!r} must be a non-negative integer (0: one device per core, at most "
            f"{most}; 1: one device)"
        )
    if planned_backend() != "cpu":
        return 0
    forced = "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    if n != 1 and not forced and jax.config.jax_num_cpu_devices < 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        try:
            jax.config.update("jax_num_cpu_devices", n or max(1, min(cores, most)))
        except RuntimeError:  # backends already started (a caller ran JAX first): keep their count
            pass
    return len(jax.devices("cpu"))


def schedule_depth_first() -> bool:
    """Have XLA:CPU order each program's ops depth first instead of breadth first (its default, which lines up
    independent ops to run them concurrently). For programs of many small dependent ops, word2vec's row steps
    (60 us a minibatch), depth first keeps a minibatch's rows in cache: 1.7x faster on one core. XLA reads
    the flag when the CPU backend starts, so this only acts before then and when XLA_FLAGS does not set it
    already; returns whether it is in force."""
    return _default_xla_flag("--xla_cpu_enable_concurrency_optimized_scheduler", "false")


def _default_xla_flag(flag: str, value: str, cpu_only: bool = True) -> bool:
    """Add flag=value to XLA_FLAGS unless it names the flag already or JAX's backends have started (XLA reads
    its flags once, then), and for an XLA:CPU flag (cpu_only) unless the default backend is an accelerator;
    whether flag=value is in force."""
    flags = os.environ.get("XLA_FLAGS", "")
    if cpu_only and planned_backend() != "cpu":
        return False
    if flag not in flags and not xla_bridge.backends_are_initialized():
        os.environ["XLA_FLAGS"] = f"{flags} {flag}={value}".strip()
    return f"{flag}={value}" in os.environ.get("XLA_FLAGS", "").split()


YNN_FUSIONS_FLAG = "--xla_cpu_experimental_ynn_fusion_type"


def xla_cpu_convolutions() -> bool:
    """Have XLA:CPU run convolutions with its own (Eigen) kernels rather than as YNNPACK fusions, its default in
    jax 0.10. On this project's U-Nets, measured on 2 cores (benchmarks.xla_flags, benchmarks.ddpm_speed), the
    train step runs 1.31x faster (8x8 digits, the default config), 1.30x (16x16 batch 64) and 1.10x (32x32 batch
    32), the forward 1.3-1.5x, with the outputs equal to float32 rounding (1e-8). An XLA:CPU flag: GPU and TPU
    programs do not read it. XLA reads it when the CPU backend starts, so this only acts before then and when
    XLA_FLAGS does not set it already; returns whether it is in force."""
    return _default_xla_flag(YNN_FUSIONS_FLAG, "")  # an empty list of YNNPACK fusion types


def input_threads(on_cpu: int, most: int = 8) -> int:
    """grain read threads of an input pipeline: `on_cpu` where the CPU is the backend (more threads would take
    cores from the devices' own compute, which runs there too), else one per core of the host, at most `most`:
    an accelerator's host has cores to spare, and its device waits for batches that one thread makes too slowly
    for the small models (benchmarks.input_speed). The batches are the same, in the same order, either way."""
    if planned_backend() == "cpu":
        return on_cpu
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(on_cpu, min(cores, most))


def read_options(on_cpu: int, num_threads: int | None = None) -> grain.ReadOptions:  # noqa: F821
    """grain's ReadOptions of an input pipeline: num_threads threads (None: input_threads(on_cpu)) and a prefetch
    buffer that keeps each of them busy."""
    import grain  # imported where a pipeline needs it: with orbax, which it loads, 37 MB of a process's memory

    threads = num_threads or input_threads(on_cpu)
    return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(4, 2 * threads))


DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops"


def deterministic_ops(on: bool = True) -> bool:
    """config.deterministic: have XLA:GPU run scatter-adds and reductions in a fixed order (its default is atomics
    whose order varies from run to run), so a resumed GPU run is bit-identical to one never interrupted. XLA:CPU
    and TPU programs are deterministic already and read no such flag. Acts only before JAX's backends start and
    when XLA_FLAGS does not set the flag already; returns whether it is in force."""
    if not on:
        return False
    return _default_xla_flag(DETERMINISTIC_FLAG, "true", cpu_only=False)


# The process-wide settings an entry module may declare (train.core.entry.Entry.settings): the XLA flag each sets and
# the backend that reads it.
SETTINGS = {
    "xla_cpu_convolutions": (f"{YNN_FUSIONS_FLAG}=", "cpu"),
    "schedule_depth_first": ("--xla_cpu_enable_concurrency_optimized_scheduler=false", "cpu"),
    "deterministic_ops": (f"{DETERMINISTIC_FLAG}=true", "gpu"),
}


def apply_settings(settings) -> list[str]:
    """Make each process-wide setting (setters named in SETTINGS) and return the names of those not in force
    because JAX's backends had started before, on the backend that reads them (none on another backend)."""
    started = xla_bridge.backends_are_initialized()
    missed = []
    for setter in settings:
        in_force = setter()
        if not in_force and started and jax.default_backend() == SETTINGS[setter.__name__][1]:
            missed.append(setter.__name__)
    return missed


def settings_hint(names) -> str:
    """How to make the settings `names` where JAX starts before the module does."""
    flags = " ".join(SETTINGS[n][0] for n in names)
    return f"set XLA_FLAGS='{flags}' before JAX starts, or run the module from the command line"


def wait_each_step() -> bool:
    """Whether a training loop must wait for each step before queueing the next: on XLA:CPU with several
    local devices, two queued programs with collectives (async dispatch) can deadlock in their all-reduce
    rendezvous (seen with jax 0.10 on 2 cores within a few hundred steps; never when each step is awaited).
    Accelerators queue steps as usual."""
    return jax.default_backend() == "cpu" and jax.local_device_count() > 1


def data_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, axis: int = 0) -> NamedSharding:
    return NamedSharding(mesh, P(*([None] * axis), "data"))


def shard_batch(local_batch, mesh: Mesh, axis: int = 0):
    """Assemble each process's rows into global arrays split over the 'data' axis (the batch axis `axis`)."""
    sharding = batch_sharding(mesh, axis)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)


def replicate(tree, mesh: Mesh):
    return jax.device_put(tree, replicated(mesh))


class DevicePrefetch:
    """An input iterator's batches put on the devices `size` steps ahead of use (sharded over the mesh's 'data'
    axis along `axis`), so the host-to-device copy of the next batch overlaps the step running now. Its position
    (get_state, as JSON bytes, and set_state) is the wrapped iterator's after the last batch handed out, not after
    the batches still in flight, so a checkpoint resumes at the step it was saved at."""

    def __init__(self, iterator, mesh: Mesh, axis: int = 0, size: int = 2):
        self.iterator, self.mesh, self.axis, self.size = iterator, mesh, axis, size
        self._queue, self._state = collections.deque(), None

    def __iter__(self):
        return self

    def __next__(self):
        while len(self._queue) < self.size:
            batch = shard_batch(next(self.iterator), self.mesh, self.axis)
            self._queue.append((batch, _state_dict(self.iterator.get_state())))
        batch, self._state = self._queue.popleft()
        return batch

    def get_state(self) -> bytes:
        state = self._state if self._state is not None else _state_dict(self.iterator.get_state())
        return json.dumps(state).encode()

    def set_state(self, state) -> None:
        self._queue.clear()
        self._state = None
        self.iterator.set_state(_state_dict(state))

    def start_prefetch(self) -> None:
        getattr(self.iterator, "start_prefetch", lambda: None)()


class IndexedRecords:
    """record(0), record(1), ... in order, each made by one of `num_threads` threads (None: input_threads(1)),
    2 * num_threads records ahead of use (word2vec's steps ran as fast as with grain's buffer of 4). Its
    position is grain's MapDataset iterators' ({"next_index": i}, get_state/set_state), so their checkpoints
    resume here. What grain's MapDataset.range(...).map(record) gives a pipeline whose step's record is one
    call, without importing grain (with orbax, 37 MB of memory)."""

    def __init__(self, record, num_threads: int | None = None):
        self.record, self.threads = record, num_threads or input_threads(1)
        self.next_index, self._pending = 0, collections.deque()
        self._pool = concurrent.futures.ThreadPoolExecutor(self.threads, thread_name_prefix="records")

    def __iter__(self):
        return self

    def __next__(self):
        self.start_prefetch()
        record = self._pending.popleft().result()
        self.next_index += 1
        return record

    def start_prefetch(self) -> None:
        while len(self._pending) < 2 * self.threads:
            self._pending.append(self._pool.submit(self.record, self.next_index + len(self._pending)))

    def get_state(self) -> dict:
        return {"next_index": self.next_index}

    def set_state(self, state) -> None:
        for pending in self._pending:  # made for the old position: dropped (one already running finishes unread)
            pending.cancel()
        self._pending.clear()
        self.next_index = int(_state_dict(state)["next_index"])


def _state_dict(state):
    return json.loads(state) if isinstance(state, (bytes, str)) else state


SUM_CHUNK_ROWS = 4096  # rows of a table summed across the devices at a time (sum_touched)


def sum_touched(old, new, ids, axis: str, chunk: int | None = None):
    """old + the sum over the devices of mesh axis `axis` of (new - old), where each device's new differs from
    old only in rows `ids` (traced inside shard_map): the dense sum's result, with only the rows some device
    touched going across (word2vec's local SGD sums its sparse updates so). The devices' touched rows are found
    first (a [V] mask summed over them), then sent `chunk` rows at a time (None: SUM_CHUNK_ROWS), as many chunks
    as it takes. A table of at most `chunk` rows is summed whole: one chunk would carry it all, and the mask and
    the loop cost more than they save there (word2vec's default 900-word corpus: 4% slower steps)."""
    v, k = old.shape[0], chunk or SUM_CHUNK_ROWS
    if v <= k:
        return old + jax.lax.psum(new - old, axis)
    mask = jax.lax.psum(jax.numpy.zeros(v, jax.numpy.int32).at[ids].set(1), axis) > 0
    rows = jax.numpy.nonzero(mask, size=-(-v // k) * k, fill_value=v)[0]  # the touched rows, then v: out of bounds

    def one_chunk(i, table):  # chunks are disjoint: their rows of `table` are still the device's own
        r = jax.lax.dynamic_slice(rows, (i * k,), (k,))
        before = old.at[r].get(mode="fill", fill_value=0)
        change = jax.lax.psum(table.at[r].get(mode="fill", fill_value=0) - before, axis)
        return table.at[r].set(before + change, mode="drop")

    return jax.lax.fori_loop(0, (jax.numpy.sum(mask) + k - 1) // k, one_chunk, new)
