"""Paper-size DDPM configs on one device: parameters, XLA FLOPs, memory and the largest batch that fits, from the
real train step compiled abstractly (no parameter arrays, no data, nothing run), on the CPU here.

    python -m benchmarks.model_sizes [--configs=cifar10,imagenet64] [--batch=128] [--quick] [--json=PATH]

Each of --configs is a variant of train.ddpm (`--config=train/ddpm.py:NAME`), measured in float32 and bfloat16
(config.dtype: the network computes in it; parameters, Adam and the EMA stay float32). Its task is train.ddpm's
make_task on a stand-in dataset of the variant's image shape, read from the TFDS builder's metadata (nothing is
downloaded); the train state is loop.abstract_state (jax.eval_shape); the step is loop.compile_step (donating the
state) on a one-device mesh, lowered at a batch of --batch uint8 images and compiled, then again at --batch / 2.

Columns: parameters; XLA FLOPs per example (cost_analysis of one whole step, forward, backward, Adam and EMA, over
the batch); memory at --batch, the peak live bytes of compiled.memory_analysis(): argument + output + temp - alias
(the state and batch in, the new state and metrics out, XLA's scratch buffers, less the donated state that the
output reuses and both sums count); the fixed and per-example bytes of the line through the two batches' memory,
and the batches that line fits into 16e9 and 80e9 bytes: a linear extrapolation of XLA:CPU's buffer assignment,
an estimate of a GPU's (XLA:GPU fuses and schedules otherwise; cuDNN workspaces and the allocator's own use are not
counted); the seconds to lower and compile at --batch; the element type the compiled convolutions compute in.
XLA:CPU computes bfloat16 convolutions and matmuls in float32, converting around them, so its bfloat16 rows hold
float32 activations and bfloat16 copies: no estimate of a GPU's bfloat16 memory, which should be lower.

--quick measures tiny U-Nets of the same configs (base channels 8, one residual block, the first level and the
middle block with its attention) at batch 4: about 40 CPU seconds. Under a persistent compilation cache
(JAX_COMPILATION_CACHE_DIR) a rerun loads the programs and reports the same numbers, its compile seconds then being
load times.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from jax.sharding import Mesh

from benchmarks.common import compiled_flops, device_line
from train import ddpm as train_ddpm
from train.core import loop, parallel
from train.data import images as data


def define_flags() -> None:
    """The command line's flags, defined only when run as a script: the tests import this module beside other
    benchmarks whose absl flags share names (--quick)."""
    flags.DEFINE_list("configs", ["cifar10", "imagenet64"], "Variants of train.ddpm to measure.")
    flags.DEFINE_integer("batch", 128, "Batch of the memory and FLOP columns (even: the fit also compiles half of it).")
    flags.DEFINE_bool("quick", False, "Tiny U-Nets of the configs, at batch 4 unless --batch is given.")
    flags.DEFINE_string("json", "", "Also write the table's rows here, as JSON.")


DTYPES = ("float32", "bfloat16")
DEVICES = {"16GB": 16e9, "80GB": 80e9}  # bytes of the devices the fit column solves for
QUICK_BATCH = 4
# XLA:CPU then leaves LLVM's code generation unoptimised: the HLO passes, the cost analysis and the buffer assignment
# come before it, so FLOPs and memory stay the same (tests/test_model_sizes.py); the tiny U-Nets of --quick compile
# 2.5x faster (the paper-size ones 1.2x). Used where the compile seconds are not reported: the --batch / 2 compile.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def fit_note() -> str:
    xla = f"XLA:{jax.default_backend().upper()}"
    return (
        f"memory: argument + output + temp - alias bytes of {xla}'s compiled step; batch 16GB / 80GB: the line "
        f"through the memory at two batches solved for 16e9 / 80e9 bytes, a linear extrapolation of {xla}'s buffer "
        "assignment (an estimate of a GPU's); GB = 1e9 bytes. A bfloat16 row whose convolutions run in f32 holds "
        "float32 activations: no estimate of bfloat16 memory on a device that computes in it"
    )


def config_of(name: str, dtype: str, quick: bool = False):
    """train.ddpm's variant `name` computing in dtype; with quick, a tiny U-Net of the same kind."""
    c = train_ddpm.get_config(name)
    c.dtype = dtype
    if quick:  # base channels 8, one residual block, the first level (a second one doubles the compile seconds)
        c.model.ch, c.model.num_res_blocks, c.model.ch_mult = 8, 1, tuple(c.model.ch_mult)[:1]
    train_ddpm.SCHEMA.check(c)
    return c


def image_shape_of(c) -> tuple[int, int, int]:
    """(H, W, C) of the images config c trains on: the TFDS builder's metadata (nothing downloaded or read),
    resized to c.image_size when set."""
    import tensorflow_datasets as tfds

    features = tfds.builder(c.dataset, data_dir=c.data_dir or None).info.features
    shape = tuple(features["image"].shape)
    shape = shape + (1,) if len(shape) == 2 else shape
    return (c.image_size, c.image_size, shape[2]) if c.image_size else shape


class _Blank:
    """One all-zero example of a shape: a split that make_task can read its evaluation images from."""

    def __init__(self, shape):
        self.shape = shape

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return {"image": np.zeros(self.shape, np.uint8), "label": np.int32(0)}


