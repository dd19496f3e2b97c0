"""Generative adversarial networks (Goodfellow et al. 2014), hinge and WGAN-GP losses, DCGAN networks, and the
stabilisers: spectral normalisation (Miyato et al. 2018), the R1/R2 gradient penalties (Mescheder et al. 2018)
and DiffAugment (Zhao et al. 2020).

Lecture: min_G max_D V(D, G) = E_{x~p_data}[log D(x)] + E_{z~p_z}[log(1 - D(G(z)))].
For a fixed G the pointwise maximiser is D*(x) = p_data(x) / (p_data(x) + p_g(x)), and at
p_g = p_data, V(D*, G) = -log 4 (the global optimum).

Discriminators return *logits* l (D = sigmoid(l)) of shape [B]; every formula is
evaluated stably from logits: log D = -softplus(-l), log(1 - D) = -softplus(l).
Generators output images in [-1, 1] (tanh), NHWC; scale data as 2x - 1.
Losses are per example ([B]); when a loss pairs real and fake logits, the i-th
real is paired with the i-th fake, so its batch mean is the usual estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax
import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from zoo.layers import Upsample, conv_trunk, decoder_base, level_channels, num_groups

__all__ = [
    "minimax_value",
    "discriminator_loss",
    "generator_loss_saturating",
    "generator_loss_nonsaturating",
    "hinge_d_loss",
    "hinge_g_loss",
    "wasserstein_d_loss",
    "wasserstein_g_loss",
    "gradient_penalty",
    "r1_penalty",
    "r2_penalty",
    "power_iteration",
    "spectral_norm",
    "spectral_norm_vectors",
    "spectral_normalize",
    "DIFFAUGMENT_OPS",
    "parse_diffaugment_policy",
    "augment_brightness",
    "augment_saturation",
    "augment_contrast",
    "augment_color",
    "augment_translation",
    "augment_cutout",
    "diffaugment",
    "optimal_discriminator",
    "MLPGenerator",
    "MLPDiscriminator",
    "DCGenerator",
    "DCDiscriminator",
]


# ----------------------------------------------------------------------------
# Math.
# ----------------------------------------------------------------------------


def _logits(fn: str, name: str, l) -> jax.Array:
    l = jnp.asarray(l)
    if l.ndim == 2 and l.shape[1] == 1:
        l = l[:, 0]
    if l.ndim != 1:
        raise ValueError(f"{fn}: {name} must be discriminator logits of shape [B] or [B, 1], got {l.shape}")
    return l


def _pair(fn: str, real, fake) -> tuple[jax.Array, jax.Array]:
    real, fake = _logits(fn, "real logits", real), _logits(fn, "fake logits", fake)
    if real.shape != fake.shape:
        raise ValueError(f"{fn}: real and fake logits must have the same batch size, got {real.shape} and {fake.shape}")
    return real, fake


def minimax_value(d_real_logits: jax.Array, d_fake_logits: jax.Array) -> jax.Array:
    """V(D, G) = E[log D(x)] + E[log(1 - D(G(z)))], batch means, from logits (scalar; batches may differ in size)."""
    real = _logits("minimax_value", "d_real_logits", d_real_logits)
    fake = _logits("minimax_value", "d_fake_logits", d_fake_logits)
    return jnp.mean(-jax.nn.softplus(-real)) + jnp.mean(-jax.nn.softplus(fake))


def discriminator_loss(d_real_logits: jax.Array, d_fake_logits: jax.Array) -> jax.Array:
    """-[log D(x_i) + log(1 - D(G(z_i)))] per pair [B]; its mean is -V(D, G) (binary cross-entropy)."""
    real, fake = _pair("discriminator_loss", d_real_logits, d_fake_logits)
    return jax.nn.softplus(-real) + jax.nn.softplus(fake)


def generator_loss_saturating(d_fake_logits: jax.Array) -> jax.Array:
    """log(1 - D(G(z))) per example [B]: G minimises V directly (gradient vanishes when D wins)."""
    return -jax.nn.softplus(_logits("generator_loss_saturating", "d_fake_logits", d_fake_logits))


def generator_loss_nonsaturating(d_fake_logits: jax.Array) -> jax.Array:
    """-log D(G(z)) per example [B]: same fixed point, strong gradients early in training."""
    return jax.nn.softplus(-_logits("generator_loss_nonsaturating", "d_fake_logits", d_fake_logits))


def hinge_d_loss(d_real_logits: jax.Array, d_fake_logits: jax.Array) -> jax.Array:
    """Hinge discriminator loss max(0, 1 - D(x_i)) + max(0, 1 + D(G(z_i))) per pair [B] (D = raw score)."""
    real, fake = _pair("hinge_d_loss", d_real_logits, d_fake_logits)
    return jax.nn.relu(1.0 - real) + jax.nn.relu(1.0 + fake)


def hinge_g_loss(d_fake_logits: jax.Array) -> jax.Array:
    """Hinge generator loss -D(G(z)) per example [B]."""
    return -_logits("hinge_g_loss", "d_fake_logits", d_fake_logits)


def wasserstein_d_loss(d_real_scores: jax.Array, d_fake_scores: jax.Array) -> jax.Array:
    """WGAN critic loss D(G(z_i)) - D(x_i) per pair [B] (add lambda * gradient_penalty)."""
    real, fake = _pair("wasserstein_d_loss", d_real_scores, d_fake_scores)
    return fake - real


def wasserstein_g_loss(d_fake_scores: jax.Array) -> jax.Array:
    """WGAN generator loss -D(G(z)) per example [B]."""
    return -_logits("wasserstein_g_loss", "d_fake_scores", d_fake_scores)


def gradient_penalty(d_apply: Callable, params, real: jax.Array, fake: jax.Array, key: jax.Array) -> jax.Array:
    """WGAN-GP (||grad_x D(x_hat)||_2 - 1)^2 at x_hat = e x + (1 - e) G(z), e ~ U[0, 1] per example -> [B].

    d_apply(params, x) must map a batch [B, ...] to scores [B] or [B, 1]; each example's gradient
    is taken through a batch of one, so batch-coupled layers cannot leak across examples.
    """
    if jnp.ndim(real) < 2 or jnp.shape(real) != jnp.shape(fake):
        raise ValueError(
            f"gradient_penalty: real and fake must be batches [B, ...] of the same shape, "
            f"got {jnp.shape(real)} and {jnp.shape(fake)}"
        )
    # drawn 1-d and reshaped: N-d threefry draws compile slowly on XLA:CPU
    eps = jax.random.uniform(key, (real.shape[0],), real.dtype).reshape((-1,) + (1,) * (real.ndim - 1))
    x_hat = eps * real + (1.0 - eps) * fake
    score = lambda xi: jnp.sum(d_apply(params, xi[None]))
    grads = jax.vmap(jax.grad(score))(x_hat)
    norms = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(real.shape[0], -1)), axis=-1) + 1e-12)
    return jnp.square(norms - 1.0)


def _squared_input_gradient_norms(d_apply: Callable, params, x: jax.Array, fn: str) -> jax.Array:
    """|grad_x D(x_i)|^2 per example [B], each through a batch of one (no leak across batch-coupled layers)."""
    if jnp.ndim(x) < 2:
        raise ValueError(f"{fn}: x must be a batch [B, ...], got shape {jnp.shape(x)}")
    score = lambda xi: jnp.sum(d_apply(params, xi[None]))
    grads = jax.vmap(jax.grad(score))(x)
    return jnp.sum(jnp.square(grads.reshape(x.shape[0], -1)), axis=-1)


def r1_penalty(d_apply: Callable, params, real: jax.Array, gamma: float = 1.0) -> jax.Array:
    """R1 = gamma/2 |grad_x D(x)|^2 at real x, per example [B]; its batch mean estimates gamma/2 E_real[...]."""
    return 0.5 * gamma * _squared_input_gradient_norms(d_apply, params, real, "r1_penalty")


def r2_penalty(d_apply: Callable, params, fake: jax.Array, gamma: float = 1.0) -> jax.Array:
    """R2 = gamma/2 |grad_x D(x)|^2 at generated x = G(z), per example [B] (R1 on the fakes)."""
    return 0.5 * gamma * _squared_input_gradient_norms(d_apply, params, fake, "r2_penalty")


# ----------------------------------------------------------------------------
# Spectral normalisation: every kernel W divided by its largest singular value, estimated by power iteration
# from a vector u kept between steps (one iteration a step suffices, as W changes slowly).
# ----------------------------------------------------------------------------


def _kernel_matrix(kernel: jax.Array) -> jax.Array:
    """A Dense [in, out] or conv [kh, kw, in, out] kernel as the matrix W [out, kh * kw * in] (Miyato et al.)."""
    return kernel.reshape(-1, kernel.shape[-1]).T


def _unit(v: jax.Array) -> jax.Array:
    return v / (jnp.linalg.norm(v) + 1e-12)


# Matrix-vector products as sums, not dot_general: exact float32 on the parameters whatever the compute dtype or
# the accelerator's default matmul precision (bfloat16 passes on TPU).
def _matvec(w: jax.Array, v: jax.Array) -> jax.Array:
    return jnp.sum(w * v[None, :], axis=1)


def _vecmat(u: jax.Array, w: jax.Array) -> jax.Array:
    return jnp.sum(u[:, None] * w, axis=0)


def power_iteration(w: jax.Array, u: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One step on W [m, n]: v = W^T u / |W^T u|, u' = W v / |W v|, sigma = u'^T W v -> (u', v, sigma)."""
    v = _unit(_vecmat(u, w))
    wv = _matvec(w, v)
    u = _unit(wv)
    return u, v, jnp.sum(u * wv)


