"""Data parallelism on jax.sharding: one 'data' mesh axis over every device of every process."""
from __future__ import annotations

import os

import jax
import numpy as np
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
    from train.config import ConfigError
    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if any(given) and not all(given):
        raise ConfigError("--coordinator_address, --num_processes and --process_id go together; "
                          f"got coordinator_address={coordinator_address!r}, num_processes={num_processes!r}, "
                          f"process_id={process_id!r}")
    if all(given):
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ConfigError(f"--process_id={process_id} must be in 0..{num_processes - 1} "
                              f"(--num_processes={num_processes})")
        if ":" not in coordinator_address:
            raise ConfigError(f"--coordinator_address={coordinator_address!r} must be HOST:PORT")
    elif not _cluster_detected():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)


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
