"""The GAN stabilisers measured: WGAN-GP's n_critic on a 2-D ring of Gaussians, and spectral norm + R1 + DiffAugment
on real digits.

    python -m benchmarks.gan_stabilisers ring [--seeds 0,1,2,3] [--g-steps 2000] [--out docs/figures]
    python -m benchmarks.gan_stabilisers mnist --data DATA/mnist5k.npz [--steps 10000] [--out docs/figures]

ring: 8 Gaussians of standard deviation 0.02 evenly on a circle of radius 0.8 (the WGAN-GP and unrolled-GAN toy,
scaled into the generator's tanh range). An MLP generator (2-d z) and critic (3 x 128) from zoo.gan train with the
WGAN-GP loss (gradient penalty 10, Adam 1e-4, b1 0.5, b2 0.9, batch 256) at each n_critic, for the same number of
generator steps; every --eval-every generator steps, 2500 samples are scored: a sample is high quality within 3
standard deviations of a mode, and a mode is covered when at least 2% of the samples are high-quality samples of it.
Prints a markdown table (mean and range over the seeds) and writes OUT/gan_stabilisers_ring.png.

mnist: `train.gan`'s default config on the npz at the same steps, plain and with its stabilisers (d_spectral_norm,
r1_gamma with reg_every, diffaugment) one by one and together (VARIANTS), in workdirs under --runs; prints the FD /
precision / recall each run's evaluation reports and writes OUT/gan_stabilisers_mnist5k.png (the sample grids).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from zoo import gan

NUM_MODES, RADIUS, STD = 8, 0.8, 0.02
MODES = RADIUS * np.stack(
    [np.cos(2 * np.pi * np.arange(NUM_MODES) / NUM_MODES), np.sin(2 * np.pi * np.arange(8) / 8)], 1
)
HIDDEN, LATENT, BATCH, GP_WEIGHT = (128, 128, 128), 2, 256, 10.0


def sample_ring(key: jax.Array, n: int) -> jax.Array:
    """n points of the mixture: a uniform mode plus N(0, STD^2 I)."""
    k_mode, k_noise = jax.random.split(key)
    modes = jax.random.randint(k_mode, (n,), 0, NUM_MODES)
    return jnp.asarray(MODES, jnp.float32)[modes] + STD * jax.random.normal(k_noise, (n, 2))


def mode_scores(samples: np.ndarray, min_share: float = 0.02) -> tuple[int, float]:
    """(modes covered, share of high-quality samples): high quality = within 3 STD of its nearest mode; a mode is
    covered when at least min_share of all samples are high-quality samples of it."""
    d = np.linalg.norm(samples[:, None, :] - MODES[None], axis=-1)
    nearest, good = d.argmin(1), d.min(1) < 3 * STD
    counts = np.bincount(nearest[good], minlength=NUM_MODES)
    return int(np.sum(counts >= min_share * len(samples))), float(good.mean())


def train_ring(seed: int, n_critic: int, g_steps: int, eval_every: int, num_eval: int = 2500) -> list[dict]:
    """WGAN-GP on the ring: [{'g_steps', 'modes', 'high_quality'}] every eval_every generator steps, and samples."""
    g_net, d_net = gan.MLPGenerator((2,), hidden=HIDDEN), gan.MLPDiscriminator(hidden=HIDDEN)
    g_apply = lambda p, z: g_net.apply({"params": p}, z)
    d_apply = lambda p, x: d_net.apply({"params": p}, x)
    tx = optax.adam(1e-4, b1=0.5, b2=0.9)
    kg, kd, key = jax.random.split(jax.random.key(seed), 3)
    g = g_net.init(kg, jnp.zeros((1, LATENT)))["params"]
    d = d_net.init(kd, jnp.zeros((1, 2)))["params"]
    carry = (g, tx.init(g), d, tx.init(d))

    def critic_step(carry, key):
        g, g_opt, d, d_opt = carry
        k_real, k_z, k_gp = jax.random.split(key, 3)
        real, fake = sample_ring(k_real, BATCH), g_apply(g, jax.random.normal(k_z, (BATCH, LATENT)))

        def loss(d):
            per = gan.wasserstein_d_loss(d_apply(d, real), d_apply(d, fake))
            return jnp.mean(per + GP_WEIGHT * gan.gradient_penalty(d_apply, d, real, fake, k_gp))

        updates, d_opt = tx.update(jax.grad(loss)(d), d_opt, d)
        return (g, g_opt, optax.apply_updates(d, updates), d_opt), None

    def round_(carry, key):
        """n_critic critic steps, then one generator step against the last critic."""
        keys = jax.random.split(key, n_critic + 1)
        (g, g_opt, d, d_opt), _ = jax.lax.scan(critic_step, carry, keys[:n_critic])
        z = jax.random.normal(keys[-1], (BATCH, LATENT))
        grads = jax.grad(lambda g: jnp.mean(gan.wasserstein_g_loss(d_apply(d, g_apply(g, z)))))(g)
        updates, g_opt = tx.update(grads, g_opt, g)
        return (optax.apply_updates(g, updates), g_opt, d, d_opt), None

    @jax.jit
    def chunk(carry, key):
        return jax.lax.scan(round_, carry, jax.random.split(key, eval_every))[0]

    sample = jax.jit(lambda g, k: g_apply(g, jax.random.normal(k, (num_eval, LATENT))))
    records = []
    for i in range(g_steps // eval_every):
        key, k_chunk = jax.random.split(key)
        carry = chunk(carry, k_chunk)
        samples = np.asarray(sample(carry[0], jax.random.key(10_000 + i)))
        modes, good = mode_scores(samples)
        records.append({"g_steps": (i + 1) * eval_every, "modes": modes, "high_quality": good})
    return records, samples


def ring(args) -> None:
    seeds = [int(s) for s in args.seeds.split(",")]
    results, final = {}, {}
    for n_critic in (1, 5):
        for seed in seeds:
            t0 = time.perf_counter()
            records, samples = train_ring(seed, n_critic, args.g_steps, args.eval_every)
            results[f"{n_critic}/{seed}"] = records
            final.setdefault(n_critic, samples)
            last = records[-1]
            print(
                f"n_critic={n_critic} seed={seed}: {last['modes']}/8 modes, {100 * last['high_quality']:.1f}% high "
                f"quality after {last['g_steps']} generator steps ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    print(f"\n| n_critic | critic steps | modes covered (of 8) | high-quality samples | ({len(seeds)} seeds) |")
    print("|---|---|---|---|---|")
    for n_critic in (1, 5):
        last = [results[f"{n_critic}/{s}"][-1] for s in seeds]
        modes, good = [r["modes"] for r in last], [100 * r["high_quality"] for r in last]
        print(
            f"| {n_critic} | {n_critic * args.g_steps} | {np.mean(modes):.1f} ({min(modes)}-{max(modes)}) | "
            f"{np.mean(good):.1f}% ({min(good):.1f}-{max(good):.1f}) | per seed: {modes} |"
        )
    os.makedirs(args.out, exist_ok=True)
    ring_figure(results, final, seeds, os.path.join(args.out, "gan_stabilisers_ring.png"))


def ring_figure(results, final, seeds, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    for ax, n_critic in zip(axes[:2], (1, 5)):
        s = final[n_critic]
        ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.3, label="generated")
        ax.scatter(MODES[:, 0], MODES[:, 1], s=40, c="red", marker="x", label="modes")
        ax.set(title=f"n_critic={n_critic}, seed {seeds[0]}", xlim=(-1.1, 1.1), ylim=(-1.1, 1.1), aspect="equal")
    axes[0].legend(loc="center", fontsize=8)
    for n_critic, colour in ((1, "C0"), (5, "C1")):
        for i, seed in enumerate(seeds):
            rec = results[f"{n_critic}/{seed}"]
            steps = [r["g_steps"] for r in rec]
            label = f"n_critic={n_critic}" if i == 0 else None
            axes[2].plot(steps, [r["modes"] for r in rec], colour, alpha=0.7, label=label)
            axes[3].plot(steps, [100 * r["high_quality"] for r in rec], colour, alpha=0.7, label=label)
    axes[2].set(xlabel="generator steps", ylabel="modes covered (of 8)", ylim=(-0.2, 8.2))
    axes[3].set(xlabel="generator steps", ylabel="high-quality samples (%)", ylim=(0, 100))
    axes[2].legend()
    fig.suptitle("WGAN-GP on 8 Gaussians: critic steps per generator step (one line per seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")


# ----------------------------------------------------------------------------- real digits

VARIANTS = {
    "plain": {},
    "spectral_norm": {"d_spectral_norm": True},
    "r1": {"r1_gamma": 1.0, "reg_every": 4},
    "diffaugment": {"diffaugment": "color,translation,cutout"},
    "spectral_norm+r1": {"d_spectral_norm": True, "r1_gamma": 1.0, "reg_every": 4},
    "all_three": {"d_spectral_norm": True, "r1_gamma": 1.0, "reg_every": 4, "diffaugment": "color,translation,cutout"},
}


def mnist(args) -> None:
    from train import gan as train_gan

    figures, grids = {}, {}
    for name in args.variants.split(","):
        c = train_gan.get_config()
        c.dataset, c.data_dir, c.num_steps = f"npz:{args.data}", os.path.dirname(args.data), args.steps
        c.progress = False
        c.update(VARIANTS[name])
        workdir = os.path.join(args.runs, name)  # a finished run there is evaluated again, not retrained
        t0 = time.perf_counter()
        figures[name] = train_gan.run(c, workdir)
        samples = os.path.join(workdir, "samples")
        grids[name] = os.path.join(samples, sorted(f for f in os.listdir(samples) if f.startswith("samples_"))[-1])
        print(f"{name}: {time.perf_counter() - t0:.0f} s wall", flush=True)
    print("\n| run | keys | FD | precision | recall | test V(D, G) |")
    print("|---|---|---|---|---|---|")
    for name, f in figures.items():
        keys = " ".join(f"{k}={v}" for k, v in VARIANTS[name].items()) or "(default config)"
        print(
            f"| {name} | {keys} | {f['eval/fd']:.0f} | {f['eval/precision']:.3f} | {f['eval/recall']:.3f} | "
            f"{f['eval/test_minimax_value']:.3f} |"
        )
    floor = [f"eval/ref_{k}" for k in ("fd", "precision", "recall")]
    print("floor (real vs real): FD {:.1f}, precision {:.3f}, recall {:.3f}".format(*(f[k] for k in floor)))
    os.makedirs(args.out, exist_ok=True)
    mnist_figure(grids, figures, os.path.join(args.out, "gan_stabilisers_mnist5k.png"))


def mnist_figure(grids: dict, figures: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(grids), 3)
    rows = -(-len(grids) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 5.4 * rows), squeeze=False)
    for ax in axes.ravel()[len(grids) :]:
        ax.axis("off")
    for ax, (name, png) in zip(axes.ravel(), grids.items()):
        f = figures[name]
        ax.imshow(plt.imread(png), cmap="gray")
        ax.set_title(f"{name}: FD {f['eval/fd']:.0f}, P {f['eval/precision']:.2f}, R {f['eval/recall']:.2f}")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("ring", help="n_critic 1 vs 5 on 8 Gaussians")
    r.add_argument("--seeds", default="0,1,2,3")
    r.add_argument("--g-steps", type=int, default=2000)
    r.add_argument("--eval-every", type=int, default=250)
    r.add_argument("--out", default="docs/figures")
    m = sub.add_parser("mnist", help="train.gan plain vs stabilised on an npz of digits")
    m.add_argument("--data", required=True, help="the npz (its folder is the data dir)")
    m.add_argument("--steps", type=int, default=10000)
    m.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    m.add_argument("--runs", default="runs/gan_stabilisers")
    m.add_argument("--out", default="docs/figures")
    args = p.parse_args(argv)
    {"ring": ring, "mnist": mnist}[args.what](args)


if __name__ == "__main__":
    main()