def spectral_norm(kernel: jax.Array, u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """kernel / sigma(W) with sigma from one power-iteration step from u -> (normalised kernel, u').

    u' and v are held constant in the gradient (Miyato et al.'s estimator), so d/dW flows through sigma = u'^T W v.
    """
    w = _kernel_matrix(kernel)
    u, v, _ = power_iteration(w, u)
    u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
    return kernel / jnp.sum(u * _matvec(w, v)), u


def spectral_norm_vectors(params, key: jax.Array) -> dict:
    """A random unit u [out] for every 'kernel' leaf of params (arrays or shapes), nested like params."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
    kernels = sorted(p for p in flat if p[-1] == "kernel")
    keys = jax.random.split(key, max(len(kernels), 1))
    us = {p: _unit(jax.random.normal(k, (flat[p].shape[-1],), jnp.float32)) for p, k in zip(kernels, keys)}
    return flax.traverse_util.unflatten_dict(us)


def spectral_normalize(params, us: dict) -> tuple[dict, dict]:
    """(params with every kernel that has a u in us divided by its sigma, the next us): one power step each."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
    new_us = {}
    for path, u in flax.traverse_util.flatten_dict(us).items():
        flat[path], new_us[path] = spectral_norm(flat[path], u)
    return flax.traverse_util.unflatten_dict(flat), flax.traverse_util.unflatten_dict(new_us)


# ----------------------------------------------------------------------------
# DiffAugment (Zhao et al. 2020): the same kind of differentiable augmentation T on real and generated images
# before D, in D's and G's steps, so D cannot memorise the few real images and G still gets gradients through T.
# Images are NHWC in [-1, 1]; every draw is per example. Random draws are 1-d: N-d threefry draws compile
# slowly on XLA:CPU.
# ----------------------------------------------------------------------------

DIFFAUGMENT_OPS = ("color", "translation", "cutout")


def parse_diffaugment_policy(policy: str) -> tuple[str, ...]:
    """'color,translation,cutout' -> its ops in order ('' -> none); ValueError naming an op not in DIFFAUGMENT_OPS."""
    ops = tuple(p.strip() for p in policy.split(",")) if policy.strip() else ()
    for op in ops:
        if op not in DIFFAUGMENT_OPS or ops.count(op) > 1:
            raise ValueError(
                f"diffaugment policy {policy!r}: {op!r} is not accepted (or repeated); accepted: a comma-separated "
                f"subset of {', '.join(DIFFAUGMENT_OPS)}, or '' for none"
            )
    return ops


def _per_example(key, x, low=0.0, high=1.0) -> jax.Array:
    r = jax.random.uniform(key, (x.shape[0],), x.dtype, low, high)
    return r.reshape((-1,) + (1,) * (x.ndim - 1))


def augment_brightness(x: jax.Array, key: jax.Array) -> jax.Array:
    """x + (r - 1/2), r ~ U[0, 1) per image."""
    return x + _per_example(key, x) - 0.5


def augment_saturation(x: jax.Array, key: jax.Array) -> jax.Array:
    """(x - m) 2r + m, m the mean over channels per pixel, r ~ U[0, 1) per image (identity for one channel)."""
    m = jnp.mean(x, axis=-1, keepdims=True)
    return (x - m) * (2.0 * _per_example(key, x)) + m


def augment_contrast(x: jax.Array, key: jax.Array) -> jax.Array:
    """(x - m)(r + 1/2) + m, m the image's mean over all pixels and channels, r ~ U[0, 1) per image."""
    m = jnp.mean(x, axis=tuple(range(1, x.ndim)), keepdims=True)
    return (x - m) * (_per_example(key, x) + 0.5) + m


def augment_color(x: jax.Array, key: jax.Array) -> jax.Array:
    """Brightness, then saturation, then contrast (DiffAugment's 'color')."""
    kb, ks, kc = jax.random.split(key, 3)
    return augment_contrast(augment_saturation(augment_brightness(x, kb), ks), kc)


def augment_translation(x: jax.Array, key: jax.Array, ratio: float = 0.125) -> jax.Array:
    """out[i, j] = x[i - dy, j - dx] (0 outside), integer dy, dx ~ U{-s..s} per image, s = round(ratio * H or W)."""
    b, h, w, c = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ky, kx = jax.random.split(key)
    dy = jax.random.randint(ky, (b,), -sy, sy + 1)
    dx = jax.random.randint(kx, (b,), -sx, sx + 1)
    padded = jnp.pad(x, ((0, 0), (sy, sy), (sx, sx), (0, 0)))
    crop = lambda img, oy, ox: jax.lax.dynamic_slice(img, (oy, ox, 0), (h, w, c))
    return jax.vmap(crop)(padded, sy - dy, sx - dx)


def augment_cutout(x: jax.Array, key: jax.Array, ratio: float = 0.5) -> jax.Array:
    """x with a square of side round(ratio * H) (round(ratio * W) wide) set to 0, centred uniformly per image
    (clipped at the border)."""
    b, h, w, _ = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ky, kx = jax.random.split(key)
    cy = jax.random.randint(ky, (b,), 0, h + (1 - ch % 2))  # DiffAugment's centres
    cx = jax.random.randint(kx, (b,), 0, w + (1 - cw % 2))
    top, left = cy - ch // 2, cx - cw // 2
    rows = jnp.arange(h)[None, :] - top[:, None]
    cols = jnp.arange(w)[None, :] - left[:, None]
    inside = ((rows >= 0) & (rows < ch))[:, :, None] & ((cols >= 0) & (cols < cw))[:, None, :]
    return x * (1.0 - inside[..., None].astype(x.dtype))


_AUGMENT = {"color": augment_color, "translation": augment_translation, "cutout": augment_cutout}


def diffaugment(x: jax.Array, key: jax.Array, policy: str | Sequence[str]) -> jax.Array:
    """T(x): the policy's ops in order, each with its own key; '' or () is the identity."""
    ops = parse_diffaugment_policy(policy) if isinstance(policy, str) else tuple(policy)
    if not ops:
        return x
    if x.ndim != 4:
        raise ValueError(f"diffaugment: x must be images [B, H, W, C], got shape {x.shape}")
    for op, k in zip(ops, jax.random.split(key, len(ops))):
        x = _AUGMENT[op](x, k)
    return x


def optimal_discriminator(p_data: jax.Array, p_g: jax.Array) -> jax.Array:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)), elementwise; 1/2 where both densities are 0."""
    p_data, p_g = jnp.asarray(p_data), jnp.asarray(p_g)
    try:
        jnp.broadcast_shapes(p_data.shape, p_g.shape)
    except ValueError:
        raise ValueError(f"optimal_discriminator: p_data {p_data.shape} and p_g {p_g.shape} must broadcast") from None
    total = p_data + p_g
    safe = jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, p_data / safe, 0.5)


# ----------------------------------------------------------------------------
# Networks.
# ----------------------------------------------------------------------------


def _check_image_shape(name: str, shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"{name}: image_shape must be a non-empty tuple of positive sizes, got {shape}")
    return shape


class MLPGenerator(nn.Module):
    """z [B, L] -> MLP -> tanh -> [B, *image_shape] in [-1, 1]."""

    image_shape: Sequence[int]
    hidden: Sequence[int] = (256, 256)
    activation: Callable = nn.relu
    dtype: jnp.dtype | None = None  # compute dtype (e.g. bfloat16); parameters and the output stay float32

    @nn.compact
    def __call__(self, z):
        shape = _check_image_shape("MLPGenerator", self.image_shape)
        h = z
        for f in self.hidden:
            h = self.activation(nn.Dense(f, dtype=self.dtype)(h))
        x = jnp.tanh(nn.Dense(int(np.prod(shape)), dtype=self.dtype)(h))
        return x.reshape((z.shape[0],) + shape).astype(jnp.float32)


class MLPDiscriminator(nn.Module):
    """x [B, ...] -> flatten -> Dense + leaky ReLU(0.2) layers -> logits [B]."""

    hidden: Sequence[int] = (256, 256)
    negative_slope: float = 0.2
    dtype: jnp.dtype | None = None  # compute dtype; parameters and the logits stay float32

    @nn.compact
    def __call__(self, x):
        if x.ndim < 2:
            raise ValueError(
                f"MLPDiscriminator: x must be batched with shape [B, ...] (ndim >= 2), got shape {x.shape}"
            )
        h = x.reshape(x.shape[0], -1)
        for f in self.hidden:
            h = nn.leaky_relu(nn.Dense(f, dtype=self.dtype)(h), self.negative_slope)
        return nn.Dense(1, dtype=self.dtype)(h)[:, 0].astype(jnp.float32)


class DCGenerator(nn.Module):
    """DCGAN generator: z -> Dense to an (H/2^n, W/2^n) map -> n x [Upsample (resize + conv), GroupNorm, ReLU]
    -> 3x3 conv to C -> tanh, output [B, H, W, C] in [-1, 1].

    n = conv_levels(H, W) (8 -> 1, 28 -> 2, 32 -> 3) unless ``num_levels``; resolution level i has
    channels[min(i, len - 1)], so the smallest map is the widest when channels increase.
    No transposed convolutions (slow on CPU XLA; checkerboard artefacts).
    """

    image_shape: Sequence[int]
    channels: Sequence[int] = (32, 64, 128)
    num_levels: int | None = None
    dtype: jnp.dtype | None = None  # compute dtype; parameters and the output stay float32

    @nn.compact
    def __call__(self, z):
        levels, (bh, bw, ch), c = decoder_base("DCGenerator", self.image_shape, self.channels, self.num_levels)
        x = nn.Dense(bh * bw * ch, dtype=self.dtype)(z).reshape(z.shape[0], bh, bw, ch)
        x = nn.relu(nn.GroupNorm(num_groups(ch), dtype=self.dtype)(x))
        for i in reversed(range(levels)):
            f = level_channels(self.channels, i)
            x = nn.relu(nn.GroupNorm(num_groups(f), dtype=self.dtype)(Upsample(f, dtype=self.dtype)(x)))
        return jnp.tanh(nn.Conv(c, (3, 3), dtype=self.dtype)(x)).astype(jnp.float32)


class DCDiscriminator(nn.Module):
    """DCGAN discriminator: 3x3 conv, n stride-2 Downsample convs, leaky ReLU(0.2) after each,
    flatten -> Dense -> logits [B].  No normalisation, so it is safe with gradient_penalty."""

    channels: Sequence[int] = (32, 64, 128)
    num_levels: int | None = None
    negative_slope: float = 0.2
    dtype: jnp.dtype | None = None  # compute dtype; parameters and the logits stay float32

    @nn.compact
    def __call__(self, x):
        act = lambda h: nn.leaky_relu(h, self.negative_slope)
        x = conv_trunk("DCDiscriminator", x, self.channels, self.num_levels, act, self.dtype)
        return nn.Dense(1, dtype=self.dtype)(x)[:, 0].astype(jnp.float32)
