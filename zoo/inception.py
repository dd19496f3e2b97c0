"""InceptionV3 as the FID network: TensorFlow's 2015-12-05 Inception graph, block for block as pytorch-fid ports it.

FID (Heusel et al. 2017), the Inception Score (Salimans et al. 2016) and KID (Binkowski et al. 2018) are computed in
the features of one fixed network, the 2015-12-05 InceptionV3 (Szegedy et al. 2016) of TensorFlow's FID code.
pytorch-fid ports it as `FIDInceptionV3`: torchvision's Inception3 with four of its blocks patched to match the TF
graph. This file is that network, with pytorch-fid's module names, so its state dict maps one to one onto the Flax
variables (train/evaluation/inception_weights.py):

    images [N, H, W, 3]: floats in [0, 1], or uint8 in {0..255} (read as u / 255)
      -> resize to 299x299, bilinear as torch's F.interpolate(align_corners=False), no antialiasing
      -> x = 2 images - 1                                                         in [-1, 1]
      -> stem: conv 3x3/2, conv 3x3, conv 3x3 pad 1, max pool 3x3/2,
               conv 1x1, conv 3x3, max pool 3x3/2                                 [N, 35, 35, 192]
      -> Mixed_5b, 5c, 5d   A (pool branch widths 32, 64, 64)                     [N, 35, 35, 288]
      -> Mixed_6a           B (grid reduction)                                    [N, 17, 17, 768]
      -> Mixed_6b .. 6e     C (7x7 factorised into 1x7 and 7x1; widths 128, 160, 160, 192)
      -> Mixed_7a           D (grid reduction)                                    [N, 8, 8, 1280]
      -> Mixed_7b, 7c       E_1 (average pool branch), E_2 (max pool branch)      [N, 8, 8, 2048]
      -> mean over H, W     = pool features (FID, KID)                            [N, 2048]
      -> fc                 = logits over the TF graph's 1008 classes (IS)        [N, 1008]

Every conv is a BasicConv2d: conv without bias -> BatchNorm(eps=0.001) on its running statistics -> ReLU.
Where the FID graph differs from torchvision's Inception3 (pytorch-fid's patches):
  - the pool branch of A, C and E_1 is a 3x3/1 average pool with padding 1 that averages over the pixels inside the
    image only (TF's SAME pooling; torch's count_include_pad=False);
  - the pool branch of E_2 (Mixed_7c) is a 3x3/1 max pool with padding 1, not an average pool;
  - 1008 classes, no auxiliary classifier.

Float inputs are not checked to lie in [0, 1] (they may be traced). Convs and the fc run at `precision`, by default
HIGHEST: on GPUs and TPUs XLA may otherwise run float32 convolutions as TF32 or bfloat16 passes, and FID moves with
the features. Nothing here is jitted inside: `jax.jit` is the caller's.

Example:
    module, variables = train.evaluation.inception_weights.load_inception("pt_inception-2015-12-05-6726825d.pth")
    pool, logits = features(module, variables, uint8_images)     # [N, 2048], [N, 1008]
"""

from __future__ import annotations

import functools
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "INPUT_SIZE",
    "NUM_CLASSES",
    "POOL_FEATURES",
    "to_unit_range",
    "bilinear_taps",
    "resize_bilinear",
    "scale_to_inception",
    "avg_pool_3x3_inside",
    "max_pool_3x3_same",
    "max_pool_3x3_stride2",
    "BasicConv2d",
    "InceptionA",
    "InceptionB",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "InceptionV3",
    "features",
]

INPUT_SIZE = 299  # the side every image is resized to
POOL_FEATURES = 2048
NUM_CLASSES = 1008  # the TF graph's softmax: 1000 ImageNet classes and 8 unused

_Precision = jax.lax.Precision | str | None
_UINT8_TO_UNIT = np.arange(256, dtype=np.float32) / np.float32(255)


# ----------------------------------------------------------------------------- the input


