"""KL divergence, max likelihood = min KL, Bayes' rule and naive Bayes / logistic regression, and frequentist vs
Bayesian inference of a parameter, checked against scipy (entropy, quad, densities, beta and binom), hand-computed
closed forms, brute force in probability space and on grids, Monte Carlo and sklearn (naive_bayes,
LogisticRegression). Computation in jax is float32; references are float64."""

import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import xlog1py, xlogy
from scipy import integrate, stats
from scipy.special import log_softmax as sp_log_softmax, logsumexp as sp_logsumexp
from sklearn import naive_bayes
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from zoo import probability as prob
from zoo.distributions import diag_normal_kl
from zoo.gmm import GMM, gmm_log_prob, gmm_responsibilities
from zoo.probability import (
    BINOMIAL_INTERVALS,
    GaussianNB,
    LogisticRegression,
    MultinomialNB,
    categorical_model_log_prob,
    gaussian_model_log_prob,
    gaussian_nb_to_gmm,
    grid_posterior,
    kl_monte_carlo,
    negative_log_likelihood,
)


def _jit(fn, *static):
    """fn under jax.jit (static: the names of its static arguments), called with every argument, defaults included,
    so that a default and a passed value share one compiled program."""
    signature, compiled = inspect.signature(fn), jax.jit(fn, static_argnames=static)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return compiled(*bound.args, **bound.kwargs)

    return call


# The zoo leaves jit to its caller. The math is checked as a caller runs it, one compiled program per function; the
# checks of concrete values, which step aside for tracers, through the eager functions (prob.*) in the validation
# tests. grid_posterior stays eager: its callables would be static, so each new likelihood would compile a program
# of its own, where eagerly the grid's operations are compiled once for all.
kl_categorical = _jit(prob.kl_categorical)
entropy_categorical = _jit(prob.entropy_categorical)
empirical_log_probs = _jit(prob.empirical_log_probs, "num_categories")
fit_by_max_likelihood = _jit(prob.fit_by_max_likelihood, "model_log_prob", "steps")
fit_by_min_kl = _jit(prob.fit_by_min_kl, "model_log_prob", "data_log_prob", "steps")
log_posterior = _jit(prob.log_posterior, "axis")
gaussian_nb_fit = _jit(prob.gaussian_nb_fit, "num_classes")
gaussian_nb_log_joint = _jit(prob.gaussian_nb_log_joint)
gaussian_nb_predict = _jit(prob.gaussian_nb_predict)
multinomial_nb_fit = _jit(prob.multinomial_nb_fit, "num_classes")
multinomial_nb_log_joint = _jit(prob.multinomial_nb_log_joint)
multinomial_nb_predict = _jit(prob.multinomial_nb_predict)
logistic_regression_log_probs = _jit(prob.logistic_regression_log_probs)
logistic_regression_loss = _jit(prob.logistic_regression_loss)
logistic_regression_fit = _jit(prob.logistic_regression_fit, "num_classes", "steps")
logistic_regression_predict = _jit(prob.logistic_regression_predict)
beta_binomial_posterior = _jit(prob.beta_binomial_posterior)
gaussian_mean_posterior = _jit(prob.gaussian_mean_posterior)
binomial_confidence_interval = _jit(prob.binomial_confidence_interval, "method")
gaussian_mean_confidence_interval = _jit(prob.gaussian_mean_confidence_interval)


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


# ============================================================================= 4. frequentist vs Bayesian inference


def _coin_log_likelihood(heads, n):
    """ln theta^heads (1 - theta)^(n - heads), 0 ln 0 = 0 at the grid's ends."""
    return lambda t: xlogy(heads, t) + xlog1py(n - heads, -t)


def _gauss_log_likelihood(x, sigma):
    """sum_i ln N(x_i | theta, sigma^2) up to a constant, for every theta of the grid."""
    return lambda t: -0.5 * jnp.sum(jnp.square(x[None, :] - t[:, None]), axis=1) / sigma**2


COIN_GRID = jnp.linspace(0.0, 1.0, 20001)  # spacing h = 5e-5
GAUSS_GRID = jnp.linspace(-4.0, 6.0, 20001)  # spacing h = 5e-4


