"""Train a VQ-VAE: `python -m train.vqvae [--workdir runs/vqvae] [--config.key=value ...]`.

Default: a conv encoder to a 4x4 grid of 8-d vectors, a codebook of 64 codes updated by moving averages (vq.codebook
= 'ema'; 'loss' learns it by the codebook term) with dead-code restarts, and a conv decoder, on the embedded 8x8
digits, a few minutes on 2 CPU cores. Loss: the reconstruction's mean (squared error or Bernoulli, config.loss) +
the codebook term + vq.beta times the commitment term. Writes checkpoints, metrics.jsonl (test reconstruction
error, codebook perplexity and codes in use, the reconstructions' FD, and the FD of samples decoded from the codes'
unigram prior), samples/{reconstructions,samples}_*.png. The math is zoo/vqvae.py; a learned prior over the grid is
latent diffusion's (`--config.latent.autoencoder=runs/vqvae` of train.ddpm, train.edm or train.flow).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from train.core import cli, config as config_lib, loop
from train.core.config import Key
from train.data import image_runs, images as data
from train.evaluation import images as evaluation, plots
from zoo import autoencoder as ae, vqvae

CODEBOOKS = ("ema", "loss")

SCHEMA = config_lib.Schema(
    *config_lib.IMAGE_MODEL,
    {
        "loss": Key(
            "mse", "reconstruction: 'mse' (squared error) or 'bce' (Bernoulli); pixels in [0, 1]", choices=ae.LOSS_KINDS
        ),  # fmt: skip
        "model.num_codes": Key(64, "K, the codebook's codes", range=">= 2"),
        "model.code_dim": Key(8, "D, the codes' width (the latent grid's channels)", range=">= 1"),
        "model.channels": Key(64, "width of the conv encoder and decoder", range=">= 1"),
        "model.num_levels": Key(1, "stride-2 halvings: the grid is H / 2^n x W / 2^n", range=">= 0"),
        "model.num_res_blocks": Key(
            1, "residual blocks after the encoder's halvings and before the decoder's", range=">= 0"
        ),
        "vq.beta": Key(0.25, "beta, the commitment term's weight", range=">= 0"),
        "vq.codebook": Key(
            "ema",
            "codes moved by moving averages (ema, appendix A.1) or by the codebook term (loss)",
            choices=CODEBOOKS,
        ),  # fmt: skip
        "vq.decay": Key(
            0.99, "the moving averages' decay gamma (codes' counts always; their sums with ema)", range="[0, 1)"
        ),
        "vq.epsilon": Key(1e-5, "Laplace smoothing of the ema codebook's counts", range=">= 0"),
        "vq.restart_below": Key(
            1.0,
            "codes picked by fewer vectors a batch (moving average) move onto encoder outputs (0: never)",
            range=">= 0",
        ),
    },
    evaluation.eval_keys(num_samples=500),
    image_runs.SAMPLE_KEYS,
    checks=(evaluation.check_eval_config,),
    defaults={**config_lib.IMAGE_RECIPE, "num_steps": 3000, "checkpoint_every": 1000},
    variants={
        # 28x28 digits resized to 32: an 8x8 grid of 4-d vectors, 256 codes (latent diffusion's autoencoder).
        "mnist": {
            "dataset": "mnist",
            "image_size": 32,
            "model.num_levels": 2,
            "model.code_dim": 4,
            "model.num_codes": 256,
            "model.num_res_blocks": 2,
            "num_steps": 10_000,
            "checkpoint_every": 2000,
        },
        "smoke": {
            **evaluation.SMOKE,
            **evaluation.SMOKE_LOOP,
            **config_lib.SMOKE_RECIPE,
            "model.channels": 8,
            "model.num_codes": 8,
            "model.code_dim": 2,
        },
    },
)
get_config = SCHEMA.config  # get_config() is the default config, get_config('smoke') a seconds-long run


def make_net(c, spec: data.ImageSpec) -> vqvae.VQVAE:
    m = c.model
    return vqvae.VQVAE(
        image_channels=spec.image_shape[-1],
        num_codes=m.num_codes,
        code_dim=m.code_dim,
        channels=m.channels,
        num_levels=m.num_levels,
        num_res_blocks=m.num_res_blocks,
        dtype=config_lib.compute_dtype(c),
    )


def check_grid(c, spec: data.ImageSpec) -> None:
    height, width = spec.image_shape[:2]
    f = 2**c.model.num_levels
    if height % f or width % f:
        raise config_lib.ConfigError(
            f"config.model.num_levels={c.model.num_levels} halves the {height}x{width} images to a non-integer grid; "
            f"accepted: a num_levels with 2^num_levels dividing {height} and {width}"
        )


def losses(c, net, params, x):
    """(per-example loss [B], z_e, indices, metrics): reconstruction mean + codebook term (vq.codebook=loss) +
    beta commitment."""
    out, z, z_q, indices = net.apply({"params": params["vqvae"]}, x)
    rec = ae.reconstruction_loss(x, out, c.loss) / np.prod(x.shape[1:])
    commit = vqvae.commitment_loss(z, z_q)
    loss = rec + c.vq.beta * commit
    if c.vq.codebook == "loss":
        loss = loss + vqvae.codebook_loss(z, z_q)
    return loss, z, indices, {"reconstruction": jnp.mean(rec), "commitment": jnp.mean(commit)}


def make_task(c, spec: data.ImageSpec) -> loop.Task:
    """The training part: params {'vqvae': the network's, 'stats': its codebook's moving averages}; a step is a
    gradient step on the loss, then the moving averages, the ema codebook and the restarts of dead codes."""
    check_grid(c, spec)
    net = make_net(c, spec)

    def init_params(key):
        params = net.init(key, jnp.zeros((1, *spec.image_shape)))["params"]
        stats = vqvae.init_stats(params["codebook"])
        return {"vqvae": params, "stats": {"counts": stats.counts, "sums": stats.sums}}

    def objective(params, x):
        loss, z, indices, metrics = losses(c, net, params, x)
        return jnp.mean(loss), (z, indices, metrics)

    def loss_fn(params, batch, key):
        loss, (_, _, metrics) = objective(params, data.to_unit(batch["image"]))
        return loss, metrics

    def train_step(state, batch, key):
        x = data.to_unit(batch["image"])
        (loss, (z, indices, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(state.params, x)
        updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, state.scale_updates(updates))
        params = codebook_step(c, params, state.params, z, indices, key)
        counts = vqvae.code_histogram(indices, c.model.num_codes)
        metrics = {
            "loss": loss,
            "grad_norm": optax.global_norm(grads),
            **metrics,
            "perplexity": vqvae.perplexity(counts),
            "codes_used": jnp.sum(counts > 0).astype(jnp.float32),
        }
        return state.advance(params=params, opt_state=opt_state), metrics

    return loop.Task("vqvae", init_params, loss_fn=loss_fn, train_step=train_step)


def codebook_step(c, params, before, z, indices, key):
    """The moving averages of this batch's assignments (made with the codebook `before` the step); the ema
    codebook from them (vq.codebook=ema) or the gradient step's (loss); dead codes restarted."""
    v = c.vq
    stats = vqvae.CodebookStats(**before["stats"])
    stats, ema_codebook = vqvae.ema_update(stats, jax.lax.stop_gradient(z), indices, v.decay, v.epsilon)
    codebook = ema_codebook if v.codebook == "ema" else params["vqvae"]["codebook"]
    if v.restart_below > 0:
        codebook, stats = vqvae.restart_dead_codes(key, codebook, stats, jax.lax.stop_gradient(z), v.restart_below)
    net_params = {**params["vqvae"], "codebook": codebook}
    return {"vqvae": net_params, "stats": {"counts": stats.counts, "sums": stats.sums}}