def to_unit_range(images) -> jax.Array:
    """uint8 u -> u / 255 in float32; floats as they are (in float32): the images pytorch-fid's network reads."""
    images = jnp.asarray(images)
    if images.dtype == jnp.uint8:
        # the 256 float32 quotients, as torch's ToTensor divides: XLA may multiply by 1/255 instead, 1 ulp off
        return jnp.asarray(_UINT8_TO_UNIT)[images]
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise ValueError(f"InceptionV3: images must be floats in [0, 1] or uint8 in {{0..255}}, got {images.dtype}")
    return images.astype(jnp.float32)


def bilinear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Torch's bilinear source taps along one axis (align_corners=False): for output pixel i,
    s = max((i + 1/2) in/out - 1/2, 0), taps lo = floor(s) and hi = min(lo + 1, in - 1), weight of hi s - lo."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"bilinear_taps: sizes must be >= 1, got in_size={in_size}, out_size={out_size}")
    # torch computes the scale in float32 and s = scale (i + 1/2) - 1/2 as one fused multiply-add, rounded to float32
    # once: in float64 the product and the difference are exact, so one rounding of them gives its s to the bit
    scale = np.float64(np.float32(in_size) / np.float32(out_size))
    src = np.maximum((scale * (np.arange(out_size) + 0.5) - 0.5).astype(np.float32), np.float32(0.0))
    lo = np.floor(src).astype(np.int32)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, (src - lo).astype(np.float32)


def resize_bilinear(images, size: tuple[int, int]) -> jax.Array:
    """images [N, H, W, C] -> [N, size[0], size[1], C] as torch's F.interpolate(mode='bilinear',
    align_corners=False) without antialiasing: each output pixel mixes the 2x2 input pixels around its source point."""
    images = jnp.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"resize_bilinear: images must have shape [N, H, W, C], got {images.shape}")
    lo_h, hi_h, frac_h = bilinear_taps(images.shape[1], size[0])
    lo_w, hi_w, frac_w = bilinear_taps(images.shape[2], size[1])
    # along W first, then H: the order of torch's CPU kernel, so the float32 roundings agree too
    fw = frac_w[:, None]
    rows = images[:, :, lo_w] * (1 - fw) + images[:, :, hi_w] * fw
    fh = frac_h[:, None, None]
    return rows[:, lo_h] * (1 - fh) + rows[:, hi_h] * fh


def scale_to_inception(x) -> jax.Array:
    """[0, 1] -> [-1, 1]: 2x - 1, the range the TF graph was trained on."""
    return 2 * x - 1


# ----------------------------------------------------------------------------- pooling


def avg_pool_3x3_inside(x) -> jax.Array:
    """Mean over the in-image pixels of each 3x3 window, stride 1, padding 1 (torch's count_include_pad=False)."""
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def max_pool_3x3_same(x) -> jax.Array:
    """Max over each 3x3 window, stride 1, padding 1 (padded pixels are -inf, never the max)."""
    return nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))


def max_pool_3x3_stride2(x) -> jax.Array:
    """Max over each 3x3 window, stride 2, no padding: (H, W) -> ((H - 3) // 2 + 1, (W - 3) // 2 + 1)."""
    return nn.max_pool(x, (3, 3), strides=(2, 2))


# ----------------------------------------------------------------------------- the blocks


