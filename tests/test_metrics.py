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


# ----------------------------------------------------------------------------- FID as pytorch-fid computes it

PYTORCH_FID_EPS = 1e-6  # calculate_frechet_distance's eps, pytorch-fid 0.3.0


def _pytorch_fid_frechet(mu1, sigma1, mu2, sigma2, eps=PYTORCH_FID_EPS):
    """pytorch-fid 0.3.0's calculate_frechet_distance (src/pytorch_fid/fid_score.py) written out: scipy's sqrtm of
    sigma1 sigma2; where that is not finite (a singular product), sqrtm((sigma1 + eps I)(sigma2 + eps I)); the real
    part, unless the diagonal's imaginary part exceeds 1e-3; ||mu1 - mu2||^2 + Tr sigma1 + Tr sigma2 - 2 Tr covmean."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def _random_stats(rng, d, n):
    """(mu, sigma) of n Gaussian draws with a random covariance, as pytorch-fid makes them: np.mean, np.cov."""
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    f = rng.normal(size=(n, d)) @ a + rng.normal(size=d)
    return f.mean(0), np.cov(f, rowvar=False)


@pytest.mark.parametrize("d,n", [(8, 200), (64, 500), (32, 20)])  # the last: rank 19 < 32, a singular product
def test_frechet_equals_pytorch_fid(d, n):
    rng = np.random.default_rng(d + n)
    mu1, s1 = _random_stats(rng, d, n)
    mu2, s2 = _random_stats(rng, d, n)
    want = _pytorch_fid_frechet(mu1, s1, mu2, s2)
    with jax.enable_x64(True):
        got = float(frechet_distance(mu1, s1, mu2, s2))
    # float64 on both sides: 1e-8 of the value where the product is regular; where it is singular pytorch-fid's
    # sqrtm of a rank-deficient product is only accurate to ~1e-6 of the trace
    np.testing.assert_allclose(got, want, rtol=1e-8 if n > d else 1e-5)
    got32 = float(jax.jit(metrics.frechet_distance)(*(np.float32(a) for a in (mu1, s1, mu2, s2))))
    np.testing.assert_allclose(got32, want, rtol=1e-3)  # float32, as the in-run figures run without x64


def test_frechet_equals_the_installed_pytorch_fid():
    """The same comparison against pytorch-fid's own function, where the package is installed: its source is read
    and the function run with numpy and scipy (the module itself imports torch, which this check does not need)."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec("pytorch_fid")
    if spec is None:
        pytest.skip("pytorch-fid is not installed (pip install pytorch-fid --no-deps)")
    source = open(spec.submodule_search_locations[0] + "/fid_score.py").read()
    node = next(n for n in ast.parse(source).body if getattr(n, "name", "") == "calculate_frechet_distance")
    scope = {"np": np, "linalg": scipy.linalg, "print": lambda *a: None}
    exec(compile(ast.Module([node], []), "fid_score.py", "exec"), scope)
    rng = np.random.default_rng(0)
    for d, n in ((8, 200), (64, 500), (32, 20)):
        stats = (*_random_stats(rng, d, n), *_random_stats(rng, d, n))
        theirs = scope["calculate_frechet_distance"](*stats)
        np.testing.assert_allclose(_pytorch_fid_frechet(*stats), theirs, rtol=1e-12)
        with jax.enable_x64(True):
            np.testing.assert_allclose(float(frechet_distance(*stats)), theirs, rtol=1e-8 if n > d else 1e-5)


# ----------------------------------------------------------------------------- Inception Score