def encoder_of(c, spec: data.ImageSpec):
    """jit (params, uint8 images) -> (z_e [B, h, w, D], indices [B, h, w])."""
    net = make_net(c, spec)

    def encode(params, images):
        z = net.apply({"params": params["vqvae"]}, data.to_unit(images), method="encode")
        return z, vqvae.nearest_codes(z, params["vqvae"]["codebook"])

    return jax.jit(encode)


def decoder_of(c, spec: data.ImageSpec):
    """jit (params, z [B, h, w, D]) -> the images' means in [0, 1], z quantised first (the decoder reads codes)."""
    net = make_net(c, spec)

    def decode(params, z):
        z_q, _ = vqvae.quantize(z, params["vqvae"]["codebook"])
        return ae.reconstruction_mean(net.apply({"params": params["vqvae"]}, z_q, method="decode"), c.loss)

    return jax.jit(decode)


def unigram_draw(c, spec: data.ImageSpec, num_images: int):
    """jit (params, key) -> num_images images in [0, 1] decoded from grids whose codes are drawn independently by
    the codebook's moving-average counts: the prior a VQ-VAE has without a learned one."""
    net, (h, w, _) = make_net(c, spec), vqvae.latent_shape(spec.image_shape, c.model.num_levels, c.model.code_dim)

    def draw(params, key):
        logits = jnp.log(jnp.maximum(params["stats"]["counts"], 1e-12))
        indices = jax.random.categorical(key, logits, shape=(num_images, h, w))
        out = net.apply({"params": params["vqvae"]}, indices, method="decode_codes")
        return ae.reconstruction_mean(out, c.loss)

    return jax.jit(draw)


