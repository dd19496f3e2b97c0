"""XLA:CPU flags against the DDPM U-Net's train step and forward: one process per setting, alternated rounds.

    python -m benchmarks.xla_flags [--size=32 --batch=32 --ch=64] [--rounds=2] [--settings='A;B;...'] [--quick]

Each setting is an XLA_FLAGS value (the empty one is XLA's defaults). Every round starts, for each setting in turn
(the order reversed every other round), a fresh process that compiles benchmarks.unet_speed's train step and
forward under those flags, times each for at least --min_time seconds and reports ms per call and the forward's
output on fixed inputs after one Adam step from the seeded init. The table prints the medians, the ratio to the
defaults' (above 1: faster) and the largest absolute difference of the forward's output from the defaults' (the
same model computed another way should differ by float32 rounding only). A setting this jaxlib does not know
fails its process; its row says so. --quick (the test's): one round of two calls each on a smaller U-Net
(QUICK_SPEC).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
from unittest import mock

from absl import app, flags

from benchmarks import unet_speed

DEFAULT_SETTINGS = (
    "",
    "--xla_cpu_experimental_ynn_fusion_type=",  # YNNPACK off: XLA's own (Eigen) convolutions and dots
    "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce,individual_dot,individual_convolution",
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_use_xnnpack=true",
)

# unet_speed's --ch, --rounds, --min_time and --quick serve here too, with defaults for this sweep
flags.FLAGS.set_default("rounds", 2)
flags.FLAGS.set_default("min_time", 4.0)
flags.DEFINE_integer("size", 32, "Image side.")
flags.DEFINE_integer("batch", 32, "Images per call.")
flags.DEFINE_string("settings", ";".join(DEFAULT_SETTINGS), "XLA_FLAGS values separated by ';' (first: baseline).")
flags.DEFINE_string("flags_worker", "", "Internal: run one setting's timings with this JSON spec and print JSON.")

# --quick: 8x8 images, batch 2, ch 16, two calls each, on a U-Net of one level of one residual block (unet_speed's:
# three levels of two): its 3x3 and 1x1 convolutions, attention (at 8x8 and in the middle), GroupNorms and skips in a
# third of the compile time, which is most of a quick sweep
QUICK_SPEC = {"size": 8, "batch": 2, "ch": 16, "min_time": 0.0, "unet": {"CH_MULT": (1,), "NUM_RES_BLOCKS": 1}}


def worker(spec: dict) -> dict:
    """In a process started with the setting's XLA_FLAGS: compile, time and run the forward on fixed inputs."""
    import jax
    import numpy as np

    from benchmarks.common import time_fn

    x = np.random.default_rng(0).uniform(-1, 1, (spec["batch"], spec["size"], spec["size"], 1)).astype(np.float32)
    # ours() builds from unet_speed's CH_MULT and NUM_RES_BLOCKS; --quick's smaller U-Net patches them (QUICK_SPEC)
    unet = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.get("unet", {}).items()}
    with mock.patch.multiple(unet_speed, **unet) if unet else contextlib.nullcontext():
        ours = unet_speed.ours(spec["size"], spec["batch"], spec["ch"], x)
    # The forward after one Adam step from the seeded init: deterministic, and not the init's zero output (the
    # U-Net's last convolution starts at zero).
    ours["call"]["train"]()
    out = np.asarray(jax.device_get(ours["call"]["forward"]()))
    ms = {
        s: 1e3 * time_fn(ours["call"][s], warmup=1, min_time=spec["min_time"], min_iters=2)
        for s in ("train", "forward")
    }
    return {"ms": ms, "forward": out.ravel().tolist()}


def run_setting(setting: str, spec: dict) -> dict:
    env = dict(os.environ, XLA_FLAGS=setting, JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "benchmarks.xla_flags", f"--flags_worker={json.dumps(spec)}"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last[:160]}
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(_):
    import numpy as np

    f = flags.FLAGS
    if f.flags_worker:
        print(json.dumps(worker(json.loads(f.flags_worker))))
        return
    spec = {"size": f.size, "batch": f.batch, "ch": f.ch, "min_time": f.min_time}
    rounds = f.rounds
    settings = f.settings.split(";")
    if f.quick:
        spec, rounds = QUICK_SPEC, 1
    if rounds < 1:
        raise app.UsageError(f"--rounds: an integer >= 1, got {rounds}")
    results = {s: [] for s in settings}
    for r in range(rounds):
        for s in settings if r % 2 == 0 else settings[::-1]:
            results[s].append(run_setting(s, spec))
            print(
                f"round {r + 1}: {s or '(defaults)'}: {results[s][-1].get('ms', results[s][-1].get('error'))}",
                flush=True,
            )

    def medians(s):
        ok = [x for x in results[s] if "ms" in x]
        return {k: statistics.median(x["ms"][k] for x in ok) for k in ("train", "forward")} if ok else None

    base = medians(settings[0])
    base_out = next((np.asarray(x["forward"]) for x in results[settings[0]] if "forward" in x), None)
    print()
    print(
        f"U-Net {spec['size']}x{spec['size']} batch {spec['batch']} ch {spec['ch']}: medians of {rounds} round(s), "
        f"one fresh process per setting and round; load average {'{:.2f} {:.2f} {:.2f}'.format(*os.getloadavg())}"
    )
    print("| XLA_FLAGS | train ms | forward ms | train speed-up | forward speed-up | forward max abs diff |")
    print("|---|---|---|---|---|---|")
    for s in settings:
        m = medians(s)
        name = s or "(defaults)"
        if m is None or base is None:
            err = next((x["error"] for x in results[s] if "error" in x), "baseline failed")
            print(f"| {name} | failed: {err} | | | | |")
            continue
        out = next(np.asarray(x["forward"]) for x in results[s] if "forward" in x)
        diff = float(np.max(np.abs(out - base_out)))
        print(
            f"| {name} | {m['train']:.1f} | {m['forward']:.1f} | {base['train'] / m['train']:.2f} "
            f"| {base['forward'] / m['forward']:.2f} | {diff:.1e} |"
        )


if __name__ == "__main__":
    app.run(main)
