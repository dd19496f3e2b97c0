"""Frechet distance and k-NN precision/recall checked against scipy.linalg.sqrtm, closed forms and brute force.

The jax side runs in float32.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from zoo import metrics
from zoo.metrics import gaussian_stats, sqrtm_psd

# the zoo leaves jit to its callers: one compiled program per function, as before; the argument checks run while
# tracing, so the bad inputs below are refused the same way
frechet_distance = jax.jit(metrics.frechet_distance)
precision_recall = jax.jit(metrics.precision_recall, static_argnames=("k", "batch_size"))


def _spd(d, seed, jitter=0.1):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + jitter * np.eye(d)


def _frechet_scipy(mu1, c1, mu2, c2):
    """The common FID reference: ||mu1 - mu2||^2 + Tr(C1 + C2 - 2 sqrtm(C1 C2)), float64."""
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    return np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * covmean)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sqrtm_psd_matches_scipy(seed):
    c = _spd(5, seed)
    s = np.asarray(sqrtm_psd(c.astype(np.float32)), np.float64)
    np.testing.assert_allclose(s, scipy.linalg.sqrtm(c).real, atol=1e-5)  # float32 eigh
    np.testing.assert_allclose(s @ s, c, atol=1e-5)
    np.testing.assert_allclose(s, s.T, atol=1e-6)


def test_sqrtm_psd_singular_and_batched():
    v = np.random.default_rng(3).normal(size=(4, 2))
    c = v @ v.T  # rank 2, PSD
    s = np.asarray(sqrtm_psd(c.astype(np.float32)), np.float64)
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s @ s, c, atol=1e-4)
    batch = np.stack([_spd(3, 4), _spd(3, 5)]).astype(np.float32)
    sb = np.asarray(sqrtm_psd(batch))
    for i in range(2):
        np.testing.assert_allclose(sb[i], scipy.linalg.sqrtm(batch[i].astype(np.float64)).real, atol=1e-5)


def test_gaussian_stats_matches_numpy():
    f = np.random.default_rng(6).normal(size=(40, 4)).astype(np.float32)
    mu, cov = gaussian_stats(f)
    np.testing.assert_allclose(np.asarray(mu), f.astype(np.float64).mean(0), atol=1e-6)
    np.testing.assert_allclose(np.asarray(cov), np.cov(f.astype(np.float64), rowvar=False), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_matches_scipy_reference(seed):
    d = 6
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    c1, c2 = _spd(d, 10 + seed), _spd(d, 20 + seed)
    got = float(frechet_distance(*(jnp.asarray(a, jnp.float32) for a in (mu1, c1, mu2, c2))))
    np.testing.assert_allclose(got, _frechet_scipy(mu1, c1, mu2, c2), rtol=1e-4, atol=1e-4)  # float32


def test_frechet_special_cases():
    d = 5
    rng = np.random.default_rng(7)
    mu1, mu2 = rng.normal(size=d).astype(np.float32), rng.normal(size=d).astype(np.float32)
    c = _spd(d, 8).astype(np.float32)
    np.testing.assert_allclose(float(frechet_distance(mu1, c, mu1, c)), 0.0, atol=1e-4)  # identical stats
    np.testing.assert_allclose(
        float(frechet_distance(mu1, c, mu2, c)), np.sum((mu1.astype(np.float64) - mu2) ** 2), rtol=1e-4, atol=1e-4
    )  # equal covs
    # commuting covariances (both diagonal): Tr term = sum (sqrt(a) - sqrt(b))^2
    a, b = rng.uniform(0.5, 2.0, d), rng.uniform(0.5, 2.0, d)
    got = float(frechet_distance(mu1, np.diag(a).astype(np.float32), mu1, np.diag(b).astype(np.float32)))
    np.testing.assert_allclose(got, np.sum((np.sqrt(a) - np.sqrt(b)) ** 2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("m1,s1,m2,s2", [(0.0, 1.0, 0.0, 1.0), (1.0, 2.0, -0.5, 0.5), (3.0, 0.1, 3.0, 4.0)])
def test_frechet_1d_closed_form(m1, s1, m2, s2):
    got = float(frechet_distance(jnp.array([m1]), jnp.array([[s1**2]]), jnp.array([m2]), jnp.array([[s2**2]])))
    np.testing.assert_allclose(got, (m1 - m2) ** 2 + (s1 - s2) ** 2, rtol=1e-5, atol=1e-5)


def test_frechet_of_sample_stats_converges_to_truth():
    # Monte Carlo: stats of 20000 draws from N(0, I) and N(1, 4 I) in 2-D -> 2 * (1 + 1) = 4
    rng = np.random.default_rng(9)
    a = rng.normal(size=(20000, 2)).astype(np.float32)
    b = (1.0 + 2.0 * rng.normal(size=(20000, 2))).astype(np.float32)
    got = float(frechet_distance(*gaussian_stats(a), *gaussian_stats(b)))
    np.testing.assert_allclose(got, 4.0, atol=0.15)  # sd of the estimate is ~0.03


def _brute_precision_recall(real, fake, k):
    """Kynkaanniemi et al. 2019 with explicit loops, float64."""

    def radii(f):
        out = []
        for i in range(len(f)):
            d = sorted(np.linalg.norm(f[i] - f[j]) for j in range(len(f)) if j != i)
            out.append(d[k - 1])
        return np.array(out)

    def coverage(q, refs, r):
        return np.mean([any(np.linalg.norm(x - refs[j]) <= r[j] for j in range(len(refs))) for x in q])

    return coverage(fake, real, radii(real)), coverage(real, fake, radii(fake))


@pytest.mark.parametrize("k", [1, 3])
def test_precision_recall_brute_force(k):
    rng = np.random.default_rng(11)
    real = rng.normal(size=(15, 3))
    fake = 0.7 * rng.normal(size=(12, 3)) + 0.8  # partly overlapping
    want = _brute_precision_recall(real, fake, k)
    got = precision_recall(real.astype(np.float32), fake.astype(np.float32), k=k, batch_size=4)
    assert 0.0 < want[0] < 1.0 or 0.0 < want[1] < 1.0  # a non-trivial case
    np.testing.assert_allclose([float(g) for g in got], want, atol=1e-6)  # counts: exact


def test_precision_recall_identical_and_disjoint():
    rng = np.random.default_rng(12)
    real = rng.normal(size=(50, 4)).astype(np.float32)
    p, r = precision_recall(real, real.copy(), k=3)
    assert float(p) == 1.0 and float(r) == 1.0
    p, r = precision_recall(real, real + 100.0, k=3)
    assert float(p) == 0.0 and float(r) == 0.0
    # mode collapse: all fakes in a tiny cloud around one real point -> high precision, low recall
    fake = real[0] + 0.01 * rng.normal(size=(20, 4)).astype(np.float32)
    p, r = precision_recall(real, fake, k=3)
    bp, br = _brute_precision_recall(real.astype(np.float64), fake.astype(np.float64), 3)
    np.testing.assert_allclose([float(p), float(r)], [bp, br], atol=1e-6)
    assert float(p) > 0.9 and float(r) < 0.1


def test_bad_inputs_raise():
    x = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match=r"k must be in 1\.\.min\(N_real, N_fake\) - 1=4, got 5"):
        precision_recall(x, np.ones((6, 3)), k=5)
    with pytest.raises(ValueError, match="same feature size"):
        precision_recall(x, np.ones((5, 2)))
    with pytest.raises(ValueError, match="square matrix"):
        sqrtm_psd(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"cov2 must have shape \(3, 3\)"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="at least 2 rows"):
        gaussian_stats(np.ones((1, 3)))