def _inception_score_numpy(logits, splits):
    """Salimans et al.'s inception_score (improved-gan's inception_score.py) on softmax(logits), float64."""
    z = logits - logits.max(1, keepdims=True)
    preds = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    scores = []
    for i in range(splits):
        part = preds[(i * preds.shape[0] // splits) : ((i + 1) * preds.shape[0] // splits), :]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return np.mean(scores), np.std(scores)


inception_score = jax.jit(metrics.inception_score, static_argnames=("num_splits", "from_logits"))


def test_inception_score_of_uniform_predictions_is_one():
    for logits in (np.zeros((30, 1008), np.float32), np.full((7, 10), 3.5, np.float32)):
        mean, std = inception_score(logits, num_splits=min(10, len(logits)))
        np.testing.assert_allclose([float(mean), float(std)], [1.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("k", [1, 2, 10])
def test_inception_score_of_k_equiprobable_confident_classes_is_k(k):
    labels = np.arange(40 * k) % k  # each of 4 splits holds every class 10 times
    one_hot = np.eye(k, dtype=np.float32)[labels]
    mean, std = inception_score(one_hot, num_splits=4, from_logits=False)
    np.testing.assert_allclose([float(mean), float(std)], [k, 0.0], rtol=1e-6, atol=1e-6)
    mean, _ = inception_score(60.0 * one_hot, num_splits=4)  # logits: off-class probabilities e^-60
    np.testing.assert_allclose(float(mean), k, rtol=1e-5)


@pytest.mark.parametrize("n,splits", [(200, 10), (103, 7), (5, 5)])
def test_inception_score_matches_the_original_code(n, splits):
    logits = np.random.default_rng(n).normal(scale=3.0, size=(n, 12))
    want = _inception_score_numpy(logits, splits)
    got = inception_score(logits.astype(np.float32), num_splits=splits)
    np.testing.assert_allclose([float(g) for g in got], want, rtol=1e-5, atol=1e-6)  # float32
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    got = inception_score(probs.astype(np.float32), num_splits=splits, from_logits=False)
    np.testing.assert_allclose([float(g) for g in got], want, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- KID


def _kernel(a, b):
    return (np.dot(a, b) / len(a) + 1.0) ** 3


def _mmd2_loops(x, y):
    """The unbiased MMD^2 of Binkowski et al. with explicit loops, float64."""
    m, n = len(x), len(y)
    xx = sum(_kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(_kernel(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(_kernel(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


kernel_inception_distance = jax.jit(metrics.kernel_inception_distance, static_argnames=("num_subsets", "subset_size"))


def test_polynomial_mmd2_brute_force():
    rng = np.random.default_rng(20)
    x, y = rng.normal(size=(7, 5)), 0.5 + rng.normal(size=(9, 5))
    with jax.enable_x64(True):
        np.testing.assert_allclose(float(metrics.polynomial_mmd2(x, y)), _mmd2_loops(x, y), rtol=1e-12)
    np.testing.assert_allclose(
        float(metrics.polynomial_mmd2(np.float32(x), np.float32(y))), _mmd2_loops(x, y), rtol=1e-4
    )


def test_kid_is_the_mean_of_subset_mmds_brute_force():
    """The subsets as the docstring says they are drawn, each subset's MMD^2 by loops; mean and std (ddof 0)."""
    rng = np.random.default_rng(21)
    real, fake = rng.normal(size=(11, 4)), 0.3 + rng.normal(size=(9, 4))
    key = jax.random.key(5)
    mmds = []
    for s in range(6):
        k_real, k_fake = jax.random.split(jax.random.fold_in(key, s))
        i = np.asarray(jax.random.choice(k_real, 11, (6,), replace=False))
        j = np.asarray(jax.random.choice(k_fake, 9, (6,), replace=False))
        assert len(set(i.tolist())) == 6 and len(set(j.tolist())) == 6
        mmds.append(_mmd2_loops(real[i], fake[j]))
    with jax.enable_x64(True):
        got = kernel_inception_distance(real, fake, num_subsets=6, subset_size=6, key=key)
    np.testing.assert_allclose([float(g) for g in got], [np.mean(mmds), np.std(mmds)], rtol=1e-10)
    # a subset size above both sizes takes m = min(N_real, N_fake) rows (clean-fid's rule)
    with jax.enable_x64(True):
        whole = kernel_inception_distance(real[:9], fake, num_subsets=3, subset_size=1000, key=key)
    np.testing.assert_allclose([float(g) for g in whole], [_mmd2_loops(real[:9], fake), 0.0], rtol=1e-10, atol=1e-12)


def _population_mmd2(a, b):
    """MMD^2 of the uniform distributions on the rows of a and of b: E k(x, x') + E k(y, y') - 2 E k(x, y), every
    pair of independent draws (equal ones included)."""
    k = lambda u, v: (u @ v.T / u.shape[1] + 1.0) ** 3
    return k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean()


def test_kid_is_unbiased():
    """Means of KID over 4000 independent samples of m = 8 rows each from two finite populations: the unbiased
    estimate's mean is the population MMD^2 within 4 standard errors; the biased (V-statistic) one's is not."""
    rng = np.random.default_rng(22)
    pop_a, pop_b = rng.normal(size=(5, 3)), 0.4 + rng.normal(size=(5, 3))
    draws, m = 4000, 8
    xs, ys = pop_a[rng.integers(0, 5, (draws, m))], pop_b[rng.integers(0, 5, (draws, m))]
    keys = jax.random.split(jax.random.key(0), draws)
    one = lambda x, y, k: metrics.kernel_inception_distance(x, y, num_subsets=1, subset_size=m, key=k)[0]
    with jax.enable_x64(True):
        estimates = np.asarray(jax.jit(jax.vmap(one))(xs, ys, keys))
    k = lambda u, v: (u @ np.swapaxes(v, -1, -2) / 3 + 1.0) ** 3
    biased = k(xs, xs).mean((1, 2)) + k(ys, ys).mean((1, 2)) - 2 * k(xs, ys).mean((1, 2))
    truth, se = _population_mmd2(pop_a, pop_b), estimates.std() / np.sqrt(draws)
    assert abs(estimates.mean() - truth) < 4 * se, (estimates.mean(), truth, se)
    assert abs(biased.mean() - truth) > 10 * se, (biased.mean(), truth, se)  # the test tells the two apart
    # identical populations: MMD^2 = 0, the estimates scatter around it (some negative)
    same = np.asarray(jax.jit(jax.vmap(one))(np.float32(xs), np.float32(pop_a[rng.integers(0, 5, (draws, m))]), keys))
    assert abs(same.mean()) < 4 * same.std() / np.sqrt(draws) and (same < 0).any()


TOLERANCE_SAME = 0.01  # of KID of two 2000-row samples of N(0, I_16), 50 subsets of 500 rows


def test_kid_of_samples_of_one_distribution_is_near_zero():
    rng = np.random.default_rng(23)
    real, fake, shifted = rng.normal(size=(3, 2000, 16))
    mean, std = kernel_inception_distance(real, fake, num_subsets=50, subset_size=500, key=jax.random.key(1))
    far, _ = kernel_inception_distance(real, shifted + 0.5, num_subsets=50, subset_size=500, key=jax.random.key(1))
    assert abs(float(mean)) < TOLERANCE_SAME and float(far) > 20 * TOLERANCE_SAME, (float(mean), float(std), float(far))


def test_inception_score_and_kid_refuse_bad_arguments():
    with pytest.raises(ValueError, match="inception_score: num_splits must be at most the number of rows N=3, got 4"):
        metrics.inception_score(np.zeros((3, 5)), num_splits=4)
    with pytest.raises(ValueError, match="inception_score: num_splits must be >= 1, got 0"):
        metrics.inception_score(np.zeros((3, 5)), num_splits=0)
    with pytest.raises(ValueError, match=r"inception_score: logits_or_probs must have shape \[N, D\]"):
        metrics.inception_score(np.zeros(5))
    with pytest.raises(ValueError, match="kernel_inception_distance: real_feats and fake_feats must have the same"):
        metrics.kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 2)), key=jax.random.key(0))
    with pytest.raises(ValueError, match="kernel_inception_distance: subset_size must be >= 2, got 1"):
        metrics.kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 3)), subset_size=1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="need at least 2 rows each, got 1 and 5"):
        metrics.kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)), key=jax.random.key(0))
