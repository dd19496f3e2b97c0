"""Every program of the zoo lowers for the accelerators it targets, proven on the CPU.

Each jitted train step (every loop module and mode), sampler, the bits/dim bound and the feature network is
exported with `jax.export` for platforms ("cuda", "tpu") at small shapes, which fails on a CPU-only custom call
or a lowering that one backend lacks. Its StableHLO is then read for what would hold a fast device back: float64
(the programs are also traced with jax_enable_x64 on, where a careless constant or schedule turns into float64),
a train state that is not donated (parameters and optimizer state copied every step), and anything that talks to
the host inside the program (callbacks, send/recv, infeed/outfeed). Nothing is compiled.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from tests import test_train_autoencoder, test_train_ddpm, test_train_gan, test_train_vae, test_train_word2vec
from tests.configs import smoke_config
from train import (
    autoencoder as train_ae,
    ddpm as train_ddpm,
    edm as train_edm,
    flow as train_flow,
    gan as train_gan,
    vae as train_vae,
    vqvae as train_vqvae,
    word2vec as tw,
)
from train.core import loop, parallel
from train.data import images as data, word2vec_examples as w2v_examples
from train.evaluation import diffusion, words as word_eval
from zoo import classifier as classifier_lib, ddpm

PLATFORMS = ("cuda", "tpu")
# Custom calls every backend has: sharding annotations of the SPMD partitioner.
PORTABLE_CUSTOM_CALLS = {"Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape"}
HOST_OPS = re.compile(r"stablehlo\.(send|recv|infeed|outfeed)\b|callback|host_transfer|_xla_host")
SMALL_UNET = {"model.ch_mult": (1, 2), "model.attn_resolutions": (4,)}
BATCH = 8

DDPM_MODES = {
    "eps": {},
    "x0": {"diffusion.prediction": "x0"},
    "v-min-snr": {"diffusion.prediction": "v", "diffusion.loss_weight": "min_snr"},
    "posterior-variance": {"diffusion.variance": "posterior"},
    "learned-variance-importance": {"diffusion.variance": "learned", "diffusion.vlb_sampling": "importance"},
    "kl-zero-terminal-snr": {
        "diffusion.loss": "kl",
        "diffusion.prediction": "v",
        "diffusion.zero_terminal_snr": True,
        "diffusion.vlb_sampling": "importance",
    },
    "conditional": {"model.num_classes": 10},
    "bfloat16": {"dtype": "bfloat16"},
}
DIT = {"model.backbone": "dit", "model.hidden": 16, "model.depth": 1, "model.num_heads": 2}


def image_configs(data_dir):
    """name -> (train module, config) of every image loop module and mode, at small shapes."""
    common = dict(batch_size=BATCH, ema_decay=0.99)
    configs = {
        f"ddpm-{name}": (train_ddpm, test_train_ddpm.tiny_config(data_dir, **common, **SMALL_UNET, **mode))
        for name, mode in DDPM_MODES.items()
    }
    configs.update(
        {
            "autoencoder-mlp": (train_ae, test_train_autoencoder.tiny_config(data_dir, **common)),
            "autoencoder-conv": (
                train_ae,
                test_train_autoencoder.tiny_config(data_dir, **common, **{"model.arch": "conv"}),
            ),
            "vae-mlp": (train_vae, test_train_vae.tiny_config(data_dir, **common)),
            "vae-conv-conditional": (
                train_vae,
                test_train_vae.tiny_config(data_dir, **common, **{"model.arch": "conv", "conditional": True}),
            ),
            "edm": (train_edm, smoke_config(train_edm, data_dir, **common, **SMALL_UNET)),
            "flow-dit-conditional": (
                train_flow,
                smoke_config(train_flow, data_dir, **common, **DIT, **{"model.num_classes": 10}),
            ),
            "vqvae-ema": (train_vqvae, smoke_config(train_vqvae, data_dir, **common)),
            "gan-mlp": (train_gan, test_train_gan.tiny_config(data_dir, **common)),
            "gan-dcgan-wgan-gp": (
                train_gan,
                test_train_gan.tiny_config(data_dir, **common, **{"model.arch": "dcgan", "loss": "wgan-gp"}),
            ),
            "gan-dcgan-stabilised": (
                train_gan,
                test_train_gan.tiny_config(data_dir, **common, **test_train_gan.STABILISED, **{"model.arch": "dcgan"}),
            ),
        }
    )
    return configs


# ----------------------------------------------------------------------------- reading the exported StableHLO


def exported(fn, *args, x64: bool = False) -> export.Exported:
    """fn (a jax.jit) exported for PLATFORMS at the shapes of args (arrays or ShapeDtypeStructs)."""
    with jax.enable_x64(x64):
        return export.export(fn, platforms=PLATFORMS)(*args)


def program_text(exp: export.Exported) -> str:
    """The module's text without its source locations (file and parameter names are not program)."""
    lines = [line for line in exp.mlir_module().splitlines() if not line.startswith("#loc")]
    return re.sub(r'loc\((?:[^()"]|"[^"]*"|\([^()]*\))*\)', "", "\n".join(lines))


