"""zoo/vqvae.py against independent computations: brute-force nearest neighbours, the straight-through
gradient, the EMA update as a k-means step and written out, restarts, and the perplexity's closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from zoo import vqvae


def _data(n=50, k=7, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(k, d)).astype(np.float32)


def test_quantize_is_the_brute_force_nearest_code():
    z, codebook = _data()
    z = z.reshape(5, 10, 3)
    z_q, idx = vqvae.quantize(jnp.asarray(z), jnp.asarray(codebook))
    for i in np.ndindex(5, 10):
        dists = [np.sum((z[i] - e) ** 2) for e in codebook]
        assert idx[i] == int(np.argmin(dists))
        np.testing.assert_allclose(z_q[i], codebook[int(np.argmin(dists))])
    np.testing.assert_allclose(
        vqvae.squared_distances(z, codebook), ((z[..., None, :] - codebook) ** 2).sum(-1), rtol=1e-5, atol=1e-5
    )


def test_straight_through_passes_the_decoders_gradient_to_the_encoder_unchanged():
    z, codebook = map(jnp.asarray, _data())
    w = jax.random.normal(jax.random.key(0), z.shape)
    decoder = lambda v: jnp.sum(w * jnp.sin(v))
    z_q, _ = vqvae.quantize(z, codebook)
    forward = vqvae.straight_through(z, z_q)
    np.testing.assert_allclose(forward, z_q, atol=1e-6)
    grad_z = jax.grad(lambda z: decoder(vqvae.straight_through(z, vqvae.quantize(z, codebook)[0])))(z)
    np.testing.assert_allclose(grad_z, jax.grad(decoder)(z_q), atol=1e-6)  # the identity on the encoder side


def test_the_codebook_term_moves_codes_only_and_the_commitment_term_the_encoder_only():
    z, codebook = map(jnp.asarray, _data())
    z = z.reshape(5, 10, 3)

    def losses(z, codebook):
        z_q = jnp.take(codebook, vqvae.nearest_codes(z, codebook), axis=0)
        return vqvae.codebook_loss(z, z_q), vqvae.commitment_loss(z, z_q)

    book = jax.grad(lambda z, e: jnp.sum(losses(z, e)[0]), argnums=(0, 1))(z, codebook)
    commit = jax.grad(lambda z, e: jnp.sum(losses(z, e)[1]), argnums=(0, 1))(z, codebook)
    assert float(jnp.abs(book[0]).max()) == 0 and float(jnp.abs(book[1]).max()) > 0
    assert float(jnp.abs(commit[1]).max()) == 0 and float(jnp.abs(commit[0]).max()) > 0
    z_q = codebook[vqvae.nearest_codes(z, codebook)]
    np.testing.assert_allclose(losses(z, codebook)[0], ((z - z_q) ** 2).mean(axis=(1, 2)), rtol=1e-6)


def test_ema_update_at_decay_zero_is_a_k_means_step_on_the_fixed_assignment():
    z, codebook = _data(n=200, k=5)
    idx = np.asarray(vqvae.nearest_codes(z, codebook))
    stats, new = vqvae.ema_update(vqvae.init_stats(jnp.asarray(codebook)), jnp.asarray(z), jnp.asarray(idx), 0.0, 0.0)
    for k in range(5):
        members = z[idx == k]
        assert len(members) and stats.counts[k] == len(members)
        np.testing.assert_allclose(new[k], members.mean(axis=0), rtol=1e-5, atol=1e-6)


def test_ema_update_is_the_moving_averages_written_out():
    z, codebook = _data(n=40, k=6)
    idx = np.asarray(vqvae.nearest_codes(z, codebook))
    g, eps = 0.9, 1e-3
    stats = vqvae.CodebookStats(jnp.arange(1.0, 7.0), jnp.asarray(codebook) * 2)
    new_stats, new = vqvae.ema_update(stats, jnp.asarray(z), jnp.asarray(idx), g, eps)
    counts = np.array([g * (k + 1) + (1 - g) * np.sum(idx == k) for k in range(6)])
    sums = np.stack([g * 2 * codebook[k] + (1 - g) * z[idx == k].sum(axis=0) for k in range(6)])
    smoothed = (counts + eps) / (counts.sum() + 6 * eps) * counts.sum()
    np.testing.assert_allclose(new_stats.counts, counts, rtol=1e-5)
    np.testing.assert_allclose(new, sums / smoothed[:, None], rtol=1e-5, atol=1e-6)


def test_restarts_move_dead_codes_onto_batch_vectors_and_leave_the_living():
    z, codebook = _data(n=30, k=6)
    stats = vqvae.CodebookStats(jnp.array([5.0, 0.01, 2.0, 0.0, 0.5, 3.0]), jnp.asarray(codebook))
    new, new_stats = vqvae.restart_dead_codes(jax.random.key(0), jnp.asarray(codebook), stats, jnp.asarray(z), 1.0)
    for k in range(6):
        if k in (1, 3, 4):
            assert any(np.allclose(new[k], row) for row in z) and new_stats.counts[k] == 1.0
            np.testing.assert_allclose(new_stats.sums[k], new[k])
        else:
            np.testing.assert_array_equal(new[k], codebook[k])


def test_perplexity_is_k_for_equal_use_one_for_a_single_code_and_exp_entropy_between():
    assert float(vqvae.perplexity(jnp.full((16,), 3.0))) == pytest.approx(16.0, rel=1e-5)
    assert float(vqvae.perplexity(jnp.array([0.0, 9.0, 0.0]))) == pytest.approx(1.0)
    counts = np.array([1.0, 5.0, 0.0, 2.0, 8.0])
    assert float(vqvae.perplexity(jnp.asarray(counts))) == pytest.approx(np.exp(scipy.stats.entropy(counts)), rel=1e-5)
    np.testing.assert_array_equal(vqvae.code_histogram(jnp.array([[0, 2], [2, 2]]), 4), [1, 0, 3, 0])


def test_the_network_maps_images_to_a_grid_of_codes_and_back():
    net = vqvae.VQVAE(image_channels=1, num_codes=16, code_dim=4, channels=8, num_levels=2)
    x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
    (out, z, z_q, idx), params = jax.jit(net.init_with_output)(jax.random.key(1), x)
    assert out.shape == x.shape and z.shape == z_q.shape == (2, 7, 7, 4) and idx.shape == (2, 7, 7)
    assert vqvae.latent_shape((28, 28, 1), 2, 4) == (7, 7, 4)
    np.testing.assert_allclose(z_q, params["params"]["codebook"][idx])
    decoded = net.apply(params, idx, method="decode_codes")
    np.testing.assert_allclose(decoded, out, atol=1e-5)
    with pytest.raises(ValueError, match="4 must divide"):
        net.init(jax.random.key(0), jnp.zeros((1, 6, 6, 1)))