def stand_in_data(c) -> data.ImageData:
    """An ImageData of the config's image shape and label count, with one blank image a split."""
    shape = image_shape_of(c)
    return data.ImageData(c.dataset, _Blank(shape), _Blank(shape), shape, max(1, c.model.num_classes))


def one_device_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()[:1]), ("data",))


def abstract_batch(mesh, batch: int, image_shape) -> dict:
    """The shapes of a train batch: uint8 images [B, H, W, C] and int32 labels [B], split over the mesh."""
    s = parallel.batch_sharding(mesh)
    return {
        "image": jax.ShapeDtypeStruct((batch, *image_shape), jnp.uint8, sharding=s),
        "label": jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=s),
    }


def lower_step(c, batch: int):
    """(lowered train step of config c at `batch` images, abstract state): compile_step's jit, lowered at shapes."""
    ds, mesh = stand_in_data(c), one_device_mesh()
    task = train_ddpm.make_task(c, ds)
    state = loop.abstract_state(task, c, mesh)
    return loop.compile_step(task, c, mesh).lower(state, abstract_batch(mesh, batch, ds.image_shape)), state


def peak_bytes(compiled) -> int:
    """memory_analysis()'s peak live estimate: argument + output + temp - alias bytes (alias: the donated
    arguments an output reuses, counted in both argument and output)."""
    m = compiled.memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes)


def conv_dtypes(compiled) -> str:
    """The element types of the convolutions' results in the optimised program, e.g. 'f32' ('-': none there, as
    where they became library calls): XLA:CPU computes bfloat16 convolutions in float32, converting around them."""
    found = re.findall(r"= (\w+)\[[^\]]*\]\S* convolution\(", compiled.as_text())
    return ",".join(sorted(set(found))) or "-"


def compile_at(c, batch: int, fast: bool = False) -> dict:
    """Parameters, FLOPs, peak bytes and lower + compile seconds of config c's step at `batch`; fast: LLVM's code
    generation unoptimised (FAST_COMPILE), which leaves the HLO, its cost analysis and buffer assignment as they are."""
    t0 = time.perf_counter()
    lowered, state = lower_step(c, batch)
    compiled = lowered.compile(FAST_COMPILE if fast else None)
    return {
        "params": sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params)),
        "flops": compiled_flops(compiled),
        "bytes": peak_bytes(compiled),
        "seconds": time.perf_counter() - t0,
        "convs": conv_dtypes(compiled),
    }


def fit(b1: int, m1: float, b2: int, m2: float) -> dict:
    """The line memory = fixed + per_example * batch through (b1, m1), (b2, m2), and the largest batch it fits into
    each of DEVICES (0 where even the fixed bytes do not fit)."""
    per_example = (m1 - m2) / (b1 - b2)
    fixed = m1 - per_example * b1
    fits = {}
    for device, capacity in DEVICES.items():
        fits[f"batch_{device}"] = max(0, math.floor((capacity - fixed) / per_example)) if per_example > 0 else None
    return {"fixed_bytes": fixed, "per_example_bytes": per_example, **fits}


def measure(name: str, dtype: str, batch: int, quick: bool = False) -> dict:
    """One row: config `name` in dtype compiled at batch and batch // 2."""
    c = config_of(name, dtype, quick)
    full, half = compile_at(c, batch, fast=quick), compile_at(c, batch // 2, fast=True)
    return {
        "config": name + (" (quick)" if quick else ""),
        "dtype": dtype,
        "image": "x".join(map(str, image_shape_of(c))),
        "params": full["params"],
        "batch": batch,
        "flops_per_example": full["flops"] / batch,
        "bytes": full["bytes"],
        **fit(batch, full["bytes"], batch // 2, half["bytes"]),
        "compile_seconds": full["seconds"],
        "convs_in": full["convs"],
    }


def table(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| config | dtype | image | params (M) | GFLOP/example | batch | memory (GB) | fixed (GB) | per example (MB) "
        "| batch 16GB | batch 80GB | compile s | convs in |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = (
            r["config"],
            r["dtype"],
            r["image"],
            f"{r['params'] / 1e6:.2f}",
            f"{r['flops_per_example'] / 1e9:.2f}",
            r["batch"],
            f"{r['bytes'] / 1e9:.2f}",
            f"{r['fixed_bytes'] / 1e9:.2f}",
            f"{r['per_example_bytes'] / 1e6:.1f}",
            r["batch_16GB"],
            r["batch_80GB"],
            f"{r['compile_seconds']:.1f}",
            r["convs_in"],
        )
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


def main(_):
    parallel.xla_cpu_convolutions()  # as train.ddpm compiles (before JAX's backends start)
    f = flags.FLAGS
    batch = QUICK_BATCH if f.quick and not f["batch"].present else f.batch
    if batch < 2 or batch % 2:
        raise app.UsageError(f"--batch={batch}: an even batch of at least 2 (the fit compiles batch / 2 too)")
    t0, rows = time.perf_counter(), []
    for name in f.configs:
        for dtype in DTYPES:
            rows.append(measure(name, dtype, batch, f.quick))
            print(f"{name} {dtype}: compiled at batch {batch} and {batch // 2}", file=sys.stderr, flush=True)
    print(device_line())
    print(table(rows))
    print(f"\n{fit_note()}. {time.perf_counter() - t0:.0f} s in all.")
    if f.json:
        with open(f.json, "w") as out:
            json.dump({"device": device_line(), "note": fit_note(), "rows": rows}, out, indent=1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