def float64_ops(text: str, scalars: bool = True) -> list[str]:
    """Lines computing in float64; with scalars=False only those with float64 arrays (rank >= 1): under
    jax_enable_x64 a Python float such as the 1.0 of jnp.clip(x, -1.0, 1.0) is a weakly typed float64 scalar that
    XLA folds into the float32 op, while a float64 array is a computation on data in float64."""
    pattern = r"\bf64\b|complex<f64>" if scalars else r"tensor<(?:\d+x)+(?:f64|complex<f64>)>"
    return [line.strip()[:160] for line in text.splitlines() if re.search(pattern, line)]


def foreign_custom_calls(text: str) -> set[str]:
    return set(re.findall(r"custom_call\s*@([\w.]+)", text)) - PORTABLE_CUSTOM_CALLS


def host_transfers(exp: export.Exported, text: str) -> list[str]:
    found = [m.group(0) for m in HOST_OPS.finditer(text)]
    return found + [f"effect {e}" for e in (*exp.ordered_effects, *exp.unordered_effects)]


def main_arguments(text: str) -> list[str]:
    """The attribute text of each argument of @main, in order, without the platform-index argument."""
    signature = text[text.index("func.func public @main(") :]
    signature = signature[: signature.index(") ->")]
    chunks = re.split(r"%arg\d+: ", signature)[1:]
    return [c for c in chunks if "_platform_index" not in c]


def undonated_state_leaves(exp: export.Exported, state) -> list[str]:
    """Paths of the train state's leaves (argument 0) that reach @main without being donated."""
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state)]
    arguments = main_arguments(program_text(exp))
    assert len(arguments) == len(exp.module_kept_var_idx)
    donated = ("tf.aliasing_output", "jax.buffer_donor")
    return [
        paths[i]
        for i, attrs in zip(exp.module_kept_var_idx, arguments)
        if i < len(paths) and not any(d in attrs for d in donated)
    ]


def check_program(fn, *args, state=None) -> export.Exported:
    """Export fn (float32 and, for the float64 check, under jax_enable_x64) and assert it is accelerator-clean."""
    exp = exported(fn, *args)
    text = program_text(exp)
    assert not foreign_custom_calls(text), foreign_custom_calls(text)
    assert not host_transfers(exp, text), host_transfers(exp, text)
    assert not float64_ops(text), float64_ops(text)[:5]
    with_x64 = program_text(exported(fn, *args, x64=True))
    assert not float64_ops(with_x64, scalars=False), float64_ops(with_x64, scalars=False)[:5]
    if state is not None:
        assert not undonated_state_leaves(exp, state), undonated_state_leaves(exp, state)[:5]
    assert exp.platforms == PLATFORMS
    return exp


def abstract(tree, sharding=None):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype, sharding=sharding), tree)


# ----------------------------------------------------------------------------- the checks can fail


def test_the_checks_catch_float64_host_callbacks_and_undonated_state():
    """Each check fires on a program built to break it, so a clean report means something."""
    w = jax.ShapeDtypeStruct((4,), jnp.float32)
    with jax.enable_x64(True):
        text = program_text(exported(jax.jit(lambda w: w * jnp.linspace(0.0, 1.0, 4)), w, x64=True))
    assert float64_ops(text, scalars=False)
    with pytest.raises((NotImplementedError, TypeError)):  # jax.export refuses host callbacks itself (jax 0.10)
        exported(jax.jit(lambda w: jax.debug.print("{}", w.sum()) or w), w)
    assert HOST_OPS.search('%0 = "stablehlo.send"(%arg0, %token)') and not HOST_OPS.search("stablehlo.add")
    state = {"params": w, "opt": w}
    kept = exported(jax.jit(lambda s: jax.tree.map(lambda x: x + 1, s)), state)
    assert undonated_state_leaves(kept, state) == ["['opt']", "['params']"]
    donated = exported(jax.jit(lambda s: jax.tree.map(lambda x: x + 1, s), donate_argnums=0), state)
    assert undonated_state_leaves(donated, state) == []


# ----------------------------------------------------------------------------- train steps


@pytest.fixture(scope="module")
def digits(data_dir):
    return data.load_images("digits", str(data_dir))


