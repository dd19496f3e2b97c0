"""Three objectives on one U-Net, one dataset and one budget: sample quality against network calls (NFE) for
every sampler of a DDPM, an EDM and a flow-matching run.

    python -m benchmarks.objectives --ddpm runs/ddpm --edm runs/edm --flow runs/flow [--nfe 5,10,20,50,100]
        [--num 1000] [--out DIR]

Each run is read by its module's `load` (its config, its EMA parameters); every sampler is run once at the most
steps whose calls stay within each NFE (Heun: 2N - 1 for EDM's and the DDPM's karras_heun, 2N for the flow's; the
midpoint rule 2N; the others N), from the same key, on --num images, scored by the run's own evaluation
(train.evaluation.images.SampleQuality: FD, KID, precision and recall in its feature space, against the test
split; the floor of --num real train images beside them); with --ancestral, the DDPM's ancestral sampler over
all T steps too. Prints a markdown table and writes DIR/objectives.json, DIR/objectives.md and DIR/objectives.png (FD
against NFE).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

from benchmarks.common import device_line
from train import ddpm, edm as train_edm, flow as train_flow
from train.data import images as data
from train.evaluation import diffusion, images as evaluation
from zoo import edm, flow

# (module, run flag) -> [(sampler, calls of N steps)]
SAMPLERS = {
    "ddpm": [("ddim", lambda n: n), ("dpmpp_2m", lambda n: n)]
    + [(f"karras_{s}", lambda n, s=s: edm.num_evaluations(s, n)) for s in edm.SAMPLERS],
    "edm": [(s, lambda n, s=s: edm.num_evaluations(s, n)) for s in edm.SAMPLERS],
    "flow": [(s, lambda n, s=s: flow.num_evaluations(s, n)) for s in flow.SAMPLERS],
}
MODULES = {"ddpm": ddpm, "edm": train_edm, "flow": train_flow}
assert {s for s, _ in SAMPLERS["ddpm"]} == {"ddim", "dpmpp_2m", *diffusion.KARRAS_SAMPLERS}


def steps_within(calls, nfe: int) -> int:
    """The most steps N whose calls(N) stay within nfe (at least 1)."""
    n = 1
    while calls(n + 1) <= nfe:
        n += 1
    return n


def score(model, quality, sampler: str, steps: int, num: int, seed: int) -> dict:
    """The figures of num samples of one sampler at `steps`, and the seconds of that one call, its compiling
    included (a second, compiled call would double the run: the samplers' speed is benchmarks.ddpm_samplers')."""
    over = {"sampler": sampler, "steps": steps, "batch_size": num}
    t0 = time.perf_counter()
    images = model.sample(jax.random.key(seed), num, **over)
    secs = time.perf_counter() - t0
    return {**quality(images), "seconds": secs}


def rows_of(name: str, workdir: str, nfes: list[int], num: int, seed: int, ancestral: bool = False) -> list[dict]:
    model = MODULES[name].load(workdir)
    quality = evaluation.SampleQuality(model.config, data.images_of(model.config))
    settings = [(s, steps_within(calls, nfe)) for nfe in nfes for s, calls in SAMPLERS[name]]
    if name == "ddpm" and ancestral:
        settings.append(("ancestral", model.config.diffusion.num_timesteps))
    rows, calls_of = [], dict(SAMPLERS[name]) | {"ancestral": lambda n: n}
    for sampler, steps in dict.fromkeys(settings):  # in order, each once
        r = score(model, quality, sampler, steps, num, seed)
        rows.append({"objective": name, "sampler": sampler, "steps": steps, "nfe": calls_of[sampler](steps), **r})
        print(_md(rows[-1]), flush=True)
    return rows


def plot(rows: list[dict], path: str) -> None:
    """FD against NFE, one line per objective and sampler, log axes, the real-vs-real floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    keys = dict.fromkeys((r["objective"], r["sampler"]) for r in rows if r["sampler"] != "ancestral")
    for i, key in enumerate(keys):
        pts = sorted((r["nfe"], r["fd"]) for r in rows if (r["objective"], r["sampler"]) == key)
        style = {"ddpm": "--", "edm": "-", "flow": ":"}.get(key[0], "-")
        ax.plot(*zip(*pts), marker="o", label=f"{key[0]}: {key[1]}", linestyle=style, color=plt.cm.tab20(i % 20))
    for r in rows:
        if r["sampler"] == "ancestral":
            ax.scatter([r["nfe"]], [r["fd"]], marker="*", s=120, color="k", label="ddpm: ancestral", zorder=3)
    ax.axhline(rows[0]["ref_fd"], color="grey", linestyle=":", label="real vs real")
    ax.set(xscale="log", yscale="log", xlabel="network calls (NFE)", ylabel="FD (classifier features)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in MODULES:
        p.add_argument(f"--{name}", default="", help=f"a train.{name} run")
    p.add_argument("--nfe", default="5,10,20,50,100", help="comma-separated network-call budgets")
    p.add_argument("--num", type=int, default=1000, help="images per sampler and budget")
    p.add_argument("--seed", type=int, default=0, help="the sampling key")
    p.add_argument("--out", default="", help="a folder for objectives.json, .md and .png")
    p.add_argument("--ancestral", action="store_true", help="also the DDPM's ancestral sampler over all T steps")
    a = p.parse_args(argv)
    nfes = [int(n) for n in a.nfe.split(",")]
    print(device_line())
    header = (
        "| objective | sampler | NFE | FD | KID | precision | recall | seconds (compiling included) |\n"
        + "|---" * 8
        + "|"
    )
    print(header)
    rows = [
        r
        for name in MODULES
        if getattr(a, name)
        for r in rows_of(name, getattr(a, name), nfes, a.num, a.seed, a.ancestral)
    ]
    if not rows:
        p.error("name at least one run: --ddpm, --edm or --flow")
    floor = f"floor (real vs real, {a.num}): FD {rows[0]['ref_fd']:.2f}, KID {rows[0]['ref_kid']:.3g}"
    print(floor)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        clean = [{k: (float(v) if isinstance(v, np.floating) else v) for k, v in r.items()} for r in rows]
        with open(os.path.join(a.out, "objectives.json"), "w") as f:
            json.dump(clean, f, indent=1)
        with open(os.path.join(a.out, "objectives.md"), "w") as f:
            f.write(header + "\n" + "\n".join(_md(r) for r in rows) + f"\n\n{floor}\n")
        plot(rows, os.path.join(a.out, "objectives.png"))


def _md(r: dict) -> str:
    return (
        f"| {r['objective']} | {r['sampler']} | {r['nfe']} | {r['fd']:.2f} | {r['kid']:.3g} | {r['precision']:.3f} "
        f"| {r['recall']:.3f} | {r['seconds']:.2f} |"
    )


if __name__ == "__main__":
    main()
