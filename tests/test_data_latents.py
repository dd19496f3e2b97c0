"""train.data.latents: a diffusion run in a trained VQ-VAE's latent space. The encoding through its cache, the
scale factor, the decoding, a smoke run end to end sampled with the autoencoder's workdir gone, and the
autoencoders it refuses."""

import os
import shutil

import jax
import numpy as np
import pytest

from tests.configs import smoke_config
from train import flow as train_flow, vqvae as train_vqvae
from train.core.errors import ConfigError
from train.data import images as data, latents

# The flow's U-Net on the 4x4 grid of the smoke VQ-VAE: one level, no attention.
LATENT_UNET = {"model.ch_mult": (1,), "model.attn_resolutions": ()}


@pytest.fixture(scope="module")
def autoencoder(data_dir, tmp_path_factory):
    """The workdir of a 4-step smoke VQ-VAE on the digits (4x4 grids of 2-d vectors)."""
    workdir = str(tmp_path_factory.mktemp("vqvae"))
    train_vqvae.run(smoke_config(train_vqvae, data_dir, **{"eval.num_samples": 0}), workdir)
    return workdir


def _config(data_dir, autoencoder, **overrides):
    return smoke_config(train_flow, data_dir, **{"latent.autoencoder": autoencoder, **LATENT_UNET, **overrides})


def test_latents_are_the_scaled_encoder_outputs_encoded_once_and_read_from_the_cache(
    data_dir, autoencoder, monkeypatch
):
    c, ds = _config(data_dir, autoencoder), data.load_images("digits", str(data_dir))
    space, splits = latents.latent_space(c, ds)
    trained = train_vqvae.load(autoencoder)
    images = data.as_arrays(ds.train)["image"]
    z, _ = train_vqvae.encoder_of(trained.config, trained.spec)(trained.params, images)
    np.testing.assert_allclose(splits["train"][0], np.asarray(z) * space.scale, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(splits["test"][1], data.as_arrays(ds.test)["label"])
    assert space.latent_shape == (4, 4, 2) and splits["train"][0].shape == (len(images), 4, 4, 2)
    assert len(os.listdir(os.path.join(autoencoder, "latents"))) == 1
    monkeypatch.setattr(latents.LatentSpace, "encode", lambda *a: pytest.fail("encoded again, not read back"))
    _, again = latents.latent_space(c, ds)
    np.testing.assert_array_equal(again["train"][0], splits["train"][0])


def test_the_scale_factor_gives_unit_variance_or_is_the_one_given(data_dir, autoencoder):
    ds = data.load_images("digits", str(data_dir))
    space, splits = latents.latent_space(_config(data_dir, autoencoder), ds)
    assert float(np.std(splits["train"][0])) == pytest.approx(1.0, rel=1e-4)
    given, given_splits = latents.latent_space(_config(data_dir, autoencoder, **{"latent.scale": 0.5}), ds)
    assert given.scale == 0.5
    np.testing.assert_allclose(given_splits["train"][0], splits["train"][0] / space.scale * 0.5, rtol=1e-5)


def test_decoding_scaled_latents_is_the_vqvaes_reconstruction(data_dir, autoencoder):
    ds = data.load_images("digits", str(data_dir))
    space, splits = latents.latent_space(_config(data_dir, autoencoder), ds)
    trained = train_vqvae.load(autoencoder)
    net = train_vqvae.make_net(trained.config, trained.spec)
    x = data.to_unit(data.as_arrays(ds.test)["image"][:16])
    out, _, _, _ = net.apply({"params": trained.params["vqvae"]}, x)
    np.testing.assert_array_equal(space.to_uint8(splits["test"][0][:16]), data.unit_to_uint8(out))


def test_a_latent_run_end_to_end_samples_images_with_the_autoencoders_workdir_gone(data_dir, autoencoder, tmp_path):
    moved = str(tmp_path / "vqvae")
    shutil.copytree(autoencoder, moved)
    workdir = str(tmp_path / "flow")
    figures = train_flow.run(_config(data_dir, moved, **{"eval.num_samples": 0}), workdir)  # grids decoded
    assert np.isfinite(figures["loss"])
    assert sorted(os.listdir(os.path.join(workdir, latents.COPY_DIR))) == [
        "config.json", "latent.json", "params.msgpack", "spec.json"
    ]  # fmt: skip
    shutil.rmtree(moved)
    model = train_flow.load(workdir)
    assert model.image_shape == (4, 4, 2)  # the denoiser's spec is the latents'
    drawn = model.sample(jax.random.key(0), 5)
    assert drawn.shape == (5, 8, 8, 1) and drawn.dtype == np.uint8
    again = train_flow.load(workdir).sample(jax.random.key(0), 5)
    np.testing.assert_array_equal(drawn, again)
    assert model.params["space"].encode(drawn).shape == (5, 4, 4, 2)


def test_an_autoencoder_of_other_images_or_no_vqvae_run_is_refused(data_dir, autoencoder, tmp_path):
    ds = data.load_images("digits", str(data_dir))
    with pytest.raises(ConfigError, match=r"config.latent.autoencoder='.*nothing': .* holds no trained run"):
        latents.latent_space(_config(data_dir, str(tmp_path / "nothing")), ds)
    resized = data.resized(ds, 16)
    with pytest.raises(ConfigError, match=r"was trained on \(8, 8, 1\) images, and this run's dataset gives \(16, 16"):
        latents.latent_space(_config(data_dir, autoencoder), resized)
