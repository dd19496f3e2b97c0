"""Diffusion transformer, DiT (Peebles & Xie 2023): a ViT over image patches as the denoiser of any diffusion
objective, in place of the convolutional U-Net.

The image (or latent) [B, H, W, C] is cut into p x p patches, each a token (patchify); a linear map embeds them,
fixed 2-D sin-cos position codes are added; `depth` transformer blocks follow, each conditioned on the time (and
class) embedding c by adaLN-Zero: LayerNorm without its own affine, then x * (1 + scale(c)) + shift(c), and
each residual branch multiplied by a gate(c), the three regressed from c by a zero-initialised Dense, so every
block starts as the identity; a final adaLN layer and a zero-initialised linear map give p x p x C_out values a
token, unpatchified back to the image. So the network outputs zeros at initialisation, as the U-Net does.

DiT(...).apply(params, x, t, labels=None, train=False) has the U-Net's signature (zoo.ddpm.UNet), labels [B]
with num_classes rows plus the null label, so every objective and sampler of the zoo reads either network.
Differences from facebookresearch/DiT's models.py that do not change the function class: the time code is
zoo.layers.sinusoidal_embedding's [sin, cos] (DiT's is [cos, sin], a permutation of the first Dense's rows), the
patch embedding is a Dense on the patches (DiT's p x p stride-p convolution is the same map), and the position
code is a constant rather than a frozen parameter (`num_parameters` adds it back for DiT's count).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from zoo.layers import sinusoidal_embedding

__all__ = [
    "patchify",
    "unpatchify",
    "sincos_position_embedding",
    "modulate",
    "DiTBlock",
    "DiT",
    "CONFIGS",
    "num_parameters",
]


def patchify(x: jax.Array, p: int) -> jax.Array:
    """[B, H, W, C] -> [B, (H/p)(W/p), p p C]: token (i, j) holds x[:, ip:(i+1)p, jp:(j+1)p, :] row-major."""
    b, h, w, c = x.shape
    if h % p or w % p:
        raise ValueError(f"patchify: patch size {p} must divide the image's sides {h}x{w}")
    x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: jax.Array, p: int, height: int, width: int) -> jax.Array:
    """[B, (H/p)(W/p), p p C] -> [B, H, W, C], the inverse of patchify."""
    b, n, d = tokens.shape
    gh, gw = height // p, width // p
    if gh * gw != n or d % (p * p):
        raise ValueError(f"unpatchify: {n} tokens of {d} values are not {p}x{p} patches of a {height}x{width} image")
    x = tokens.reshape(b, gh, gw, p, p, d // (p * p)).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, height, width, d // (p * p))


def _sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
    """[sin(pos w_k), cos(pos w_k)], w_k = 10000^(-k / (dim/2)), k < dim/2."""
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    args = np.outer(positions.reshape(-1), omega)
    return np.concatenate([np.sin(args), np.cos(args)], axis=1)


def sincos_position_embedding(dim: int, grid_h: int, grid_w: int) -> np.ndarray:
    """[grid_h grid_w, dim]: token (i, j)'s code, the 1-D code of column j (dim/2) then of row i (MAE's, DiT's)."""
    if dim % 4:
        raise ValueError(f"sincos_position_embedding: dim must be a multiple of 4, got {dim}")
    rows, cols = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
    return np.concatenate([_sincos_1d(dim // 2, cols), _sincos_1d(dim // 2, rows)], axis=1).astype(np.float32)


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    """adaLN: x (1 + scale) + shift, per example ([B, N, D] tokens, [B, D] shift and scale)."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


# ----------------------------------------------------------------------------- the network

_xavier = nn.initializers.xavier_uniform()
_zeros = nn.initializers.zeros


class DiTBlock(nn.Module):
    """x + gate_msa attn(adaLN(x)) then + gate_mlp MLP(adaLN(x)), the six modulations Dense(silu(c)), zero-init."""

    hidden: int
    num_heads: int
    mlp_ratio: float = 4.0
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x, c):
        mods = nn.Dense(6 * self.hidden, kernel_init=_zeros, dtype=self.dtype, name="adaLN_modulation")(nn.silu(c))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = jnp.split(mods, 6, axis=-1)
        norm = lambda: nn.LayerNorm(epsilon=1e-6, use_bias=False, use_scale=False, dtype=self.dtype)
        h = modulate(norm()(x), shift_msa, scale_msa)
        h = nn.MultiHeadDotProductAttention(
            self.num_heads, dtype=self.dtype, kernel_init=_xavier, deterministic=True, name="attn"
        )(h)
        x = x + gate_msa[:, None, :] * h
        h = modulate(norm()(x), shift_mlp, scale_mlp)
        h = nn.Dense(int(self.hidden * self.mlp_ratio), kernel_init=_xavier, dtype=self.dtype, name="fc1")(h)
        h = nn.Dense(self.hidden, kernel_init=_xavier, dtype=self.dtype, name="fc2")(nn.gelu(h, approximate=True))
        return x + gate_mlp[:, None, :] * h


class DiT(nn.Module):
    """The DiT denoiser (module docstring): __call__(x [B, H, W, C], t [B], labels [B] | None) -> [B, H, W, C_out],
    C_out = out_ch or C, doubled for a learned variance; float32 out, computing in `dtype`."""

    patch_size: int = 2
    hidden: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    num_classes: int = 0
    learned_variance: bool = False
    out_ch: int | None = None
    frequency_dim: int = 256  # the time code's width before its MLP (DiT's frequency_embedding_size)
    dtype: jnp.dtype | None = None

    @property
    def null_label(self) -> int:
        """The label of the unconditional model (classifier-free guidance): num_classes."""
        return self.num_classes

    def _condition(self, t, labels, batch: int):
        """c = MLP(time code) + class embedding (the null label's row when labels is None)."""
        init = nn.initializers.normal(0.02)
        c = nn.Dense(self.hidden, kernel_init=init, dtype=self.dtype, name="t_fc1")(
            sinusoidal_embedding(jnp.broadcast_to(t, (batch,)), self.frequency_dim)
        )
        c = nn.Dense(self.hidden, kernel_init=init, dtype=self.dtype, name="t_fc2")(nn.silu(c))
        if labels is not None and not self.num_classes:
            raise ValueError(f"DiT: labels need num_classes >= 1, got num_classes={self.num_classes}")
        if self.num_classes:
            labels = jnp.full((batch,), self.null_label) if labels is None else jnp.asarray(labels, jnp.int32)
            if labels.shape != (batch,):
                raise ValueError(f"DiT: labels must have shape [B] = ({batch},), got {labels.shape}")
            table = nn.Embed(self.num_classes + 1, self.hidden, embedding_init=init, dtype=self.dtype, name="y_embed")
            c = c + table(labels)
        return c

    @nn.compact
    def __call__(self, x, t, labels=None, *, train: bool = False):
        del train  # no dropout in DiT; the keyword keeps the U-Net's signature
        if x.ndim != 4:
            raise ValueError(f"DiT: x must be NHWC [B, H, W, C], got shape {x.shape}")
        b, height, width, ch = x.shape
        p = self.patch_size
        if self.hidden % self.num_heads:
            raise ValueError(f"DiT: hidden={self.hidden} must be a multiple of num_heads={self.num_heads}")
        tokens = nn.Dense(self.hidden, kernel_init=_xavier, dtype=self.dtype, name="x_embed")(patchify(x, p))
        tokens = tokens + sincos_position_embedding(self.hidden, height // p, width // p).astype(tokens.dtype)
        c = self._condition(t, labels, b)
        for i in range(self.depth):
            tokens = DiTBlock(self.hidden, self.num_heads, self.mlp_ratio, dtype=self.dtype, name=f"block_{i}")(
                tokens, c
            )
        shift, scale = jnp.split(nn.Dense(2 * self.hidden, kernel_init=_zeros, dtype=self.dtype)(nn.silu(c)), 2, -1)
        tokens = modulate(nn.LayerNorm(1e-6, use_bias=False, use_scale=False, dtype=self.dtype)(tokens), shift, scale)
        out_ch = (self.out_ch or ch) * (2 if self.learned_variance else 1)
        out = nn.Dense(p * p * out_ch, kernel_init=_zeros, dtype=self.dtype, name="final")(tokens)
        return unpatchify(out, p, height, width).astype(jnp.float32)


# The paper's Table 1 sizes: (hidden, depth, heads); DiT-S/2 is CONFIGS['S'] with patch_size 2.
CONFIGS = {"S": (384, 12, 6), "B": (768, 12, 12), "L": (1024, 24, 16), "XL": (1152, 28, 16)}


def num_parameters(net: DiT, input_shape, with_position: bool = True) -> int:
    """Parameters of net on inputs [H, W, C] by eval_shape (no memory), plus the position code's (H/p)(W/p) x
    hidden when with_position: DiT counts that frozen buffer among its parameters."""
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    t = jax.ShapeDtypeStruct((1,), jnp.float32)
    y = jax.ShapeDtypeStruct((1,), jnp.int32) if net.num_classes else None
    shapes = jax.eval_shape(lambda x, t, y: net.init(jax.random.key(0), x, t, y), x, t, y)["params"]
    count = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes))
    tokens = (input_shape[0] // net.patch_size) * (input_shape[1] // net.patch_size)
    return count + (tokens * net.hidden if with_position else 0)