def make_evaluation(c, ds: data.ImageData) -> dict:
    """{'evaluate'}: test reconstruction error, the test codes' perplexity and codes in use, the reconstructions'
    FD (rFD, recon_*), reconstructions, and samples of the codes' unigram prior with their FD."""
    evaluation.check_dataset_for_eval(c, ds)
    net = make_net(c, ds.spec)

    @jax.jit
    def reconstruct(params, images):
        x = data.to_unit(images)
        out, _, _, indices = net.apply({"params": params["vqvae"]}, x)
        r = ae.reconstruction_mean(out, c.loss)
        return r, jnp.mean(jnp.square(x - r).reshape(len(x), -1), -1), indices

    test = data.split_arrays(ds.test, c.eval.test_examples)
    quality = evaluation.SampleQuality(c, ds)
    n = max(c.eval.num_samples, c.eval.grid_images)
    draw = unigram_draw(c, ds.spec, n)

    def evaluate(state, step):
        params = state.eval_params
        recons, mses, indices = data.batched(lambda x: reconstruct(params, x), test["image"])
        counts = np.bincount(np.asarray(indices).reshape(-1), minlength=c.model.num_codes)
        scalars = {
            "test_mse": float(np.mean(mses)),
            "test_perplexity": float(vqvae.perplexity(jnp.asarray(counts, jnp.float32))),
            "test_codes_used": float(np.sum(counts > 0)),
        }
        n_show = min(32, len(test["image"]))
        recons = data.unit_to_uint8(recons)
        images = {"reconstructions": plots.reconstruction_grid(test["image"][:n_show], recons[:n_show])}
        k_sample = jax.random.split(evaluation.eval_key(c.seed, step))[1]  # the autoencoder's and VAE's key
        samples = data.unit_to_uint8(draw(params, k_sample))
        images["samples"] = plots.samples_grid(samples[: c.eval.grid_images])
        if quality.enabled:
            scalars.update({f"recon_{k}": v for k, v in quality(recons[: c.eval.num_samples]).items()})
            scalars.update(quality(samples[: c.eval.num_samples]))
        return scalars, images

    return {"evaluate": evaluate}


def make_generator(c, spec: data.ImageSpec, num_images: int) -> image_runs.Generator:
    """num_images images a call decoded from the codes' unigram prior (unigram_draw)."""
    draw = unigram_draw(c, spec, num_images)
    return image_runs.Generator(lambda p, k, y: data.unit_to_uint8(draw(p, k)))


MODEL = image_runs.ImageModel("vqvae", SCHEMA, make_task, make_evaluation, make_generator)
ENTRY = MODEL.entry(__doc__, __file__)
run, load, sample_workdir = ENTRY.run, ENTRY.load, ENTRY.sample

if __name__ == "__main__":
    cli.main(ENTRY)