def _grid_optimum_atol(grid, std, log_density_bound):
    """How far a grid argmax may sit from the optimum: the spacing, plus the float32-flat top of the log-density."""
    h = float(grid[1] - grid[0])
    return h + float(std) * np.sqrt(4 * np.finfo(np.float32).eps * log_density_bound)


def test_beta_binomial_posterior_matches_scipy_beta():
    cases = [(7, 20, 2.0, 3.0), (0, 5, 1.0, 1.0), (5, 5, 0.5, 0.5), (37, 100, 10.0, 10.0), (1, 1, 1.0, 1.0)]
    heads, n, a0, b0 = (np.array(c, np.float64) for c in zip(*cases))
    post = beta_binomial_posterior(heads, n, a0, b0, level=0.9)  # all five cases broadcast in one call
    a, b = a0 + heads, b0 + n - heads
    np.testing.assert_array_equal(post.alpha, a)
    np.testing.assert_array_equal(post.beta, b)
    np.testing.assert_allclose(post.mean, stats.beta.mean(a, b), rtol=1e-6)
    np.testing.assert_allclose(post.std, stats.beta.std(a, b), rtol=1e-5)
    lo, hi = stats.beta.interval(0.9, a, b)
    np.testing.assert_allclose(post.interval.lo, lo, rtol=1e-4, atol=1e-6)  # the bisection's float32 quantiles
    np.testing.assert_allclose(post.interval.hi, hi, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(post.mle, heads / n, rtol=1e-7)
    np.testing.assert_allclose(post.predictive, post.mean)
    # the mode against the argmax of scipy's density on a fine grid (monotone densities peak at an end)
    t = np.linspace(0, 1, 100001)
    for i in range(len(cases)):
        np.testing.assert_allclose(post.map[i], t[np.argmax(stats.beta.pdf(t, a[i], b[i]))], atol=2e-5)
    # a U-shaped Beta(0.5, 0.5) (prior, no data) and the flat Beta(1, 1) have no single mode
    assert np.isnan(beta_binomial_posterior(0, 0, 0.5, 0.5).map) and np.isnan(beta_binomial_posterior(0, 0).map)


def _assert_grid_matches(grid, conj, points, atol, density):
    """The grid posterior's summaries and density (against the closed-form ``density``) against conj's."""
    for field in ("mean", "std"):
        np.testing.assert_allclose(getattr(grid, field), getattr(conj, field), atol=atol)
    np.testing.assert_allclose(grid.interval, conj.interval, atol=atol)
    optimum_atol = _grid_optimum_atol(points, conj.std, 20.0)
    np.testing.assert_allclose(grid.map, conj.map, atol=optimum_atol)
    np.testing.assert_allclose(grid.mle, conj.mle, atol=optimum_atol)
    np.testing.assert_allclose(grid.density, density, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(float(jnp.sum(grid.mass)), 1.0, atol=1e-5)


def test_conjugate_posteriors_equal_the_grid_posterior():
    # Tolerance: the grid summaries are trapezoid sums of a smooth density, off by O(h^2) plus float32 rounding
    # (~1e-6 relative): 1e-5 for the coin (h = 5e-5), 1e-4 for the Gaussian (h = 5e-4). The grid MAP and MLE
    # are grid points: within the spacing h of the true optimum, widened by float32 rounding of the
    # log-density l, flat to eps |l| within std sqrt(4 eps |l|) of its peak. Densities to 1e-3 relative.
    heads, n, a0, b0 = 7, 20, 2.0, 3.0
    conj = beta_binomial_posterior(heads, n, a0, b0)
    grid = grid_posterior(_coin_log_likelihood(heads, n), _coin_log_likelihood(a0 - 1, a0 + b0 - 2), COIN_GRID)
    _assert_grid_matches(grid, conj, COIN_GRID, 1e-5, stats.beta.pdf(COIN_GRID, conj.alpha, conj.beta))
    # predictive P(heads next) = integral theta p(theta | data) d theta
    np.testing.assert_allclose(jnp.sum(grid.mass * COIN_GRID), conj.predictive, atol=1e-5)

    x = jnp.asarray(np.random.default_rng(0).normal(1.5, 2.0, 20), jnp.float32)
    sigma, m0, s0 = 2.0, -1.0, 1.5
    conj = gaussian_mean_posterior(x, sigma, m0, s0)
    grid = grid_posterior(_gauss_log_likelihood(x, sigma), lambda t: -0.5 * jnp.square((t - m0) / s0), GAUSS_GRID)
    _assert_grid_matches(grid, conj, GAUSS_GRID, 1e-4, stats.norm.pdf(GAUSS_GRID, conj.mean, conj.std))
    # predictive p(x_new | data) = integral N(x_new | theta, sigma^2) p(theta | data) d theta
    for x_new in (-3.0, 0.0, 1.0, 4.0):
        on_grid = jnp.sum(grid.mass * jnp.asarray(stats.norm.pdf(x_new, GAUSS_GRID, sigma), jnp.float32))
        closed = stats.norm.pdf(x_new, conj.predictive_mean, conj.predictive_std)
        np.testing.assert_allclose(on_grid, closed, rtol=1e-4)


def test_grid_posterior_of_a_non_conjugate_prior_matches_quadrature():
    # a bimodal prior (a mixture of two Betas) on a coin: no closed form; scipy's quad gives the reference
    heads, n = 6, 10
    prior = lambda t: 0.5 * stats.beta.pdf(t, 2, 8) + 0.5 * stats.beta.pdf(t, 8, 2)
    unnorm = lambda t: t**heads * (1 - t) ** (n - heads) * prior(t)
    z = integrate.quad(unnorm, 0, 1)[0]
    mean = integrate.quad(lambda t: t * unnorm(t), 0, 1)[0] / z
    tail = integrate.quad(unnorm, 0, 0.5)[0] / z
    log_prior = lambda t: jnp.log(
        0.5 * jnp.exp(xlogy(1, t) + xlog1py(7, -t)) + 0.5 * jnp.exp(xlogy(7, t) + xlog1py(1, -t))
    )
    post = grid_posterior(_coin_log_likelihood(heads, n), log_prior, COIN_GRID)
    np.testing.assert_allclose(post.mean, mean, atol=1e-5)
    np.testing.assert_allclose(jnp.sum(jnp.where(COIN_GRID <= 0.5, post.mass, 0.0)), tail, atol=1e-4)
    np.testing.assert_allclose(post.density, unnorm(np.asarray(COIN_GRID, np.float64)) / z, rtol=1e-3, atol=1e-4)


def test_map_with_a_flat_prior_equals_the_mle():
    heads, n = np.array([0.0, 3.0, 10.0, 37.0]), np.array([5.0, 10.0, 10.0, 100.0])
    flat = beta_binomial_posterior(heads, n)  # Beta(1, 1)
    np.testing.assert_array_equal(flat.map, flat.mle)
    np.testing.assert_allclose(flat.mle, heads / n, rtol=1e-6)
    assert np.all(np.abs(beta_binomial_posterior(heads, n, 5.0, 5.0).map - flat.mle) > 1e-3)  # a prior moves it

    x = jnp.asarray(np.random.default_rng(1).normal(3.0, 2.0, 50), jnp.float32)
    flat = gaussian_mean_posterior(x, 2.0, prior_mean=-10.0, prior_std=np.inf)
    np.testing.assert_allclose(flat.map, jnp.mean(x), rtol=1e-6)
    np.testing.assert_allclose(flat.std, 2.0 / np.sqrt(50), rtol=1e-6)
    assert abs(float(gaussian_mean_posterior(x, 2.0, prior_mean=-10.0).map - jnp.mean(x))) > 0.1

    post = grid_posterior(_coin_log_likelihood(3, 10), jnp.zeros_like, COIN_GRID)
    assert float(post.map) == float(post.mle)
    assert abs(float(post.map) - 0.3) <= _grid_optimum_atol(COIN_GRID, beta_binomial_posterior(3, 10).std, 10.0)
    assert float(grid_posterior(_coin_log_likelihood(3, 10), _coin_log_likelihood(4, 8), COIN_GRID).map) > 0.35


def test_posterior_concentrates_on_the_mle_like_one_over_sqrt_n():
    # A coin of rate 0.3 seen n times (heads = 0.3 n), under the flat prior and a strong wrong one, Beta(30, 5):
    # the posterior sd falls like 1/sqrt(n) (slope -1/2 in log-log, sd sqrt(n) -> sqrt(p(1-p))), and the
    # posterior mean reaches the MLE faster, like 1/n, so the posterior piles up on the MLE.
    n = 10.0 ** np.arange(1, 7)
    heads = 0.3 * n
    for a0, b0 in ((1.0, 1.0), (30.0, 5.0)):
        post = beta_binomial_posterior(heads, n, a0, b0)
        std = np.asarray(post.std, np.float64)
        slopes = np.diff(np.log(std)) / np.diff(np.log(n))
        np.testing.assert_allclose(slopes[-3:], -0.5, atol=0.01)  # n = 1e3 .. 1e6
        np.testing.assert_allclose(std[-1] * np.sqrt(n[-1]), np.sqrt(0.21), rtol=1e-3)
        gap = np.abs(np.asarray(post.mean, np.float64) - 0.3)
        assert np.all(gap <= (a0 + b0) / (n + a0 + b0) + 1e-6)  # exact: |mean - mle| = |a0 - 0.3 (a0 + b0)| / ...
        assert np.all(np.diff(gap / std) < 0) and gap[-1] / std[-1] < 0.05
    # Gaussian mean, sigma = 1.5, on growing prefixes of one sample from N(2, 1.5^2), prior N(0, 1)
    x = jnp.asarray(np.random.default_rng(2).normal(2.0, 1.5, 10**5), jnp.float32)
    sizes = [10, 100, 1000, 10000, 100000]
    posts = [gaussian_mean_posterior(x[:m], 1.5) for m in sizes]
    std = np.array([float(p.std) for p in posts])
    np.testing.assert_allclose(np.diff(np.log(std))[1:] / np.diff(np.log(sizes))[1:], -0.5, atol=0.01)
    np.testing.assert_allclose(std[-1] * np.sqrt(sizes[-1]), 1.5, rtol=1e-4)
    gap = np.array([abs(float(p.mean - p.mle)) for p in posts])
    assert np.all(np.diff(gap / std) < 0) and gap[-1] / std[-1] < 0.01


def test_confidence_intervals_cover_at_their_nominal_level_over_repeated_samples():
    # Monte Carlo: R repeated samples, the fraction of intervals that contain the true parameter; its standard
    # error is sqrt(level (1 - level) / R), 0.0015 at level 0.95 and R = 20000. Tolerance 4 standard errors.
    rng = np.random.default_rng(3)
    R = 20000
    x = jnp.asarray(rng.normal(1.0, 2.0, (R, 25)), jnp.float32)  # R samples of N = 25 from N(1, 2^2)
    for level in (0.95, 0.8):
        ci = gaussian_mean_confidence_interval(x, 2.0, level=level)
        covered = float(jnp.mean((ci.lo <= 1.0) & (1.0 <= ci.hi)))
        assert abs(covered - level) < 4 * np.sqrt(level * (1 - level) / R), (level, covered)
        # under a flat prior the Bayesian credible interval is this very interval
        flat = gaussian_mean_posterior(x[:3], 2.0, prior_std=np.inf, level=level).interval
        np.testing.assert_allclose(flat, gaussian_mean_confidence_interval(x[:3], 2.0, level=level), atol=1e-5)
        np.testing.assert_allclose(ci.hi - ci.lo, 2 * stats.norm.ppf(0.5 + level / 2) * 2.0 / 5, rtol=1e-5)

    # A coin's count is discrete, so a binomial interval's exact coverage sum_k Binom(k; n, p) [p in CI(k)]
    # oscillates with p around the nominal level: Wilson's stays within 0.02 of it at n = 100 for p in
    # [0.1, 0.9]. The Monte Carlo coverage must match the exact one (4 standard errors).
    def covers(heads, n, p, method):
        ci = binomial_confidence_interval(heads, n, method=method)
        return np.asarray((ci.lo <= p) & (p <= ci.hi))

    se = 4 * np.sqrt(0.95 * 0.05 / R)
    for n, p, method in ((100, 0.1, "wilson"), (100, 0.3, "wilson"), (100, 0.5, "wilson"), (100, 0.8, "wilson"),
                         (400, 0.3, "wald")):  # fmt: skip
        exact = float(np.sum(stats.binom.pmf(np.arange(n + 1), n, p) * covers(np.arange(n + 1.0), n, p, method)))
        mc = float(np.mean(covers(rng.binomial(n, p, R).astype(np.float32), n, p, method)))
        assert abs(mc - exact) < se, (n, p, method, mc, exact)
        assert abs(mc - 0.95) < 0.02 + se, (n, p, method, mc)
    # and the check bites: Wald's interval at n = 20, p = 0.05 covers the rate in only ~64% of samples
    mc = float(np.mean(covers(rng.binomial(20, 0.05, R).astype(np.float32), 20, 0.05, "wald")))
    assert mc < 0.7, mc


def test_binomial_intervals_match_their_definitions():
    n, z = 20, stats.norm.ppf(0.975)
    heads = np.arange(n + 1.0)
    p_hat = heads / n
    wald = binomial_confidence_interval(heads, n, method="wald")
    half = z * np.sqrt(p_hat * (1 - p_hat) / n)
    np.testing.assert_allclose(wald, (np.clip(p_hat - half, 0, 1), np.clip(p_hat + half, 0, 1)), atol=1e-6)
    # Wilson's interval is the set of rates p the score test does not reject: |p_hat - p| <= z sqrt(p (1 - p) / n)
    wilson = binomial_confidence_interval(heads, n)
    p = np.linspace(0, 1, 200001)
    for k in range(n + 1):
        kept = p[np.abs(p_hat[k] - p) <= z * np.sqrt(p * (1 - p) / n)]
        np.testing.assert_allclose([wilson.lo[k], wilson.hi[k]], [kept.min(), kept.max()], atol=1e-5)
    assert BINOMIAL_INTERVALS == ("wilson", "wald")


def test_parameter_inference_validation_and_jit():
    x = np.zeros(4, np.float32)
    flat = jnp.zeros_like
    cases = [
        (lambda: prob.beta_binomial_posterior(6, 5), "heads must be <= n"),
        (lambda: prob.beta_binomial_posterior(-1, 5), "heads must be a count >= 0"),
        (lambda: prob.beta_binomial_posterior(1, np.nan), "n must be a count"),
        (lambda: prob.beta_binomial_posterior(1, 5, alpha=0.0), "alpha must be > 0"),
        (lambda: prob.beta_binomial_posterior(1, 5, beta=np.inf), "beta must be > 0 and finite"),
        (lambda: prob.beta_binomial_posterior(1, 5, level=1.0), r"level must be a number in \(0, 1\)"),
        (lambda: prob.gaussian_mean_posterior(np.float32(1.0), 1.0), "sample axis"),
        (lambda: prob.gaussian_mean_posterior(x, 0.0), "sigma must be > 0"),
        (lambda: prob.gaussian_mean_posterior(x, 1.0, prior_std=-1.0), "prior_std must be > 0"),
        (lambda: prob.gaussian_mean_posterior(x, 1.0, prior_mean=np.inf), "prior_mean must be finite"),
        (lambda: prob.grid_posterior(None, flat, COIN_GRID), "log_likelihood must be a callable"),
        (lambda: prob.grid_posterior(flat, flat, COIN_GRID[::-1]), "strictly increasing"),
        (lambda: prob.grid_posterior(flat, flat, COIN_GRID[:1]), "at least 2 points"),
        (lambda: prob.grid_posterior(lambda t: t[:-1], flat, COIN_GRID), "one value per grid point"),
        (lambda: prob.grid_posterior(lambda t: 0 * jnp.log(t), flat, COIN_GRID), "nan or \\+inf"),
        (lambda: prob.grid_posterior(lambda t: jnp.full_like(t, -jnp.inf), flat, COIN_GRID), "zero on every grid"),
        (lambda: prob.grid_posterior(flat, flat, COIN_GRID, level=0), "level"),
        (lambda: prob.binomial_confidence_interval(1, 5, method="exact"), "accepted: \\('wilson', 'wald'\\)"),
        (lambda: prob.binomial_confidence_interval(0, 0), "n must be a count >= 1"),
        (lambda: prob.gaussian_mean_confidence_interval(np.zeros((3, 0)), 1.0), "at least one sample"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()
    # jit and vmap: the checks step aside for tracers; gradients flow through the closed forms
    heads = jnp.arange(6.0)
    whole = beta_binomial_posterior(heads, 5.0, 2.0, 2.0)
    vmapped = jax.jit(jax.vmap(lambda k: prob.beta_binomial_posterior(k, 5.0, 2.0, 2.0)))(heads)
    for e, v in zip(jax.tree.leaves(whole), jax.tree.leaves(vmapped)):
        np.testing.assert_allclose(v, e, rtol=1e-6)
    y = jnp.asarray(np.random.default_rng(4).normal(size=10), jnp.float32)
    d_mean = jax.grad(lambda m0: jax.jit(prob.gaussian_mean_posterior)(y, 1.0, m0, 1.0).mean)(0.0)
    np.testing.assert_allclose(d_mean, 1 / (1 + 10), rtol=1e-6)  # m_n = (m0 + sum x) / (1 + n) here
    jitted = jax.jit(lambda g: prob.grid_posterior(_coin_log_likelihood(3, 10), flat, g))(COIN_GRID)
    np.testing.assert_allclose(jitted.mean, 4 / 12, atol=1e-5)


# ============================================================================= validation


def test_invalid_inputs_raise_value_error():
    x, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    cases = [
        (lambda: prob.kl_categorical(np.float32(0.0), np.float32(0.0)), "at least one axis"),
        (lambda: kl_monte_carlo(None, lambda t: t, np.zeros(3)), "callables"),
        (lambda: kl_monte_carlo(lambda t: t[:, 0], lambda t: t[:, 0], np.zeros((0, 2))), "size >= 1"),
        (lambda: kl_monte_carlo(lambda t: t, lambda t: t[:, 0], np.zeros((3, 2))), "one log-density per sample"),
        (lambda: prob.empirical_log_probs(np.array([0, 5]), 3), "0..num_classes-1"),
        (
            lambda: prob.fit_by_max_likelihood(
                categorical_model_log_prob, {"logits": jnp.zeros(2)}, np.array([0, 1]), steps=0
            ),
            "steps",
        ),
        (
            lambda: prob.fit_by_min_kl(categorical_model_log_prob, {"logits": jnp.zeros(2)}, np.array([0, 1]), None),
            "data_log_prob",
        ),
        (lambda: prob.log_posterior(np.float32(1.0)), "at least one axis"),
        (lambda: prob.log_posterior(np.zeros((2, 3)), axis=2), "axis"),
        (lambda: prob.gaussian_nb_fit(x, np.array([0, 1, 0, 2]), 2), "0..num_classes-1"),
        (lambda: prob.gaussian_nb_fit(x, y[:3], 2), "y must be integer labels"),
        (lambda: prob.gaussian_nb_fit(x[0], y, 2), "x must have shape"),
        (lambda: prob.gaussian_nb_fit(x, y, 2, var_smoothing=-1.0), "var_smoothing"),
        (lambda: prob.gaussian_nb_fit(x, y, 0), "num_classes"),
        (lambda: prob.gaussian_nb_log_joint(gaussian_nb_fit(x, y, 2), np.zeros((3, 5))), r"\[N, 2\]"),
        (lambda: prob.gaussian_nb_log_joint(None, x), "GaussianNB"),
        (lambda: prob.multinomial_nb_fit(-x - 1, y, 2), "non-negative"),
        (lambda: prob.multinomial_nb_fit(x, y, 2, alpha=0.0), "alpha"),
        (lambda: prob.multinomial_nb_log_joint(None, x), "MultinomialNB"),
        (
            lambda: prob.logistic_regression_fit(x, y, 2, steps=10, learning_rate=-0.1, key=jax.random.key(0)),
            "learning_rate",
        ),
        (lambda: prob.logistic_regression_fit(x, y, 2, steps=10, key=None), "key"),
        (
            lambda: prob.logistic_regression_fit(x, y.astype(np.float32), 2, steps=10, key=jax.random.key(0)),
            "integer labels",
        ),
        (lambda: prob.logistic_regression_log_probs(gaussian_nb_fit(x, y, 2), x), "LogisticRegression"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


def test_fits_are_jittable():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 3, 40)
    x = rng.normal(size=(40, 4)).astype(np.float32) + y[:, None]
    eager = prob.gaussian_nb_fit(x, y, 3)
    jitted = jax.jit(prob.gaussian_nb_fit, static_argnums=2)(x, y, 3)
    np.testing.assert_allclose(np.asarray(jitted.variances), np.asarray(eager.variances), rtol=1e-6)
    counts = np.abs(x)
    eager = prob.multinomial_nb_fit(counts, y, 3)
    jitted = jax.jit(prob.multinomial_nb_fit, static_argnums=2)(counts, y, 3)
    np.testing.assert_allclose(np.asarray(jitted.feature_log_prob), np.asarray(eager.feature_log_prob), rtol=1e-6)