class BasicConv2d(nn.Module):
    """y = ReLU(BN(conv(x))): a conv without bias, BatchNorm(eps=0.001) on its running statistics, ReLU."""

    features: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)
    precision: _Precision = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        pad_h, pad_w = self.padding
        x = nn.Conv(
            self.features,
            self.kernel,
            strides=self.stride,
            padding=((pad_h, pad_h), (pad_w, pad_w)),
            use_bias=False,
            precision=self.precision,
            name="conv",
        )(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
        return nn.relu(x)


class InceptionA(nn.Module):
    """FIDInceptionA (Mixed_5b-5d), channels 64 + 64 + 96 + pool_features:
    [1x1, 1x1 -> 5x5, 1x1 -> 3x3 -> 3x3, avg pool (inside the image) -> 1x1]."""

    pool_features: int
    precision: _Precision = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        conv = functools.partial(BasicConv2d, precision=self.precision)
        branch1x1 = conv(64, (1, 1), name="branch1x1")(x)
        branch5x5 = conv(48, (1, 1), name="branch5x5_1")(x)
        branch5x5 = conv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(branch5x5)
        branch3x3dbl = conv(64, (1, 1), name="branch3x3dbl_1")(x)
        branch3x3dbl = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
        branch3x3dbl = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(branch3x3dbl)
        branch_pool = conv(self.pool_features, (1, 1), name="branch_pool")(avg_pool_3x3_inside(x))
        return jnp.concatenate([branch1x1, branch5x5, branch3x3dbl, branch_pool], axis=-1)


class InceptionB(nn.Module):
    """torchvision's InceptionB (Mixed_6a), a grid reduction, channels 384 + 96 + in:
    [3x3/2, 1x1 -> 3x3 -> 3x3/2, max pool 3x3/2]."""

    precision: _Precision = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        conv = functools.partial(BasicConv2d, precision=self.precision)
        branch3x3 = conv(384, (3, 3), stride=2, name="branch3x3")(x)
        branch3x3dbl = conv(64, (1, 1), name="branch3x3dbl_1")(x)
        branch3x3dbl = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
        branch3x3dbl = conv(96, (3, 3), stride=2, name="branch3x3dbl_3")(branch3x3dbl)
        return jnp.concatenate([branch3x3, branch3x3dbl, max_pool_3x3_stride2(x)], axis=-1)


class InceptionC(nn.Module):
    """FIDInceptionC (Mixed_6b-6e), channels 4 x 192, with c = channels_7x7: [1x1, 1x1 -> 1x7 -> 7x1,
    1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7, avg pool (inside the image) -> 1x1]."""

    channels_7x7: int
    precision: _Precision = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        conv = functools.partial(BasicConv2d, precision=self.precision)
        c7, row, col = self.channels_7x7, dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        branch1x1 = conv(192, (1, 1), name="branch1x1")(x)
        branch7x7 = conv(c7, (1, 1), name="branch7x7_1")(x)
        branch7x7 = conv(c7, **row, name="branch7x7_2")(branch7x7)
        branch7x7 = conv(192, **col, name="branch7x7_3")(branch7x7)
        branch7x7dbl = conv(c7, (1, 1), name="branch7x7dbl_1")(x)
        branch7x7dbl = conv(c7, **col, name="branch7x7dbl_2")(branch7x7dbl)
        branch7x7dbl = conv(c7, **row, name="branch7x7dbl_3")(branch7x7dbl)
        branch7x7dbl = conv(c7, **col, name="branch7x7dbl_4")(branch7x7dbl)
        branch7x7dbl = conv(192, **row, name="branch7x7dbl_5")(branch7x7dbl)
        branch_pool = conv(192, (1, 1), name="branch_pool")(avg_pool_3x3_inside(x))
        return jnp.concatenate([branch1x1, branch7x7, branch7x7dbl, branch_pool], axis=-1)


class InceptionD(nn.Module):
    """torchvision's InceptionD (Mixed_7a), a grid reduction, channels 320 + 192 + in:
    [1x1 -> 3x3/2, 1x1 -> 1x7 -> 7x1 -> 3x3/2, max pool 3x3/2]."""

    precision: _Precision = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        conv = functools.partial(BasicConv2d, precision=self.precision)
        branch3x3 = conv(192, (1, 1), name="branch3x3_1")(x)
        branch3x3 = conv(320, (3, 3), stride=2, name="branch3x3_2")(branch3x3)
        branch7x7x3 = conv(192, (1, 1), name="branch7x7x3_1")(x)
        branch7x7x3 = conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7x3)
        branch7x7x3 = conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7x3)
        branch7x7x3 = conv(192, (3, 3), stride=2, name="branch7x7x3_4")(branch7x7x3)
        return jnp.concatenate([branch3x3, branch7x7x3, max_pool_3x3_stride2(x)], axis=-1)


