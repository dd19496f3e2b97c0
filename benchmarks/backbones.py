"""The U-Net and DiT as denoisers, in pixel space and in a VQ-VAE's latent space, at one training budget.

    python -m benchmarks.backbones --dataset npz:DATA/mnist5k.npz --vqvae RUNS/vqvae --steps 800 --out DIR
        [--objective flow] [--runs unet,dit,latent_dit] [--batch_size 64] [--num_samples 500] [--quick]

For each denoiser (RUNS below) of one objective (train.flow by default): its parameters, the XLA FLOPs per example
of its train step (forward and backward) and of one network call, the train step's examples/s on this machine (one
fixed batch, after compiling), then a run of --steps steps of --batch_size (module.run, everything else the
module's defaults) and its evaluation: FD / KID / precision / recall of --num_samples samples in the feature
classifier's space, decoded to images for the latent run. Writes DIR/results.json, DIR/table.md, each run's last
sample grid as DIR/<run>.png and all of them side by side as DIR/samples.png; prints the table. The latent run
reads --vqvae, a train.vqvae run on the same images (its latents are encoded once and cached there). --quick: 4
steps and 16 samples, to check the script.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import jax
import numpy as np

from benchmarks.common import device_line, flops_of, time_fn
from train.core import config as config_lib, loop, parallel
from train.data import images as data, latents

# Three denoisers of comparable size: the U-Net halving 28x28 twice with attention at 7x7, and one transformer
# (4 blocks of width 128, 4 heads) on 49 tokens, either 4x4 patches of the pixels or the 7x7 grid of latents.
DIT = {"model.backbone": "dit", "model.hidden": 128, "model.depth": 4, "model.num_heads": 4}
RUNS = {
    "unet": {"model.ch": 32, "model.ch_mult": (1, 2, 2), "model.num_res_blocks": 1, "model.attn_resolutions": (7,)},
    "dit": {**DIT, "model.patch_size": 4},
    "latent_dit": {**DIT, "model.patch_size": 1},
}


def config_of(module, args, run: str):
    c = module.get_config()
    values = {
        **RUNS[run],
        "dataset": args.dataset,
        "num_steps": args.steps,
        "batch_size": args.batch_size,
        "eval.num_samples": args.num_samples,
        "checkpoint_every": args.steps,
        "progress": False,
    }
    if run.startswith("latent"):
        values["latent.autoencoder"] = args.vqvae
    if args.data_dir:
        values["data_dir"] = args.data_dir
    c = config_lib.from_dotted({**config_lib.dotted(c), **values})
    module.SCHEMA.check(c)
    return c


def step_figures(module, c, batch_size: int, min_time: float) -> dict:
    """Parameters, FLOPs per example of the train step and of one network call, examples/s of the train step."""
    from train.data import diffusion_runs

    ds = data.images_of(c)
    if c.get("latent", {}).get("autoencoder"):
        space, splits = latents.latent_space(c, ds)
        ds = latents.latent_data(ds, space, splits)
    task, mesh = module.make_task(c, ds.spec), parallel.data_mesh()
    state, step = loop.init_state(task, c, mesh), loop.compile_step(task, c, mesh)
    batch = parallel.shard_batch(next(data.batches(ds.train, batch_size, 0)), mesh)
    train_flops = flops_of(step, state, batch)
    net = diffusion_runs.make_network(c)
    x = jax.numpy.zeros((batch_size, *ds.image_shape))
    forward = jax.jit(lambda p, x: net.apply({"params": p}, x, jax.numpy.ones((len(x),))))
    call_flops = flops_of(forward, state.params, x)
    holder = [state]

    def one_step():
        holder[0], metrics, _ = step(holder[0], batch)
        return metrics

    secs = time_fn(one_step, min_time=min_time)
    return {
        "parameters": int(sum(np.prod(p.shape) for p in jax.tree.leaves(state.params))),
        "train_gflops_per_example": train_flops / batch_size / 1e9,
        "call_gflops_per_example": call_flops / batch_size / 1e9,
        "train_examples_per_sec": batch_size / secs,
        "input_shape": list(ds.image_shape),
    }


def trained_figures(module, c, workdir: str, sampler: str) -> dict:
    """The run's wall time and its last evaluation's sample-quality figures."""
    start = time.perf_counter()
    module.run(c, workdir)
    wall = time.perf_counter() - start
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        evals = [r for r in map(json.loads, f) if any(k.startswith("eval/") for k in r)]
    last = evals[-1]
    keep = ("fd", "kid", "precision", "recall", "ref_fd", "ref_kid")
    return {
        "train_secs": wall,
        **{k: last.get(f"eval/{sampler}_{k}") for k in keep},
        "test_loss": last["eval/test_loss"],
    }


def table(results: dict) -> str:
    head = (
        "| run | input | parameters | GFLOP/example (train step / call) | train examples/s | wall time | FD | KID "
        "| precision / recall |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for name, r in results.items():
        shape = "x".join(map(str, r["input_shape"]))
        rows.append(
            f"| {name} | {shape} | {r['parameters'] / 1e6:.2f}M | {r['train_gflops_per_example']:.3f} / "
            f"{r['call_gflops_per_example']:.3f} | {r['train_examples_per_sec']:.0f} | {r['train_secs'] / 60:.1f} min "
            f"| {r['fd']:.2f} | {r['kid']:.1f} | {r['precision']:.2f} / {r['recall']:.2f} |"
        )
    floor = next(iter(results.values()))
    note = f"\nfloor (real vs real, the same number of images): FD {floor['ref_fd']:.2f}, KID {floor['ref_kid']:.1f}\n"
    return head + "\n".join(rows) + note


def sample_figure(out: str, results: dict, steps: int) -> str | None:
    """DIR/samples.png: each run's last sample grid side by side, titled with its name and FD."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    runs = [r for r in results if os.path.exists(os.path.join(out, f"{r}.png"))]
    if not runs:
        return None
    fig = Figure(figsize=(4 * len(runs), 4.4))
    FigureCanvasAgg(fig)
    for i, run in enumerate(runs):
        ax = fig.add_subplot(1, len(runs), i + 1)
        ax.imshow(np.asarray(Image.open(os.path.join(out, f"{run}.png"))), cmap="gray")
        ax.set_title(f"{run}: FD {results[run]['fd']:.1f}, {steps} steps")
        ax.axis("off")
    fig.tight_layout()
    path = os.path.join(out, "samples.png")
    fig.savefig(path, dpi=100)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data_dir", default="")
    p.add_argument("--vqvae", default="", help="a train.vqvae run on the same images (for the latent runs)")
    p.add_argument("--objective", default="flow", choices=("flow", "edm"))
    p.add_argument("--runs", default=",".join(RUNS))
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--num_samples", type=int, default=500)
    p.add_argument("--min_time", type=float, default=5.0)
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    parallel.xla_cpu_convolutions()  # the U-Net modules' own setting (their Entry's), before JAX's backend starts
    if args.quick:
        args.steps, args.num_samples, args.min_time = 4, 16, 0.05
    runs = args.runs.split(",")
    unknown = [r for r in runs if r not in RUNS]
    if unknown or (any(r.startswith("latent") for r in runs) and not args.vqvae):
        p.error(f"--runs: {unknown or 'latent runs'} need known names ({', '.join(RUNS)}) and --vqvae for latents")
    import importlib

    module = importlib.import_module(f"train.{args.objective}")
    os.makedirs(args.out, exist_ok=True)
    results = {}
    for run in runs:
        c = config_of(module, args, run)
        if args.quick:
            quick = {"eval.classifier_steps": 5, "sample.steps": 2, "log_every": 2}
            c = config_lib.from_dotted({**config_lib.dotted(c), **quick})
        figures = step_figures(module, c, args.batch_size, args.min_time)
        workdir = os.path.join(args.out, "runs", run)
        figures.update(trained_figures(module, c, workdir, c.sample.sampler))
        grid = os.path.join(workdir, "samples", f"{c.sample.sampler}_{args.steps:06d}.png")
        if os.path.exists(grid):
            shutil.copy(grid, os.path.join(args.out, f"{run}.png"))
        results[run] = figures
        print(run, json.dumps(figures), flush=True)
    md = f"{device_line()}; train.{args.objective}, {args.steps} steps of {args.batch_size}, {args.dataset}\n\n"
    md += table(results)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(md)
    sample_figure(args.out, results, args.steps)
    print(md)


if __name__ == "__main__":
    main()
