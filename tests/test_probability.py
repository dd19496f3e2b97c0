"""KL divergence, max likelihood = min KL, Bayes' rule and naive Bayes / logistic regression, checked against
scipy (entropy, quad, densities), hand-computed closed forms, brute force in probability space, Monte Carlo and
sklearn (naive_bayes, LogisticRegression). Computation in jax is float32; references are float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import log_softmax as sp_log_softmax, logsumexp as sp_logsumexp
from sklearn import naive_bayes
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from zoo.distributions import diag_normal_kl
from zoo.gmm import GMM, gmm_log_prob, gmm_responsibilities
from zoo.probability import (
    GaussianNB,
    LogisticRegression,
    MultinomialNB,
    categorical_model_log_prob,
    empirical_log_probs,
    entropy_categorical,
    fit_by_max_likelihood,
    fit_by_min_kl,
    gaussian_model_log_prob,
    gaussian_nb_fit,
    gaussian_nb_log_joint,
    gaussian_nb_predict,
    gaussian_nb_to_gmm,
    kl_categorical,
    kl_monte_carlo,
    log_posterior,
    logistic_regression_fit,
    logistic_regression_log_probs,
    logistic_regression_loss,
    logistic_regression_predict,
    multinomial_nb_fit,
    multinomial_nb_log_joint,
    multinomial_nb_predict,
    negative_log_likelihood,
)


def _dirichlet(rng, n, k):
    return rng.dirichlet(np.ones(k), size=n)


def _gauss_pairs(rng, n, d):
    return (
        rng.normal(size=(n, d)),
        rng.uniform(-1.5, 1.5, (n, d)),
        rng.normal(size=(n, d)),
        rng.uniform(-1.5, 1.5, (n, d)),
    )


def _f32(*arrays):
    return [jnp.asarray(a, jnp.float32) for a in arrays]


@pytest.fixture(scope="module", autouse=True)
def _single_threaded_blas():
    """BLAS threads fighting jax's for 2 shared cores make sklearn's lbfgs ~50x slower."""
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    return x_tr.astype(np.float32), x_te.astype(np.float32), y_tr, y_te


# ============================================================================= 1. KL divergence


def test_kl_categorical_matches_scipy_entropy():
    rng = np.random.default_rng(0)
    q, p = _dirichlet(rng, 50, 6), _dirichlet(rng, 50, 6)
    kl = np.asarray(kl_categorical(*_f32(np.log(q), np.log(p))))
    assert kl.shape == (50,)
    np.testing.assert_allclose(kl, stats.entropy(q, p, axis=1), rtol=1e-4, atol=1e-6)  # float32
    # 0 ln 0 = 0 where q_k = 0; KL = inf where q_k > 0 but p_k = 0 (scipy's conventions too)
    q0, p_pos, p0 = np.array([0.5, 0.5, 0.0]), np.array([0.2, 0.3, 0.5]), np.array([0.0, 0.5, 0.5])
    with np.errstate(divide="ignore"):
        got = float(kl_categorical(*_f32(np.log(q0), np.log(p_pos))))
        assert got == pytest.approx(stats.entropy(q0, p_pos), rel=1e-5)
        assert np.isinf(float(kl_categorical(*_f32(np.log(q0), np.log(p0)))))
        assert np.isinf(stats.entropy(q0, p0))
        # the zero-q term yields no nan gradient
        g = jax.grad(lambda lp: kl_categorical(jnp.log(jnp.asarray(q0, jnp.float32)), lp))(
            jnp.log(jnp.asarray(p_pos, jnp.float32))
        )
    np.testing.assert_allclose(np.asarray(g), -q0, atol=1e-6)  # d/d ln p_k of -sum q ln p = -q_k
    # entropy: H(p) = KL-free reference from scipy
    np.testing.assert_allclose(
        np.asarray(entropy_categorical(jnp.log(jnp.asarray(q, jnp.float32)))), stats.entropy(q, axis=1), rtol=1e-5
    )


def test_kl_is_nonnegative_on_many_random_pairs():
    rng = np.random.default_rng(2)
    q, p = _dirichlet(rng, 2000, 5), _dirichlet(rng, 2000, 5)
    kl_c = np.asarray(kl_categorical(*_f32(np.log(q), np.log(p))))
    kl_g = np.asarray(diag_normal_kl(*_f32(*_gauss_pairs(rng, 2000, 4))))
    assert kl_c.min() >= 0.0 and kl_g.min() >= 0.0
    assert np.isfinite(kl_c).all() and np.isfinite(kl_g).all()


def test_kl_is_zero_only_for_equal_distributions():
    rng = np.random.default_rng(3)
    q = _dirichlet(rng, 20, 5)
    lq = jnp.log(jnp.asarray(q, jnp.float32))
    np.testing.assert_allclose(np.asarray(kl_categorical(lq, lq)), 0.0, atol=1e-6)
    mu, lv = rng.normal(size=(20, 3)), rng.uniform(-1, 1, (20, 3))
    np.testing.assert_allclose(np.asarray(diag_normal_kl(*_f32(mu, lv, mu, lv))), 0.0, atol=1e-6)
    # any perturbation, in any direction, makes it strictly positive; for small eps the value is the
    # second-order (Fisher) term: 1/2 eps^2 / v for a mean shift, 1/4 eps^2 for a log-variance shift
    eps = 0.05
    for j in range(3):
        shift = np.zeros(3)
        shift[j] = eps
        kl_mu = np.asarray(diag_normal_kl(*_f32(mu + shift, lv, mu, lv)))
        kl_lv = np.asarray(diag_normal_kl(*_f32(mu, lv + shift, mu, lv)))
        assert (kl_mu > 0).all() and (kl_lv > 0).all()
        np.testing.assert_allclose(kl_mu, 0.5 * eps**2 / np.exp(lv[:, j]), rtol=1e-3)  # exact for a mean shift
        np.testing.assert_allclose(kl_lv, 0.25 * eps**2, rtol=0.05)  # O(eps^3) remainder
    for _ in range(10):
        p = sp_log_softmax(np.log(q) + eps * rng.normal(size=q.shape), axis=1)
        kl = np.asarray(kl_categorical(lq, jnp.asarray(p, jnp.float32)))
        assert (kl > 0).all()
        np.testing.assert_allclose(kl, stats.entropy(q, np.exp(p), axis=1), rtol=2e-2, atol=1e-6)


def test_kl_is_not_symmetric():
    # N(0, 1) vs N(1, 4) by hand: KL(q||p) = 1/2 (ln 4 + 2/4 - 1), KL(p||q) = 1/2 (ln 1/4 + 5 - 1)
    args = _f32([0.0], [0.0], [1.0], [np.log(4.0)])
    qp, pq = float(diag_normal_kl(*args)), float(diag_normal_kl(args[2], args[3], args[0], args[1]))
    assert qp == pytest.approx(0.5 * (np.log(4) - 0.5), rel=1e-6)  # 0.4431
    assert pq == pytest.approx(0.5 * (4 - np.log(4)), rel=1e-6)  # 1.3069
    # categorical [.5, .5] vs [.9, .1]: 0.5108 vs 0.3681
    q, p = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    qp, pq = float(kl_categorical(*_f32(np.log(q), np.log(p)))), float(kl_categorical(*_f32(np.log(p), np.log(q))))
    assert qp == pytest.approx(0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1), rel=1e-6)
    assert pq == pytest.approx(stats.entropy(p, q), rel=1e-6)
    assert abs(qp - pq) > 0.1


def test_kl_monte_carlo_converges_to_closed_form():
    rng = np.random.default_rng(4)
    mu_q, lv_q, mu_p, lv_p = (a[0] for a in _gauss_pairs(rng, 1, 3))
    s = 20000
    x = (mu_q + np.exp(0.5 * lv_q) * rng.normal(size=(s, 3))).astype(np.float32)
    q_params = {"mean": jnp.asarray(mu_q, jnp.float32), "log_var": jnp.asarray(lv_q, jnp.float32)}
    p_params = {"mean": jnp.asarray(mu_p, jnp.float32), "log_var": jnp.asarray(lv_p, jnp.float32)}
    mc = float(
        kl_monte_carlo(
            lambda t: gaussian_model_log_prob(q_params, t), lambda t: gaussian_model_log_prob(p_params, t), x
        )
    )
    # the per-sample terms and their standard error from scipy densities (float64)
    terms = stats.multivariate_normal(mu_q, np.diag(np.exp(lv_q))).logpdf(x) - stats.multivariate_normal(
        mu_p, np.diag(np.exp(lv_p))
    ).logpdf(x)
    assert mc == pytest.approx(terms.mean(), rel=1e-4)
    closed = float(diag_normal_kl(*_f32(mu_q, lv_q, mu_p, lv_p)))
    assert abs(mc - closed) < 4 * terms.std(ddof=1) / np.sqrt(s)  # 4 standard errors
    # categorical: samples from q, exact closed form from scipy
    q, p = np.array([0.1, 0.4, 0.2, 0.3]), np.array([0.25, 0.25, 0.4, 0.1])
    xs = rng.choice(4, size=s, p=q)
    lq, lp = jnp.log(jnp.asarray(q, jnp.float32)), jnp.log(jnp.asarray(p, jnp.float32))
    mc = float(kl_monte_carlo(lambda t: lq[t], lambda t: lp[t], xs))
    terms = np.log(q[xs] / p[xs])
    assert abs(mc - stats.entropy(q, p)) < 4 * terms.std(ddof=1) / np.sqrt(s)


# ============================================================================= 2. max likelihood = min KL


def test_categorical_max_likelihood_equals_min_kl():
    rng = np.random.default_rng(5)
    x = rng.choice(5, size=300, p=[0.1, 0.2, 0.3, 0.15, 0.25])
    freq = np.bincount(x, minlength=5) / len(x)  # closed-form MLE
    log_freq = empirical_log_probs(x, 5)
    np.testing.assert_allclose(np.exp(np.asarray(log_freq)), freq, rtol=1e-6)
    data_log_prob = lambda t: log_freq[t]  # noqa: E731
    h_data = stats.entropy(freq)
    # at any theta: KL(P_data || P_theta) (exact for an empirical P_data) = NLL(theta) - H(P_data)
    for _ in range(3):
        params = {"logits": jnp.asarray(rng.normal(size=5), jnp.float32)}
        nll = float(negative_log_likelihood(categorical_model_log_prob, params, x))
        kl_est = float(kl_monte_carlo(data_log_prob, lambda t: categorical_model_log_prob(params, t), x))
        kl_ref = stats.entropy(freq, np.exp(sp_log_softmax(np.asarray(params["logits"], np.float64))))
        assert kl_est == pytest.approx(kl_ref, rel=1e-4, abs=1e-6)
        assert nll - kl_est == pytest.approx(h_data, abs=1e-5)
    init = {"logits": jnp.zeros(5, jnp.float32)}
    ml, nll_hist = fit_by_max_likelihood(categorical_model_log_prob, init, x, steps=300, learning_rate=0.1)
    mk, kl_hist = fit_by_min_kl(categorical_model_log_prob, init, x, data_log_prob, steps=300, learning_rate=0.1)
    np.testing.assert_allclose(np.asarray(nll_hist - kl_hist), h_data, atol=1e-5)  # constant gap along the path
    p_ml, p_mk = np.asarray(jax.nn.softmax(ml["logits"])), np.asarray(jax.nn.softmax(mk["logits"]))
    np.testing.assert_allclose(p_ml, p_mk, atol=1e-6)
    np.testing.assert_allclose(p_ml, freq, atol=1e-4)
    assert -1e-6 <= float(kl_hist[-1]) < 1e-5 < float(kl_hist[0])  # 0 up to float32 rounding at the optimum


def test_gaussian_max_likelihood_equals_min_kl_with_gmm_data():
    """P_data is a diagonal 2-component GMM (zoo.gmm, a latent-variable model) with a known density.

    The model is one Gaussian.
    """
    g = GMM(
        weights=jnp.array([0.3, 0.7]),
        means=jnp.array([[-2.0, 1.0], [1.5, 3.0]]),
        covs=jnp.array([[0.5, 1.0], [1.0, 0.3]]),
        covariance_type="diag",
    )
    rng = np.random.default_rng(12)
    z = rng.choice(2, size=200, p=np.asarray(g.weights))  # ancestral sampling in numpy
    xs = np.asarray(g.means, np.float64)[z] + np.sqrt(np.asarray(g.covs, np.float64))[z] * rng.normal(size=(200, 2))
    x = xs.astype(np.float32)
    mean, var = xs.mean(0), xs.var(0)  # closed-form MLE: sample mean and biased (1/N) variance
    data_log_prob = lambda t: gmm_log_prob(g, t)  # noqa: E731
    # NLL - KL_MC = -(1/N) sum ln P_data(x_n), a constant (the MC entropy of P_data), here from scipy densities
    h_mc = -np.mean(
        np.log(
            sum(
                float(g.weights[k])
                * stats.multivariate_normal(
                    np.asarray(g.means[k], np.float64), np.diag(np.asarray(g.covs[k], np.float64))
                ).pdf(xs)
                for k in range(2)
            )
        )
    )
    init = {"mean": jnp.zeros(2, jnp.float32), "log_var": jnp.zeros(2, jnp.float32)}
    ml, nll_hist = fit_by_max_likelihood(gaussian_model_log_prob, init, x, steps=500, learning_rate=0.1)
    mk, kl_hist = fit_by_min_kl(gaussian_model_log_prob, init, x, data_log_prob, steps=500, learning_rate=0.1)
    np.testing.assert_allclose(np.asarray(nll_hist - kl_hist), h_mc, rtol=1e-5)
    for fit in (ml, mk):
        np.testing.assert_allclose(np.asarray(fit["mean"]), mean, atol=1e-4)
        np.testing.assert_allclose(np.exp(np.asarray(fit["log_var"])), var, rtol=1e-4)  # not the 1/(N-1) one: 5e-3 off
    np.testing.assert_allclose(np.asarray(ml["log_var"]), np.asarray(mk["log_var"]), atol=1e-5)
    assert float(kl_hist[-1]) < float(kl_hist[0])


# ============================================================================= 3. Bayes' rule


def test_log_posterior_equals_bayes_rule_by_brute_force():
    rng = np.random.default_rng(6)
    joint = rng.uniform(0.01, 1.0, size=(3, 4))
    joint /= joint.sum()  # P(X = i, Y = j)
    post = np.empty_like(joint)
    for i in range(3):
        p_x = sum(joint[i, j] for j in range(4))  # P(X = i)
        for j in range(4):
            post[i, j] = joint[i, j] / p_x
    got = np.asarray(log_posterior(jnp.asarray(np.log(joint), jnp.float32)))
    np.testing.assert_allclose(np.exp(got).sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.exp(got), post, rtol=1e-5)
    # the other axis gives P(X | Y); an unnormalised joint (any factor depending on x only) gives the same P(Y | X)
    np.testing.assert_allclose(
        np.exp(np.asarray(log_posterior(jnp.log(jnp.asarray(joint, jnp.float32)), axis=0))),
        joint / joint.sum(0),
        rtol=1e-5,
    )
    scaled = np.log(joint) + rng.normal(size=(3, 1)) * 50
    np.testing.assert_allclose(np.asarray(log_posterior(jnp.asarray(scaled, jnp.float32))), np.log(post), atol=1e-4)


def test_gaussian_nb_is_a_gmm_with_the_label_hidden():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 150)
    x = (rng.normal(size=(150, 2)) + 3 * y[:, None]).astype(np.float32)
    params = gaussian_nb_fit(x, y, 3)
    joint = gaussian_nb_log_joint(params, x)
    g = gaussian_nb_to_gmm(params)
    np.testing.assert_allclose(
        np.exp(np.asarray(log_posterior(joint))), np.asarray(gmm_responsibilities(g, x)), atol=1e-5
    )
    np.testing.assert_allclose(
        sp_logsumexp(np.asarray(joint, np.float64), axis=1), np.asarray(gmm_log_prob(g, x)), rtol=1e-5
    )  # P(X) = sum_y P(X, y)


# ============================================================================= generative: naive Bayes vs sklearn


def _assert_log_posteriors_close(ours_joint, sk, x, atol):
    lp = np.asarray(log_posterior(ours_joint))
    np.testing.assert_allclose(np.exp(lp), sk.predict_proba(x), atol=atol)
    big = sk.predict_log_proba(x) > -20  # compare log values where they carry information
    np.testing.assert_allclose(lp[big], sk.predict_log_proba(x)[big], atol=10 * atol)


@pytest.mark.parametrize("var_smoothing", [1e-9, 0.5])
def test_gaussian_nb_matches_sklearn_on_random_data(var_smoothing):
    rng = np.random.default_rng(8)
    y = rng.integers(0, 3, 200)
    x = (rng.normal(size=(200, 5)) * rng.uniform(0.5, 3.0, 5) + y[:, None]).astype(np.float32)
    sk = naive_bayes.GaussianNB(var_smoothing=var_smoothing).fit(x.astype(np.float64), y)
    params = gaussian_nb_fit(x, y, 3, var_smoothing=var_smoothing)
    assert isinstance(params, GaussianNB)
    np.testing.assert_allclose(np.exp(np.asarray(params.log_prior)), sk.class_prior_, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(params.means), sk.theta_, rtol=1e-5, atol=1e-5)
    # epsilon = var_smoothing * max_d Var(x_d): at var_smoothing = 0.5 a wrong epsilon would move var_ by O(1)
    np.testing.assert_allclose(np.asarray(params.variances), sk.var_, rtol=1e-5)
    joint = gaussian_nb_log_joint(params, x)
    np.testing.assert_allclose(
        np.asarray(joint), sk.predict_joint_log_proba(x.astype(np.float64)), rtol=1e-5, atol=1e-4
    )
    _assert_log_posteriors_close(joint, sk, x.astype(np.float64), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(gaussian_nb_predict(params, x)), sk.predict(x))


def test_gaussian_nb_matches_sklearn_on_digits(digits):
    x_tr, x_te, y_tr, _ = digits
    # default 1e-9: within-class constant pixels get variance ~4e-8, so log joints reach -1e10 and only the
    # argmax and the log joint to float32 relative precision are comparable
    sk = naive_bayes.GaussianNB().fit(x_tr.astype(np.float64), y_tr)
    params = gaussian_nb_fit(x_tr, y_tr, 10)
    np.testing.assert_allclose(np.asarray(params.variances), sk.var_, rtol=1e-4)
    np.testing.assert_allclose(
        np.asarray(gaussian_nb_log_joint(params, x_te)),
        sk.predict_joint_log_proba(x_te.astype(np.float64)),
        rtol=1e-5,
        atol=1e-3,
    )  # float32 sums of ~1e3 terms
    np.testing.assert_array_equal(np.asarray(gaussian_nb_predict(params, x_te)), sk.predict(x_te))
    sk = naive_bayes.GaussianNB(var_smoothing=1e-2).fit(x_tr.astype(np.float64), y_tr)
    params = gaussian_nb_fit(x_tr, y_tr, 10, var_smoothing=1e-2)
    _assert_log_posteriors_close(gaussian_nb_log_joint(params, x_te), sk, x_te.astype(np.float64), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(gaussian_nb_predict(params, x_te)), sk.predict(x_te))


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_multinomial_nb_matches_sklearn_on_random_counts(alpha):
    rng = np.random.default_rng(9)
    y = rng.integers(0, 3, 120)
    rates = rng.uniform(0.2, 3.0, size=(3, 8))
    counts = rng.poisson(rates[y]).astype(np.float32)
    sk = naive_bayes.MultinomialNB(alpha=alpha).fit(counts, y)
    params = multinomial_nb_fit(counts, y, 3, alpha=alpha)
    assert isinstance(params, MultinomialNB)
    np.testing.assert_allclose(np.asarray(params.log_prior), sk.class_log_prior_, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(params.feature_log_prob), sk.feature_log_prob_, rtol=1e-5)
    joint = multinomial_nb_log_joint(params, counts)
    np.testing.assert_allclose(np.asarray(joint), sk.predict_joint_log_proba(counts), rtol=1e-5)
    _assert_log_posteriors_close(joint, sk, counts, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(multinomial_nb_predict(params, counts)), sk.predict(counts))


def test_multinomial_nb_matches_sklearn_on_digits_and_handles_an_empty_class(digits):
    x_tr, x_te, y_tr, _ = digits  # pixel intensities 0..16 as counts over 64 "words"
    sk = naive_bayes.MultinomialNB(alpha=1.0).fit(x_tr, y_tr)
    params = multinomial_nb_fit(x_tr, y_tr, 10, alpha=1.0)
    np.testing.assert_allclose(np.asarray(params.feature_log_prob), sk.feature_log_prob_, rtol=1e-5)
    joint = multinomial_nb_log_joint(params, x_te)  # magnitudes ~1e3, so float32 posteriors carry ~1e-3 error
    np.testing.assert_allclose(np.asarray(joint), sk.predict_joint_log_proba(x_te), rtol=1e-5)
    _assert_log_posteriors_close(joint, sk, x_te, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(multinomial_nb_predict(params, x_te)), sk.predict(x_te))
    # num_classes = 11 with label 10 never seen: P(y=10) = 0 and the other classes are unchanged
    params = multinomial_nb_fit(x_tr, y_tr, 11, alpha=1.0)
    lp = np.asarray(log_posterior(multinomial_nb_log_joint(params, x_te)))
    assert np.isneginf(lp[:, 10]).all()
    np.testing.assert_allclose(np.exp(lp[:, :10]), sk.predict_proba(x_te), atol=1e-3)


# ============================================================================= discriminative: logistic regression


def test_logistic_regression_log_probs_and_loss_gradient_by_hand():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(30, 4)), rng.integers(0, 3, 30)
    w, b, l2 = rng.normal(size=(4, 3)), rng.normal(size=3), 0.3
    params = LogisticRegression(weights=jnp.asarray(w, jnp.float32), bias=jnp.asarray(b, jnp.float32))
    logits = x @ w + b
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # manual softmax, float64
    np.testing.assert_allclose(
        np.exp(np.asarray(logistic_regression_log_probs(params, x))), probs, rtol=1e-5, atol=1e-6
    )
    onehot = np.eye(3)[y]
    loss = -np.mean(np.log(probs[np.arange(30), y])) + 0.5 * l2 * np.sum(w**2)
    assert float(logistic_regression_loss(params, x, y, l2)) == pytest.approx(loss, rel=1e-5)
    grads = jax.grad(logistic_regression_loss)(params, jnp.asarray(x, jnp.float32), jnp.asarray(y), l2)
    np.testing.assert_allclose(np.asarray(grads.weights), x.T @ (probs - onehot) / 30 + l2 * w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(np.asarray(grads.bias), (probs - onehot).mean(0), rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def fitted_lr(digits):
    x_tr, _, y_tr, _ = digits
    l2 = 1.0 / len(y_tr)  # sklearn's C = 1: C sum CE + 1/2 ||W||^2, divided by C N
    params = logistic_regression_fit(x_tr / 16, y_tr, 10, steps=500, learning_rate=0.05, l2=l2, key=jax.random.key(0))
    sk = SkLogisticRegression(C=1.0, max_iter=5000, tol=1e-8).fit(x_tr / 16, y_tr)  # the optimum, to ~1e-8
    return params, sk, l2


def test_logistic_regression_matches_sklearn_on_digits(digits, fitted_lr):
    x_tr, _, y_tr, _ = digits
    params, sk, l2 = fitted_lr
    acc = float(np.mean(np.asarray(logistic_regression_predict(params, x_tr / 16)) == y_tr))
    assert abs(acc - sk.score(x_tr / 16, y_tr)) < 0.01
    # same convex objective: sklearn's optimum is a lower bound our Adam fit must get close to
    sk_params = LogisticRegression(
        weights=jnp.asarray(sk.coef_.T, jnp.float32), bias=jnp.asarray(sk.intercept_, jnp.float32)
    )
    ours, best = (float(logistic_regression_loss(p, x_tr / 16, y_tr, l2)) for p in (params, sk_params))
    assert best - 1e-4 <= ours <= best + 5e-3


def test_generative_vs_discriminative_on_digits(digits, fitted_lr):
    """Illustrative: both families classify held-out digits well (loose bounds)."""
    x_tr, x_te, y_tr, y_te = digits
    acc = {
        "gaussian_nb": np.mean(np.asarray(gaussian_nb_predict(gaussian_nb_fit(x_tr, y_tr, 10), x_te)) == y_te),
        "multinomial_nb": np.mean(np.asarray(multinomial_nb_predict(multinomial_nb_fit(x_tr, y_tr, 10), x_te)) == y_te),
        "logistic_regression": np.mean(np.asarray(logistic_regression_predict(fitted_lr[0], x_te / 16)) == y_te),
    }
    assert all(a > 0.8 for a in acc.values()), acc
    assert acc["logistic_regression"] > 0.9, acc


# ============================================================================= validation


def test_invalid_inputs_raise_value_error():
    x, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    cases = [
        (lambda: kl_categorical(np.float32(0.0), np.float32(0.0)), "at least one axis"),
        (lambda: kl_monte_carlo(None, lambda t: t, np.zeros(3)), "callables"),
        (lambda: kl_monte_carlo(lambda t: t[:, 0], lambda t: t[:, 0], np.zeros((0, 2))), "size >= 1"),
        (lambda: kl_monte_carlo(lambda t: t, lambda t: t[:, 0], np.zeros((3, 2))), "one log-density per sample"),
        (lambda: empirical_log_probs(np.array([0, 5]), 3), "0..num_classes-1"),
        (
            lambda: fit_by_max_likelihood(
                categorical_model_log_prob, {"logits": jnp.zeros(2)}, np.array([0, 1]), steps=0
            ),
            "steps",
        ),
        (
            lambda: fit_by_min_kl(categorical_model_log_prob, {"logits": jnp.zeros(2)}, np.array([0, 1]), None),
            "data_log_prob",
        ),
        (lambda: log_posterior(np.float32(1.0)), "at least one axis"),
        (lambda: log_posterior(np.zeros((2, 3)), axis=2), "axis"),
        (lambda: gaussian_nb_fit(x, np.array([0, 1, 0, 2]), 2), "0..num_classes-1"),
        (lambda: gaussian_nb_fit(x, y[:3], 2), "y must be integer labels"),
        (lambda: gaussian_nb_fit(x[0], y, 2), "x must have shape"),
        (lambda: gaussian_nb_fit(x, y, 2, var_smoothing=-1.0), "var_smoothing"),
        (lambda: gaussian_nb_fit(x, y, 0), "num_classes"),
        (lambda: gaussian_nb_log_joint(gaussian_nb_fit(x, y, 2), np.zeros((3, 5))), r"\[N, 2\]"),
        (lambda: gaussian_nb_log_joint(None, x), "GaussianNB"),
        (lambda: multinomial_nb_fit(-x - 1, y, 2), "non-negative"),
        (lambda: multinomial_nb_fit(x, y, 2, alpha=0.0), "alpha"),
        (lambda: multinomial_nb_log_joint(None, x), "MultinomialNB"),
        (
            lambda: logistic_regression_fit(x, y, 2, steps=10, learning_rate=-0.1, key=jax.random.key(0)),
            "learning_rate",
        ),
        (lambda: logistic_regression_fit(x, y, 2, steps=10, key=None), "key"),
        (
            lambda: logistic_regression_fit(x, y.astype(np.float32), 2, steps=10, key=jax.random.key(0)),
            "integer labels",
        ),
        (lambda: logistic_regression_log_probs(gaussian_nb_fit(x, y, 2), x), "LogisticRegression"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


def test_fits_are_jittable():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 3, 40)
    x = rng.normal(size=(40, 4)).astype(np.float32) + y[:, None]
    eager = gaussian_nb_fit(x, y, 3)
    jitted = jax.jit(gaussian_nb_fit, static_argnums=2)(x, y, 3)
    np.testing.assert_allclose(np.asarray(jitted.variances), np.asarray(eager.variances), rtol=1e-6)
    counts = np.abs(x)
    eager = multinomial_nb_fit(counts, y, 3)
    jitted = jax.jit(multinomial_nb_fit, static_argnums=2)(counts, y, 3)
    np.testing.assert_allclose(np.asarray(jitted.feature_log_prob), np.asarray(eager.feature_log_prob), rtol=1e-6)