class InceptionE(nn.Module):
    """FIDInceptionE_1 (Mixed_7b, pool='avg') and FIDInceptionE_2 (Mixed_7c, pool='max'), channels
    320 + 768 + 768 + 192: [1x1, 1x1 -> (1x3 | 3x1), 1x1 -> 3x3 -> (1x3 | 3x1), pool 3x3/1 -> 1x1]."""

    pool: Literal["avg", "max"]
    precision: _Precision = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, x):
        if self.pool not in ("avg", "max"):
            raise ValueError(f"InceptionE: pool must be 'avg' (E_1) or 'max' (E_2), got {self.pool!r}")
        conv = functools.partial(BasicConv2d, precision=self.precision)
        row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
        branch1x1 = conv(320, (1, 1), name="branch1x1")(x)
        branch3x3 = conv(384, (1, 1), name="branch3x3_1")(x)
        branch3x3 = jnp.concatenate(
            [conv(384, **row, name="branch3x3_2a")(branch3x3), conv(384, **col, name="branch3x3_2b")(branch3x3)], -1
        )
        branch3x3dbl = conv(448, (1, 1), name="branch3x3dbl_1")(x)
        branch3x3dbl = conv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(branch3x3dbl)
        branch3x3dbl = jnp.concatenate(
            [
                conv(384, **row, name="branch3x3dbl_3a")(branch3x3dbl),
                conv(384, **col, name="branch3x3dbl_3b")(branch3x3dbl),
            ],
            -1,
        )
        # E_2's max pool is the TF graph's (pytorch-fid: "likely an error" there, but the FID network's behaviour)
        pooled = avg_pool_3x3_inside(x) if self.pool == "avg" else max_pool_3x3_same(x)
        branch_pool = conv(192, (1, 1), name="branch_pool")(pooled)
        return jnp.concatenate([branch1x1, branch3x3, branch3x3dbl, branch_pool], axis=-1)


# ----------------------------------------------------------------------------- the network


class InceptionV3(nn.Module):
    """pytorch-fid's InceptionV3(resize_input=True, normalize_input=True, use_fid_inception=True) and the fc layer of
    its FIDInceptionV3: images [N, H, W, 3] -> (pool features [N, 2048], logits [N, 1008])."""

    precision: _Precision = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, images) -> tuple[jax.Array, jax.Array]:
        if jnp.ndim(images) != 4 or jnp.shape(images)[-1] != 3:
            raise ValueError(f"InceptionV3: images must have shape [N, H, W, 3], got {jnp.shape(images)}")
        x = scale_to_inception(resize_bilinear(to_unit_range(images), (INPUT_SIZE, INPUT_SIZE)))
        conv = functools.partial(BasicConv2d, precision=self.precision)
        x = conv(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)
        x = conv(32, (3, 3), name="Conv2d_2a_3x3")(x)
        x = conv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)
        x = max_pool_3x3_stride2(x)
        x = conv(80, (1, 1), name="Conv2d_3b_1x1")(x)
        x = conv(192, (3, 3), name="Conv2d_4a_3x3")(x)
        x = max_pool_3x3_stride2(x)
        for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
            x = InceptionA(pool_features, self.precision, name=name)(x)
        x = InceptionB(self.precision, name="Mixed_6a")(x)
        for name, channels_7x7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = InceptionC(channels_7x7, self.precision, name=name)(x)
        x = InceptionD(self.precision, name="Mixed_7a")(x)
        x = InceptionE("avg", self.precision, name="Mixed_7b")(x)
        x = InceptionE("max", self.precision, name="Mixed_7c")(x)
        pool = jnp.mean(x, axis=(1, 2))
        # torch's dropout before the fc is the identity in inference
        logits = nn.Dense(NUM_CLASSES, precision=self.precision, name="fc")(pool)
        return pool, logits


def features(module: InceptionV3, variables, images) -> tuple[jax.Array, jax.Array]:
    """(pool features [N, 2048], logits [N, 1008]) of images [N, H, W, 3], floats in [0, 1] or uint8."""
    return module.apply(variables, images)
