"""train.ddpm's variants end to end, on tiny configs (a few steps, T=20, the small U-Net): sharding, bfloat16,
v-prediction at zero terminal SNR with the kl loss, the learned variance, class conditioning, the Karras samplers.
(The straight run, resume and sampling of a trained run: tests/test_train_ddpm.py.)"""

import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from tests.configs import read_metrics, train_losses
from tests.test_train_ddpm import SMALL_UNET, tiny_config
from train import ddpm as train_ddpm
from train.core.errors import ConfigError
from train.data import images as data
from train.evaluation import diffusion, images as evaluation


def test_runs_sharded_over_several_devices(data_dir, tmp_path):
    """The same command on 4 simulated CPU devices: batch split 4 ways, parameters replicated."""
    code = (
        "import jax; assert jax.device_count() == 4; from train import ddpm as d; "
        "from tests.test_train_ddpm import SMALL_UNET, tiny_config; import sys; "
        f"f = d.run(tiny_config({str(data_dir)!r}, num_steps=2, **SMALL_UNET), {str(tmp_path)!r}); "
        "print('LOSS', f['loss'])"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.isfinite(float(proc.stdout.split("LOSS")[1]))


def test_bfloat16_compute_trains_with_float32_params(data_dir, tmp_path):
    c = tiny_config(
        data_dir, num_steps=12, log_every=1, checkpoint_every=12, dtype="bfloat16", learning_rate=3e-3, **SMALL_UNET
    )
    train_ddpm.run(c, str(tmp_path))
    curve = [l for _, l in sorted(train_losses(str(tmp_path)).items())]
    assert np.mean(curve[-4:]) < np.mean(curve[:4])  # the loss falls
    net = train_ddpm.make_task(c, data.load_images("digits", str(data_dir)))
    params = jax.eval_shape(net.init_params, jax.random.key(0))
    assert {p.dtype for p in jax.tree.leaves(params)} == {np.dtype("float32")}


def test_in_memory_batches_cover_each_epoch_and_resume(data_dir):
    ds = data.load_images("digits", str(data_dir))
    batches = data.InMemoryBatches(ds.train)
    # 15 batches of 100 are one epoch of the 1500 train images: every image once
    idx = np.concatenate([batches.indices(0, s, 100) for s in range(15)])
    assert sorted(idx) == list(range(1500))
    assert not np.array_equal(batches.indices(0, 15, 100), batches.indices(0, 0, 100))  # a new permutation
    a = data.batches(ds.train, 100, 0)
    first = [next(a) for _ in range(3)]
    np.testing.assert_array_equal(first[1]["image"], np.stack([ds.train[int(i)]["image"] for i in idx[100:200]]))
    b = data.batches(ds.train, 100, 0)
    b.set_state(a.get_state())  # what a checkpoint restores
    np.testing.assert_array_equal(next(b)["label"], next(a)["label"])
    assert not np.array_equal(next(data.batches(ds.train, 100, 1))["label"], first[0]["label"])


def test_a_v_prediction_run_at_zero_terminal_snr_trains_by_l_vlb_samples_and_bounds(data_dir, tmp_path):
    """v-prediction on a zero-terminal-SNR schedule, trained by the kl loss (L_vlb alone) with importance-sampled t,
    sampled with sample.sampler=dpmpp_2m, whose grid then stands beside the ancestral one. The loss is L_t itself:
    the mean of the logged vb_bpd (t is drawn uniformly, weight 1, until the history fills)."""
    overrides = {
        "diffusion.prediction": "v",
        "diffusion.zero_terminal_snr": True,
        "diffusion.loss": "kl",
        "diffusion.vlb_sampling": "importance",
        "sample.sampler": "dpmpp_2m",
        **SMALL_UNET,
    }
    figures = train_ddpm.run(tiny_config(data_dir, num_steps=2, **overrides), str(tmp_path))
    assert np.isfinite(figures["loss"]) and np.isfinite(figures["eval/test_bpd_bound"])
    assert figures["loss"] == pytest.approx(figures["vb_bpd"], rel=1e-5) and figures["vb_bpd"] > 0
    assert sorted(os.listdir(tmp_path / "samples")) == ["ancestral_000002.png", "dpmpp_2m_000002.png"]


# A class-conditional run on the digits' 10 labels: guided samples, 20 scored (a 5-step classifier).
CONDITIONAL = {"model.num_classes": 10, "sample.guidance": 1.0, "sample.num_images": 20, "eval.num_samples": 20}


def test_a_learned_variance_run_trains_by_the_hybrid_loss_and_checkpoints_its_loss_history(data_dir, tmp_path):
    """variance=learned, vlb_sampling=importance: the hybrid loss's terms are logged, the bound is finite, and the
    history of L_vlb per timestep is saved with the state and carried over a resume (4 steps of 8, then 2 more)."""
    import orbax.checkpoint as ocp

    workdir = str(tmp_path)
    learned = {"diffusion.variance": "learned", "diffusion.vlb_sampling": "importance", **SMALL_UNET}
    train_ddpm.run(tiny_config(data_dir, num_steps=4, **learned), workdir)
    figures = train_ddpm.run(tiny_config(data_dir, num_steps=6, **learned), workdir)
    for k in ("loss", "mse", "vb_bpd", "eval/test_bpd_bound"):
        assert np.isfinite(figures[k]), k
    assert figures["loss"] > figures["mse"]  # mse + 0.001 * T * vb with vb > 0
    history = ocp.StandardCheckpointer().restore(os.path.join(workdir, "checkpoints", "6", "state"))["aux"]
    counts, values = np.asarray(history["counts"]), np.asarray(history["values"])
    assert counts.shape == (20,) and counts.sum() == 6 * 8  # every example of the 6 steps, none lost on resume
    filled = np.arange(values.shape[1])[None, :] < counts[:, None]
    assert np.all(values[filled] > 0) and np.all(values[~filled] == 0)
    samples = train_ddpm.load(workdir).sample(jax.random.key(0), 3, sampler="ancestral")
    assert samples.shape == (3, 8, 8, 1) and samples.dtype == np.uint8


def test_a_conditional_run_trains_samples_each_class_and_reports_the_class_accuracy(data_dir, tmp_path):
    c = tiny_config(data_dir, num_steps=2, **CONDITIONAL, **SMALL_UNET, **{"eval.classifier_steps": 5})
    figures = train_ddpm.run(c, str(tmp_path))
    assert np.isfinite(figures["loss"]) and np.isfinite(figures["eval/test_bpd_bound"])
    logged = [r for r in read_metrics(str(tmp_path)) if "eval/ddim_class_accuracy" in r][-1]
    per_class = [logged[f"eval/ddim_class_accuracy_{k}"] for k in range(10)]
    assert all(0 <= a <= 1 for a in per_class)
    # the 20 scored samples' labels have the test split's proportions: the overall share weighs the classes by them
    test_labels = data.as_arrays(data.load_images("digits", str(data_dir)).test)["label"]
    counts = np.bincount(evaluation.labels_in_proportion(test_labels, 20), minlength=10)
    assert counts.sum() == 20 and counts.min() >= 1
    assert logged["eval/ddim_class_accuracy"] == pytest.approx(np.dot(counts, per_class) / 20)
    assert np.isfinite(logged["eval/ddim_fd"]) and "eval/ancestral_class_accuracy_9" in logged
    # the grids: one row per class (10 rows of 20 // 10 = 2 images of 8x8 with 1-px gaps), enlarged 3x to >= 256 px
    for name in ("ancestral", "ddim"):
        img = np.asarray(Image.open(tmp_path / "samples" / f"{name}_000002.png"))
        assert img.shape == (3 * (10 * 9 + 1), 3 * (2 * 9 + 1)), img.shape


def test_the_loss_drops_the_configured_share_of_labels(data_dir, monkeypatch):
    """The loss hands batch labels, class_dropout and the null label to zoo.ddpm.drop_labels (its Monte Carlo test
    checks the share) and the U-Net gets what it returns; traced with eval_shape, nothing compiled."""
    seen = []
    drop = train_ddpm.ddpm.drop_labels
    monkeypatch.setattr(
        train_ddpm.ddpm,
        "drop_labels",
        lambda k, y, rate, null: seen.append((y.shape, rate, null)) or drop(k, y, rate, null),
    )
    c = tiny_config(data_dir, **{"model.num_classes": 10, "model.class_dropout": 0.25})
    task = train_ddpm.make_task(c, data.load_images("digits", str(data_dir)))
    params = jax.eval_shape(task.init_params, jax.random.key(0))
    batch = {"image": np.zeros((8, 8, 8, 1), np.uint8), "label": np.arange(8, dtype=np.int32)}
    jax.eval_shape(task.loss_fn, params, batch, jax.random.key(1))
    assert seen == [((8,), 0.25, 10)]
    assert params["class_embedding"]["embedding"].shape == (11, 4 * c.model.ch)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model.num_classes": 5}, "config.model.num_classes=5 does not match dataset 'digits', which has 10 classes"),
        (
            {"model.num_classes": 11},
            "num_classes=11 does not match dataset 'digits', which has 10 classes; accepted: 0 (unconditional) or 10",
        ),
        ({"model.class_dropout": 1.0}, "config.model.class_dropout=1.0 is not accepted; accepted: a finite number in"),
        ({"sample.guidance": float("inf")}, "config.sample.guidance=inf is not accepted; accepted: a finite number >="),
        ({"sample.labels": (3, 10)}, "config.sample.labels=(3, 10) is not accepted; accepted: labels in [0, 10)"),
        ({"sample.labels": (-1,)}, "config.sample.labels=(-1,) is not accepted"),
        (
            {"model.num_classes": 0, "sample.guidance": 2.0},
            "config.sample.guidance=2.0 needs a class-conditional model",
        ),
    ],
)
def test_bad_conditioning_is_refused_before_any_write(data_dir, tmp_path, overrides, message):
    c = tiny_config(data_dir, **{"model.num_classes": 10, **overrides})
    with pytest.raises(ConfigError, match=re.escape(message)):
        train_ddpm.run(c, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
    "prediction, variance, samplers",
    [
        ("eps", "beta", diffusion.KARRAS_SAMPLERS),
        ("x0", "beta", ("karras_dpmpp_2m",)),
        ("v", "learned", ("karras_heun",)),
    ],
)
def test_the_karras_samplers_read_every_prediction_at_fractional_timesteps(data_dir, prediction, variance, samplers):
    """A DDPM network sampled on Karras sigmas (zoo.edm.ddpm_denoiser at fractional timesteps): eps, x0 and v
    predictions, a learned variance's second half dropped, images of the data's shape within [-1, 1] (up to rounding:
    the last Euler step, to sigma = 0, lands on the clipped D)."""
    c = tiny_config(data_dir, **SMALL_UNET, **{"diffusion.prediction": prediction, "diffusion.variance": variance})
    net = train_ddpm.make_network(c)
    params = net.init(jax.random.key(0), np.zeros((1, 8, 8, 1)), np.zeros((1,), np.int32))["params"]
    for name in samplers:
        images = np.asarray(train_ddpm.make_sampler(c, (8, 8, 1), 3, name)(params, jax.random.key(1)))
        assert images.shape == (3, 8, 8, 1) and np.all(np.abs(images) <= 1 + 1e-5), name  # the last step: x = D
