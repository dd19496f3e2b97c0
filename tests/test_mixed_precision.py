"""Mixed precision (config.dtype='bfloat16') in every neural model: float32 parameters, bfloat16 compute,
float32 outputs into the losses, and training that still works.

The dtype checks trace (jax.eval_shape, jax.make_jaxpr) and compile nothing; only the short training runs
compile, one small step per module.
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import core as jax_core

from train import registry
from train.core import loop, parallel, state as state_lib
from train.data import images as data
from zoo import autoencoder as ae, gan, vae, vqvae

BF16, F32 = np.dtype(jnp.bfloat16), np.dtype(jnp.float32)
# Every image model (train.registry), with the tiny config of its own test file.
MODULES = {
    name: (importlib.import_module(f"train.{name}"), importlib.import_module(f"tests.test_train_{name}").tiny_config)
    for name in registry.IMAGE_MODELS
}
SMALL_UNET = {"model.ch_mult": (1,), "model.attn_resolutions": (8,)}  # one level, attention at 8x8: quick to trace
SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def digits(data_dir):
    return data.load_images("digits", str(data_dir))


# ----------------------------------------------------------------------------- the zoo's networks

NETWORKS = {
    "MLPEncoder": (lambda d: ae.MLPEncoder(3, hidden=(16,), dtype=d), SHAPE),
    "MLPDecoder": (lambda d: ae.MLPDecoder(SHAPE, hidden=(16,), dtype=d), (3,)),
    "ConvEncoder": (lambda d: ae.ConvEncoder(3, channels=(4, 8), dtype=d), SHAPE),
    "ConvDecoder": (lambda d: ae.ConvDecoder(SHAPE, channels=(4, 8), dtype=d), (3,)),
    "VAE-mlp": (lambda d: vae.VAE(SHAPE, latent_dim=3, hidden=(16,), dtype=d), SHAPE),
    "VAE-conv": (lambda d: vae.VAE(SHAPE, latent_dim=3, arch="conv", channels=(4, 8), dtype=d), SHAPE),
    "MLPGenerator": (lambda d: gan.MLPGenerator(SHAPE, hidden=(16,), dtype=d), (4,)),
    "MLPDiscriminator": (lambda d: gan.MLPDiscriminator(hidden=(16,), dtype=d), SHAPE),
    "DCGenerator": (lambda d: gan.DCGenerator(SHAPE, channels=(4, 8), dtype=d), (4,)),
    "DCDiscriminator": (lambda d: gan.DCDiscriminator(channels=(4, 8), dtype=d), SHAPE),
    "VQVAE": (lambda d: vqvae.VQVAE(1, num_codes=8, code_dim=2, channels=8, dtype=d), SHAPE),
}


@pytest.mark.parametrize("name", NETWORKS)
def test_zoo_network_computes_in_bfloat16_with_float32_params_and_outputs(name):
    make, in_shape = NETWORKS[name]
    net, x = make(jnp.bfloat16), jax.ShapeDtypeStruct((2, *in_shape), jnp.float32)
    params = jax.eval_shape(net.init, jax.random.key(0), x)
    out, state = jax.eval_shape(
        lambda p, x: net.apply(p, x, capture_intermediates=True, mutable=["intermediates"]), params, x
    )
    assert {p.dtype for p in jax.tree.leaves(params)} == {F32}
    floats = {o.dtype for o in jax.tree.leaves(out) if jnp.issubdtype(o.dtype, jnp.floating)}  # not VQ's codes
    assert floats == {F32}  # cast back before any loss
    layers = {
        jax.tree_util.keystr(path): leaf.dtype
        for path, leaf in jax.tree_util.tree_leaves_with_path(state["intermediates"])
        if any(f"'{kind}_" in jax.tree_util.keystr(path) for kind in ("Dense", "Conv", "GroupNorm"))
    }
    assert layers and set(layers.values()) == {BF16}, layers


# ----------------------------------------------------------------------------- the training modules' steps


def _equations(jaxpr):
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                if isinstance(sub, jax_core.ClosedJaxpr):
                    yield from _equations(sub.jaxpr)
                elif isinstance(sub, jax_core.Jaxpr):
                    yield from _equations(sub)


def _abstract_state(task, c):
    tx = task.optimizer or state_lib.make_optimizer(c)
    return jax.eval_shape(
        lambda k: state_lib.create_train_state(
            task.init_params(k), tx, c.ema_decay, task.init_aux() if task.init_aux else None
        ),
        jax.random.key(0),
    )


@pytest.mark.parametrize(
    "name, overrides",
    [
        pytest.param("ddpm", SMALL_UNET, id="ddpm"),
        pytest.param("flow", {"model.backbone": "dit", "model.hidden": 16, "model.depth": 1}, id="flow-dit"),
        pytest.param("autoencoder", {}, id="autoencoder-mlp"),
        pytest.param("autoencoder", {"model.arch": "conv"}, id="autoencoder-conv"),
        pytest.param("vae", {}, id="vae-mlp"),
        pytest.param("vae", {"model.arch": "conv", "conditional": True}, id="vae-conv-conditional"),
        pytest.param("gan", {}, id="gan-mlp"),
        pytest.param("gan", {"model.arch": "dcgan", "loss": "wgan-gp"}, id="gan-dcgan-wgan-gp"),
        pytest.param(
            "gan",
            {
                "model.arch": "dcgan",
                "n_critic": 3,
                "d_spectral_norm": True,
                "r1_gamma": 1.0,
                "reg_every": 2,
                "diffaugment": "color,translation,cutout",
            },
            id="gan-dcgan-stabilised",
        ),
    ],
)
def test_train_step_matmuls_and_convolutions_run_in_the_config_dtype(name, overrides, digits, data_dir):
    """Every matmul and convolution of the whole train step (forward and backward) takes config.dtype operands;
    the parameters are float32 either way."""
    module, tiny_config = MODULES[name]
    batch = next(data.batches(digits.train, 8, 0))
    for dtype, want in (("float32", F32), ("bfloat16", BF16)):
        c = tiny_config(data_dir, dtype=dtype, **overrides)
        task = module.make_task(c, digits)
        state = _abstract_state(task, c)
        step = task.train_step or loop.gradient_step(task.loss_fn)
        jaxpr = jax.make_jaxpr(step)(state, batch, jax.random.key(1)).jaxpr
        operands = [
            tuple(v.aval.dtype for v in e.invars)
            for e in _equations(jaxpr)
            if e.primitive.name in ("dot_general", "conv_general_dilated")
        ]
        assert operands and set(operands) == {(want, want)}, (dtype, set(operands))
        assert {p.dtype for p in jax.tree.leaves(state.params)} == {F32}


@pytest.mark.parametrize("name", ["autoencoder", "vae", "gan"])  # ddpm: test_train_ddpm_variants.py's bfloat16 run
def test_bfloat16_training_lowers_the_loss_with_float32_params(name, digits, data_dir):
    module, tiny_config = MODULES[name]
    c = tiny_config(data_dir, dtype="bfloat16", batch_size=32, learning_rate=3e-3)
    task, mesh = module.make_task(c, digits), parallel.data_mesh()
    state, step = loop.init_state(task, c, mesh), loop.compile_step(task, c, mesh)
    batches = data.batches(digits.train, c.batch_size, c.seed)
    losses = []
    for _ in range(24):
        state, metrics, finite = step(state, parallel.shard_batch(next(batches), mesh))
        losses.append(float(metrics["loss"]))  # the GAN's: d_loss + g_loss, falling as D learns early on
        assert finite
    assert np.mean(losses[-4:]) < 0.95 * np.mean(losses[:4]), losses
    assert {p.dtype for p in jax.tree.leaves(state.params)} == {F32}
    assert {p.dtype for p in jax.tree.leaves(state.opt_state) if hasattr(p, "dtype") and p.ndim} == {F32}
    assert step._cache_size() == 1