@pytest.mark.parametrize(
    "name",
    [
        *[f"ddpm-{m}" for m in DDPM_MODES],
        "autoencoder-mlp",
        "autoencoder-conv",
        "vae-mlp",
        "vae-conv-conditional",
        "gan-mlp",
        "gan-dcgan-wgan-gp",
        "gan-dcgan-stabilised",
        "edm",
        "flow-dit-conditional",
        "vqvae-ema",
    ],
)
def test_every_image_train_step_lowers_for_gpu_and_tpu(name, digits, data_dir):
    module, c = image_configs(data_dir)[name]
    mesh = parallel.data_mesh()
    task = module.make_task(c, digits)
    state = loop.abstract_state(task, c, mesh)
    batch = abstract(next(data.batches(digits.train, BATCH, 0)), parallel.batch_sharding(mesh))
    check_program(loop.compile_step(task, c, mesh), state, batch, state=state)


@pytest.mark.parametrize("model", ["sgns", "cbow", "skipgram_softmax"])
def test_word2vec_train_step_lowers_for_gpu_and_tpu(model):
    c = test_train_word2vec.tiny_config(model=model, kernel="xla")  # what accelerators run (the kernel is the CPU's)
    corpus, _ = w2v_examples.load_corpus(c, None)
    c.num_steps = w2v_examples.resolve_num_steps(c, corpus)
    task = tw.make_task(c, corpus, word_eval.load_eval_sets(c))
    mesh = parallel.data_mesh()
    state = loop.abstract_state(task, c, mesh)
    batch = abstract(next(task.batches(c.batch_size, 0)), parallel.batch_sharding(mesh))
    check_program(loop.compile_step(task, c, mesh), state, batch, state=state)


# ----------------------------------------------------------------------------- samplers, bound, feature network


@pytest.fixture(scope="module")
def ddpm_parts(data_dir):
    c = test_train_ddpm.tiny_config(data_dir, **SMALL_UNET)
    net, shape = train_ddpm.make_network(c), (8, 8, 1)
    params = jax.eval_shape(
        lambda k: net.init(k, jnp.zeros((1, *shape)), jnp.zeros((1,), jnp.int32))["params"], jax.random.key(0)
    )
    return c, shape, params


@pytest.mark.parametrize("sampler", ddpm.SAMPLERS)
def test_every_sampler_lowers_for_gpu_and_tpu(sampler, ddpm_parts):
    c, shape, params = ddpm_parts
    check_program(train_ddpm.make_sampler(c, shape, 4, sampler), params, jax.random.key(0))


def test_the_bits_per_dim_bound_lowers_for_gpu_and_tpu(ddpm_parts):
    c, shape, params = ddpm_parts
    sched, eps_fn = (
        train_ddpm.schedule_of(c),
        diffusion.eps_fn_of(c, train_ddpm.schedule_of(c), train_ddpm.make_network(c)),
    )
    bound = jax.jit(lambda p, x, k: ddpm.nll_bound_bpd(sched, eps_fn(p), x, k)[0])
    check_program(bound, params, jax.ShapeDtypeStruct((4, *shape), jnp.float32), jax.random.key(0))


def test_a_latent_runs_step_and_its_decoding_lower_for_gpu_and_tpu(data_dir):
    """The denoiser's step on float latents (a 4x4x2 grid, config.latent set) and the VQ-VAE's decoding of them."""
    c = smoke_config(train_flow, data_dir, batch_size=BATCH, **{"latent.autoencoder": "vq", "model.ch_mult": (1,)})
    spec, mesh = data.ImageSpec("digits", (4, 4, 2), 10), parallel.data_mesh()
    task = train_flow.make_task(c, spec)
    state = loop.abstract_state(task, c, mesh)
    batch = {"image": np.zeros((BATCH, 4, 4, 2), np.float32), "label": np.zeros((BATCH,), np.int32)}
    check_program(loop.compile_step(task, c, mesh), state, abstract(batch, parallel.batch_sharding(mesh)), state=state)
    vq_c, image_spec = smoke_config(train_vqvae, data_dir), data.ImageSpec("digits", (8, 8, 1), 10)
    params = jax.eval_shape(train_vqvae.make_task(vq_c, image_spec).init_params, jax.random.key(0))
    check_program(train_vqvae.decoder_of(vq_c, image_spec), params, jax.ShapeDtypeStruct((4, 4, 4, 2), jnp.float32))
    check_program(train_vqvae.unigram_draw(vq_c, image_spec, 4), params, jax.random.key(0))


def test_the_feature_network_lowers_for_gpu_and_tpu():
    net = classifier_lib.Classifier(num_classes=10)
    x = jax.ShapeDtypeStruct((16, 28, 28, 1), jnp.float32)
    params = jax.eval_shape(lambda k: net.init(k, jnp.zeros(x.shape)), jax.random.key(0))
    check_program(jax.jit(lambda p, x: net.apply(p, x, features=True)), params, x)
