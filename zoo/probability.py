"""Probability for generative models: KL divergence, max likelihood = min KL, Bayes' rule, generative vs discriminative.

Follows the lecture's generative-model part, top-down:

1. KL divergence  KL(q || p) = int q(x) ln q(x)/p(x) dx, with its three properties:
   the formula; not symmetric, KL(q || p) != KL(p || q) in general; range [0, inf),
   and KL(q || p) = 0 only when q = p. Closed forms for categoricals here and for
   diagonal Gaussians in ``zoo.distributions`` (``diag_normal_kl``), and the Monte Carlo
   estimate (1/S) sum_s [ln q(x_s) - ln p(x_s)], x_s ~ q.
2. Maximum likelihood = minimum KL(P_data || P_theta):
   KL(P_data || P_theta) = E_{P_data}[ln P_data] - E_{P_data}[ln P_theta] = -H(P_data) + NLL(theta),
   so the two objectives differ by the constant entropy H(P_data), have the same
   gradient in theta, and the same optimum. ``fit_by_max_likelihood`` and
   ``fit_by_min_kl`` run the same optax loop on the two objectives.
3. Bayes' rule P(Y | X) = P(X, Y) / P(X), P(X) = sum_y P(X, y), in log space.
   Generative classifiers model P(X, Y) = P(Y) P(X | Y) and classify by Bayes' rule:
   Gaussian naive Bayes (fitted in closed form by counts, means and variances) and
   multinomial naive Bayes (bag-of-words counts, add-alpha smoothing). The
   discriminative classifier models P(Y | X) directly: multinomial logistic regression
   trained with optax.
4. Frequentist vs Bayesian inference of a parameter theta. The frequentist holds theta
   fixed and estimates it from the sample: the MLE with a confidence interval that covers
   theta in ``level`` of repeated samples (``binomial_confidence_interval``, Wald or Wilson,
   for a coin; ``gaussian_mean_confidence_interval``, the z-interval, for a Gaussian mean).
   The Bayesian holds theta random, puts a prior on it and applies Bayes' rule,
   p(theta | data) = p(data | theta) p(theta) / integral p(data | theta') p(theta') dtheta':
   ``grid_posterior`` normalises any 1-D log-likelihood plus log-prior on a grid, and the
   conjugate pairs have closed forms, ``beta_binomial_posterior`` (Beta prior, coin tosses)
   and ``gaussian_mean_posterior`` (Gaussian prior, Gaussian data of known variance), each
   with posterior mean, MAP, the MLE beside them, a credible interval and the predictive.

Latent-variable models: hide the label Y of Gaussian naive Bayes and its marginal
P(X) = sum_y P(y) N(X | mu_y, diag var_y) is a diagonal Gaussian mixture; that model
lives in ``zoo.gmm`` (``gaussian_nb_to_gmm`` converts); both take their Gaussian
densities from ``zoo.distributions``.

Each function holds its formula itself and none is jitted inside: as in optax, ``jax.jit`` is the caller's,
with the arguments a docstring names static. The argument checks run while tracing; those of values step
aside for tracers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.scipy.special import betainc, logsumexp, ndtri

from zoo._checks import as_int
from zoo.distributions import diag_normal_log_prob
from zoo.gmm import GMM

__all__ = [
    "kl_categorical",
    "entropy_categorical",
    "kl_monte_carlo",
    "empirical_log_probs",
    "categorical_model_log_prob",
    "gaussian_model_log_prob",
    "negative_log_likelihood",
    "fit_by_max_likelihood",
    "fit_by_min_kl",
    "log_posterior",
    "GaussianNB",
    "MultinomialNB",
    "gaussian_nb_fit",
    "gaussian_nb_log_joint",
    "gaussian_nb_predict",
    "gaussian_nb_to_gmm",
    "multinomial_nb_fit",
    "multinomial_nb_log_joint",
    "multinomial_nb_predict",
    "LogisticRegression",
    "logistic_regression_log_probs",
    "logistic_regression_loss",
    "logistic_regression_fit",
    "logistic_regression_predict",
    "BINOMIAL_INTERVALS",
    "Interval",
    "BetaPosterior",
    "GaussianMeanPosterior",
    "GridPosterior",
    "beta_binomial_posterior",
    "gaussian_mean_posterior",
    "grid_posterior",
    "binomial_confidence_interval",
    "gaussian_mean_confidence_interval",
]


# ----------------------------------------------------------------------------- validation


def _is_concrete(a) -> bool:
    return not isinstance(a, jax.core.Tracer)


def _float(a) -> jax.Array:
    a = jnp.asarray(a)
    return a if jnp.issubdtype(a.dtype, jnp.floating) else a.astype(jnp.float32)


def _check_nonneg(value, name: str, fn: str, strict: bool = False) -> None:
    if not _is_concrete(value):
        return
    v = np.asarray(value)  # numpy: a concrete jax array compared under an outer trace would give a tracer
    if not (v > 0 if strict else v >= 0):
        raise ValueError(f"{fn}: {name} must be {'> 0' if strict else '>= 0'}, got {value}")


def _broadcast(fn: str, **arrays) -> tuple[int, ...]:
    shapes = {k: jnp.shape(v) for k, v in arrays.items()}
    try:
        shape = jnp.broadcast_shapes(*shapes.values())
    except ValueError:
        shape = None
    if shape is None or len(shape) < 1:
        desc = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValueError(
            f"{fn}: inputs must be broadcast-compatible arrays with at least one axis "
            f"(the event axis is the last), got {desc}"
        )
    return shape


def _check_labels(y, n: int, num_classes: int, fn: str) -> jax.Array:
    y = jnp.asarray(y)
    if y.shape != (n,) or not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"{fn}: y must be integer labels of shape [N={n}], got dtype {y.dtype} shape {y.shape}")
    if _is_concrete(y) and n > 0:
        lo, hi = int(np.min(np.asarray(y))), int(np.max(np.asarray(y)))
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{fn}: labels y must lie in 0..num_classes-1={num_classes - 1}, got range [{lo}, {hi}]")
    return y


def _check_matrix(x, name: str, fn: str, d: int | None = None) -> jax.Array:
    x = _float(x)
    if x.ndim != 2 or (d is not None and x.shape[1] != d):
        want = f"[N, {d}]" if d is not None else "[N, D]"
        raise ValueError(f"{fn}: {name} must have shape {want}, got {x.shape}")
    return x


def _check_labelled(x, name: str, y, num_classes, fn: str, min_classes: int = 1) -> tuple[jax.Array, jax.Array, int]:
    """A classifier's training data: x a float matrix [N >= 1, D], y [N] integer labels in 0..K-1; (x, y, K)."""
    x = _check_matrix(x, name, fn)
    k = as_int(num_classes, "num_classes", fn, minimum=min_classes)
    y = _check_labels(y, x.shape[0], k, fn)
    if x.shape[0] < 1:
        raise ValueError(f"{fn}: {name} must have at least one row, got shape {x.shape}")
    return x, y, k


# ----------------------------------------------------------------------------- 1. KL divergence


def kl_categorical(log_q, log_p) -> jax.Array:
    """KL(q || p) = sum_k q_k (ln q_k - ln p_k) over the last axis, from normalised log-probabilities.

    0 ln 0 = 0; from logits, take log_softmax first.
    """
    _broadcast("kl_categorical", log_q=log_q, log_p=log_p)
    log_q, log_p = _float(log_q), _float(log_p)
    q = jnp.exp(log_q)
    support = q > 0
    # double where: terms with q_k = 0 contribute 0 and no nan gradient, even where ln p_k = -inf
    diff = jnp.where(support, log_q, 0.0) - jnp.where(support, log_p, 0.0)
    return jnp.sum(jnp.where(support, q * diff, 0.0), axis=-1)


def entropy_categorical(log_p) -> jax.Array:
    """H(p) = -sum_k p_k ln p_k over the last axis, from normalised log-probabilities (0 ln 0 = 0)."""
    _broadcast("entropy_categorical", log_p=log_p)
    log_p = _float(log_p)
    p = jnp.exp(log_p)
    return -jnp.sum(jnp.where(p > 0, p * jnp.where(p > 0, log_p, 0.0), 0.0), axis=-1)


def kl_monte_carlo(log_q_fn: Callable, log_p_fn: Callable, samples) -> jax.Array:
    """KL(q || p) ~= (1/S) sum_s [ln q(x_s) - ln p(x_s)], x_s ~ q; samples [S, ...], each fn maps them to [S]."""
    fn = "kl_monte_carlo"
    if not callable(log_q_fn) or not callable(log_p_fn):
        raise ValueError(
            f"{fn}: log_q_fn and log_p_fn must be callables, got "
            f"{type(log_q_fn).__name__} and {type(log_p_fn).__name__}"
        )
    samples = jnp.asarray(samples)
    if samples.ndim < 1 or samples.shape[0] < 1:
        raise ValueError(f"{fn}: samples must have a leading sample axis of size >= 1, got shape {samples.shape}")
    lq, lp = jnp.asarray(log_q_fn(samples)), jnp.asarray(log_p_fn(samples))
    s = samples.shape[0]
    if lq.shape != (s,) or lp.shape != (s,):
        raise ValueError(
            f"{fn}: log_q_fn and log_p_fn must return one log-density per sample, shape ({s},); "
            f"got {lq.shape} and {lp.shape}"
        )
    return jnp.mean(lq - lp)


# ----------------------------------------------------------------------------- 2. maximum likelihood = minimum KL


def empirical_log_probs(samples, num_categories: int) -> jax.Array:
    """ln P_data(k) = ln(#{n : x_n = k} / N) for k in 0..K-1 (-inf for unseen symbols); samples [N] ints -> [K].

    Under jit, num_categories is static.
    """
    fn = "empirical_log_probs"
    k = as_int(num_categories, "num_categories", fn, minimum=1)
    samples = jnp.asarray(samples)
    if samples.ndim != 1 or samples.shape[0] < 1 or not jnp.issubdtype(samples.dtype, jnp.integer):
        raise ValueError(
            f"{fn}: samples must be a non-empty 1-d integer array, got dtype {samples.dtype} shape {samples.shape}"
        )
    _check_labels(samples, samples.shape[0], k, fn)
    counts = jnp.zeros((k,), jnp.float32).at[samples].add(1.0)
    return jnp.log(counts) - jnp.log(float(samples.shape[0]))


def categorical_model_log_prob(params, x) -> jax.Array:
    """ln P_theta(x) = log_softmax(params['logits'])[x]; x [N] ints -> [N]."""
    return jax.nn.log_softmax(params["logits"])[x]


def gaussian_model_log_prob(params, x) -> jax.Array:
    """ln N(x | mean, diag exp(log_var)) = -1/2 sum_d [ln 2pi v_d + (x_d - mean_d)^2 / v_d]; x [N, D] -> [N]."""
    return diag_normal_log_prob(x, params["mean"], params["log_var"])


def negative_log_likelihood(model_log_prob: Callable, params, samples) -> jax.Array:
    """NLL(theta) = -(1/N) sum_n ln P_theta(x_n) = -E_{x ~ P_data}[ln P_theta(x)].

    P_data is the empirical distribution of ``samples``.
    """
    return -jnp.mean(model_log_prob(params, samples))


def _check_fit_args(fn, model_log_prob, samples, steps, learning_rate):
    if not callable(model_log_prob):
        raise ValueError(
            f"{fn}: model_log_prob must be a callable (params, x) -> [N], got {type(model_log_prob).__name__}"
        )
    samples = jnp.asarray(samples)
    if samples.ndim < 1 or samples.shape[0] < 1:
        raise ValueError(f"{fn}: samples must have a leading sample axis of size >= 1, got shape {samples.shape}")
    steps = as_int(steps, "steps", fn, minimum=1)
    _check_nonneg(learning_rate, "learning_rate", fn, strict=True)
    return samples, steps


def fit_by_max_likelihood(
    model_log_prob: Callable, init_params, samples, *, steps: int = 500, learning_rate: float = 0.1
) -> tuple[object, jax.Array]:
    """theta* = argmax_theta (1/N) sum_n ln P_theta(x_n) by optax Adam.

    Returns (params, history of the NLL before each step). Under jit, model_log_prob and steps are static.
    """
    samples, steps = _check_fit_args("fit_by_max_likelihood", model_log_prob, samples, steps, learning_rate)
    zeros = jnp.zeros((samples.shape[0],), jnp.float32)
    return _adam_fit(model_log_prob, init_params, samples, zeros, learning_rate, steps=steps)


def fit_by_min_kl(
    model_log_prob: Callable,
    init_params,
    samples,
    data_log_prob: Callable,
    *,
    steps: int = 500,
    learning_rate: float = 0.1,
) -> tuple[object, jax.Array]:
    """theta* = argmin_theta KL(P_data || P_theta) by optax Adam.

    KL(P_data || P_theta) ~= (1/N) sum_n [ln P_data(x_n) - ln P_theta(x_n)], x_n ~ P_data.

    Returns (params, history of the KL estimate before each step). With P_data the
    empirical distribution of ``samples`` on a finite alphabet the estimate is the
    exact KL; with a known density it is the Monte Carlo estimate ``kl_monte_carlo``. Under jit,
    model_log_prob and steps are static.
    """
    fn = "fit_by_min_kl"
    samples, steps = _check_fit_args(fn, model_log_prob, samples, steps, learning_rate)
    if not callable(data_log_prob):
        raise ValueError(f"{fn}: data_log_prob must be a callable x -> [N], got {type(data_log_prob).__name__}")
    # ln P_data(x_n) does not depend on theta: evaluate it once; it shifts the objective by the constant -H(P_data)
    data_log_probs = jnp.asarray(data_log_prob(samples))
    if data_log_probs.shape != (samples.shape[0],):
        raise ValueError(
            f"{fn}: data_log_prob must return one log-density per sample, shape ({samples.shape[0]},), "
            f"got {data_log_probs.shape}"
        )
    return _adam_fit(model_log_prob, init_params, samples, data_log_probs, learning_rate, steps=steps)


def _adam_fit(model_log_prob, init_params, samples, data_log_probs, learning_rate, *, steps):
    """Adam on (1/N) sum_n [data_log_probs_n - ln P_theta(x_n)].

    The objective is the NLL when data_log_probs = 0, the KL estimate when data_log_probs_n = ln P_data(x_n).
    """

    def objective(params):
        return jnp.mean(data_log_probs - model_log_prob(params, samples))

    opt = optax.adam(learning_rate)

    def step(carry, _):
        params, state = carry
        loss, grads = jax.value_and_grad(objective)(params)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), loss

    (params, _), history = jax.lax.scan(step, (init_params, opt.init(init_params)), None, length=steps)
    return params, history


# ----------------------------------------------------------------------------- 3. Bayes' rule


def log_posterior(log_joint, axis: int = -1) -> jax.Array:
    """Bayes' rule in log space: ln P(y | x) = ln P(x, y) - logsumexp_y' ln P(x, y'), normalised over ``axis``.

    Under jit, axis is static.
    """
    log_joint = _float(log_joint)
    if log_joint.ndim < 1:
        raise ValueError(
            f"log_posterior: log_joint must have at least one axis (the class axis), got shape {log_joint.shape}"
        )
    if not -log_joint.ndim <= axis < log_joint.ndim:
        raise ValueError(f"log_posterior: axis must be in [-{log_joint.ndim}, {log_joint.ndim - 1}], got {axis}")
    return log_joint - logsumexp(log_joint, axis=axis, keepdims=True)


# ----------------------------------------------------------------------------- generative: naive Bayes


@struct.dataclass
class GaussianNB:
    """Gaussian naive Bayes P(y) prod_d N(x_d | means_yd, variances_yd).

    Fields: log_prior [K], means [K, D], variances [K, D].
    """

    log_prior: jax.Array
    means: jax.Array
    variances: jax.Array


@struct.dataclass
class MultinomialNB:
    """Multinomial naive Bayes P(y) prod_v theta_yv^{x_v}: log_prior [K], feature_log_prob ln theta [K, V]."""

    log_prior: jax.Array
    feature_log_prob: jax.Array


def _class_counts(y, num_classes, dtype):
    onehot = jax.nn.one_hot(y, num_classes, dtype=dtype)  # [N, K]
    counts = jnp.sum(onehot, axis=0)
    return onehot, counts, jnp.log(counts) - jnp.log(jnp.sum(counts))


def _num_features(params, cls, fn: str) -> int:
    """D, the features per example of params, a fitted cls (GaussianNB, MultinomialNB or LogisticRegression)."""
    if not isinstance(params, cls):
        raise ValueError(f"{fn}: params must be a {cls.__name__}, got {type(params).__name__}")
    if cls is LogisticRegression:
        return jnp.shape(params.weights)[0]  # [D, K]
    return jnp.shape(params.means if cls is GaussianNB else params.feature_log_prob)[1]  # [K, D]


def gaussian_nb_fit(x, y, num_classes: int, var_smoothing: float = 1e-9) -> GaussianNB:
    """Closed-form MLE: P(y=k) = N_k/N, mu_k = mean of x in class k, var_k = biased class variance + epsilon.

    The smoothing epsilon follows sklearn.naive_bayes.GaussianNB: var_smoothing
    times the largest per-feature variance of all of x. A class with no examples
    gets ln P(y=k) = -inf (mean 0, variance 1 as placeholders). Under jit, num_classes is static.
    """
    fn = "gaussian_nb_fit"
    x, y, k = _check_labelled(x, "x", y, num_classes, fn)
    _check_nonneg(var_smoothing, "var_smoothing", fn)
    onehot, counts, log_prior = _class_counts(y, k, x.dtype)
    safe = jnp.maximum(counts, 1.0)[:, None]
    means = onehot.T @ x / safe
    variances = onehot.T @ jnp.square(x - means[y]) / safe  # two-pass per-class variance
    epsilon = jnp.asarray(var_smoothing, x.dtype) * jnp.max(jnp.var(x, axis=0))
    present = (counts > 0)[:, None]
    return GaussianNB(log_prior=log_prior, means=means, variances=jnp.where(present, variances + epsilon, 1.0))


def gaussian_nb_log_joint(params: GaussianNB, x) -> jax.Array:
    """ln P(x, y=k) = ln P(y=k) + sum_d ln N(x_d | mu_kd, var_kd); x [N, D] -> [N, K]."""
    fn = "gaussian_nb_log_joint"
    x = _check_matrix(x, "x", fn, _num_features(params, GaussianNB, fn))
    comp = diag_normal_log_prob(x[:, None, :], params.means, jnp.log(params.variances))  # [N, K]
    return params.log_prior + comp


def gaussian_nb_predict(params: GaussianNB, x) -> jax.Array:
    """y_hat = argmax_k ln P(x, y=k) = argmax_k P(y=k | x); x [N, D] -> [N] ints."""
    fn = "gaussian_nb_predict"
    x = _check_matrix(x, "x", fn, _num_features(params, GaussianNB, fn))
    return jnp.argmax(gaussian_nb_log_joint(params, x), axis=-1)


def gaussian_nb_to_gmm(params: GaussianNB) -> GMM:
    """Hide the label: P(x) = sum_k P(y=k) N(x | mu_k, diag var_k) is a diagonal GMM (zoo.gmm) with weights P(y)."""
    _num_features(params, GaussianNB, "gaussian_nb_to_gmm")
    return GMM(weights=jnp.exp(params.log_prior), means=params.means, covs=params.variances, covariance_type="diag")


def multinomial_nb_fit(counts, y, num_classes: int, alpha: float = 1.0) -> MultinomialNB:
    """Add-alpha MLE: P(y=k) = N_k/N, theta_kv = (sum_{n in k} x_nv + alpha) / (sum_{n in k} sum_v' x_nv' + alpha V).

    Under jit, num_classes is static.
    """
    fn = "multinomial_nb_fit"
    counts, y, k = _check_labelled(counts, "counts", y, num_classes, fn)
    if _is_concrete(counts) and counts.size and float(np.min(np.asarray(counts))) < 0:
        raise ValueError(
            f"{fn}: counts must be non-negative (bag-of-words counts), got min {float(np.min(np.asarray(counts)))}"
        )
    _check_nonneg(alpha, "alpha", fn, strict=True)
    onehot, _, log_prior = _class_counts(y, k, counts.dtype)
    feature_counts = onehot.T @ counts + jnp.asarray(alpha, counts.dtype)  # [K, V]
    feature_log_prob = jnp.log(feature_counts) - jnp.log(jnp.sum(feature_counts, axis=1, keepdims=True))
    return MultinomialNB(log_prior=log_prior, feature_log_prob=feature_log_prob)


def multinomial_nb_log_joint(params: MultinomialNB, counts) -> jax.Array:
    """ln P(x, y=k) = ln P(y=k) + sum_v x_v ln theta_kv for counts [N, V]; returns [N, K].

    The multinomial coefficient is dropped: it is constant in k.
    """
    fn = "multinomial_nb_log_joint"
    counts = _check_matrix(counts, "counts", fn, _num_features(params, MultinomialNB, fn))
    return params.log_prior + counts @ params.feature_log_prob.T


def multinomial_nb_predict(params: MultinomialNB, counts) -> jax.Array:
    """y_hat = argmax_k ln P(x, y=k); counts [N, V] -> [N] ints."""
    fn = "multinomial_nb_predict"
    counts = _check_matrix(counts, "counts", fn, _num_features(params, MultinomialNB, fn))
    return jnp.argmax(multinomial_nb_log_joint(params, counts), axis=-1)


# ----------------------------------------------------------------------------- discriminative: logistic regression


@struct.dataclass
class LogisticRegression:
    """Softmax regression P(y=k | x) = softmax(x W + b)_k: weights [D, K], bias [K]."""

    weights: jax.Array
    bias: jax.Array


def logistic_regression_log_probs(params: LogisticRegression, x) -> jax.Array:
    """ln P(y=k | x) = (x W + b)_k - logsumexp_j (x W + b)_j; x [N, D] -> [N, K]."""
    fn = "logistic_regression_log_probs"
    x = _check_matrix(x, "x", fn, _num_features(params, LogisticRegression, fn))
    return jax.nn.log_softmax(x @ params.weights + params.bias, axis=-1)


def logistic_regression_loss(params: LogisticRegression, x, y, l2: float = 0.0) -> jax.Array:
    """L = -(1/N) sum_n ln P(y_n | x_n) + l2/2 ||W||^2 (bias not penalised)."""
    fn = "logistic_regression_loss"
    x = _check_matrix(x, "x", fn, _num_features(params, LogisticRegression, fn))
    y = _check_labels(y, x.shape[0], jnp.shape(params.bias)[0], fn)
    _check_nonneg(l2, "l2", fn)
    log_probs = logistic_regression_log_probs(params, x)
    nll = -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))
    return nll + 0.5 * l2 * jnp.sum(jnp.square(params.weights))


def logistic_regression_fit(
    x, y, num_classes: int, *, steps: int = 500, learning_rate: float = 0.1, l2: float = 0.0, key: jax.Array
) -> LogisticRegression:
    """argmin_{W, b} -(1/N) sum_n ln softmax(x_n W + b)_{y_n} + l2/2 ||W||^2 by full-batch optax Adam.

    Starts from W ~ N(0, 0.01^2), b = 0. Under jit, num_classes and steps are static.
    """
    fn = "logistic_regression_fit"
    x, y, k = _check_labelled(x, "x", y, num_classes, fn, min_classes=2)
    steps = as_int(steps, "steps", fn, minimum=1)
    _check_nonneg(learning_rate, "learning_rate", fn, strict=True)
    _check_nonneg(l2, "l2", fn)
    if key is None:
        raise ValueError(f"{fn}: key must be a jax.random key, got None")
    # a 1-d draw reshaped: N-d jax.random.normal compiles far more slowly on CPU
    init = LogisticRegression(
        weights=0.01 * jax.random.normal(key, (x.shape[1] * k,), x.dtype).reshape(x.shape[1], k),
        bias=jnp.zeros((k,), x.dtype),
    )
    l2, opt = jnp.asarray(l2, x.dtype), optax.adam(jnp.asarray(learning_rate, x.dtype))

    def step(carry, _):
        params, state = carry
        grads = jax.grad(logistic_regression_loss)(params, x, y, l2)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (init, opt.init(init)), None, length=steps)
    return params


def logistic_regression_predict(params: LogisticRegression, x) -> jax.Array:
    """y_hat = argmax_k P(y=k | x); x [N, D] -> [N] ints."""
    fn = "logistic_regression_predict"
    x = _check_matrix(x, "x", fn, _num_features(params, LogisticRegression, fn))
    return jnp.argmax(logistic_regression_log_probs(params, x), axis=-1)


# ----------------------------------------------------------------------------- 4. frequentist vs Bayesian inference

BINOMIAL_INTERVALS = ("wilson", "wald")


class Interval(NamedTuple):
    """An interval [lo, hi]: a frequentist confidence interval or a Bayesian credible interval."""

    lo: jax.Array
    hi: jax.Array


class BetaPosterior(NamedTuple):
    """The Beta(alpha, beta) posterior of a coin's rate theta and its summaries.

    alpha, beta: the posterior's parameters; mean, std: its mean and standard deviation; map: its mode; mle:
    heads / n, the frequentist point estimate beside them; interval: the equal-tailed credible interval;
    predictive: P(next toss = heads | data).
    """

    alpha: jax.Array
    beta: jax.Array
    mean: jax.Array
    std: jax.Array
    map: jax.Array
    mle: jax.Array
    interval: Interval
    predictive: jax.Array


class GaussianMeanPosterior(NamedTuple):
    """The N(mean, std^2) posterior of a Gaussian's mean mu (variance sigma^2 known) and its summaries.

    map = mean (a Gaussian's mode); mle: the sample mean; interval: the equal-tailed credible interval;
    predictive_mean, predictive_std: the posterior predictive N(x_new | predictive_mean, predictive_std^2).
    """

    mean: jax.Array
    std: jax.Array
    map: jax.Array
    mle: jax.Array
    interval: Interval
    predictive_mean: jax.Array
    predictive_std: jax.Array


class GridPosterior(NamedTuple):
    """A 1-D posterior tabulated on a grid and its summaries.

    grid [G]; density [G], the normalised p(theta | data) at the grid points (trapezoid rule: integrates to 1);
    mass [G], the posterior probability each point stands for (sums to 1, so E[f(theta)] = sum(mass * f(grid)));
    mean, std, map (the grid point of highest posterior), mle (of highest likelihood), interval (equal-tailed).
    """

    grid: jax.Array
    density: jax.Array
    mass: jax.Array
    mean: jax.Array
    std: jax.Array
    map: jax.Array
    mle: jax.Array
    interval: Interval


def _check_level(level, fn: str) -> jax.Array:
    """level as a float array; when concrete, a number in (0, 1)."""
    if _is_concrete(level) and not (np.ndim(level) == 0 and 0 < float(level) < 1):
        raise ValueError(f"{fn}: level must be a number in (0, 1) (0.95 for a 95% interval), got {level!r}")
    return _float(level)


def _check_values(value, name: str, fn: str, ok: Callable, accepted: str) -> jax.Array:
    """value as a float array; when concrete, every entry must pass ``ok`` (a numpy predicate)."""
    value = _float(value)
    if _is_concrete(value):
        v = np.atleast_1d(np.asarray(value))
        bad = v[~ok(v)]
        if bad.size:
            raise ValueError(f"{fn}: {name} must be {accepted}, got {float(bad[0])}")
    return value


def _positive(value, name: str, fn: str, allow_inf: bool = False) -> jax.Array:
    ok = (lambda v: v > 0) if allow_inf else (lambda v: np.isfinite(v) & (v > 0))
    return _check_values(value, name, fn, ok, "> 0" + (" (inf allowed)" if allow_inf else " and finite"))


def _check_coin(heads, n, fn: str, min_n: int = 0) -> tuple[jax.Array, jax.Array]:
    """heads and n as float arrays of counts: 0 <= heads <= n and n >= min_n, checked when concrete."""
    n = _check_values(n, "n", fn, lambda v: np.isfinite(v) & (v >= min_n), f"a count >= {min_n}")
    heads = _check_values(heads, "heads", fn, lambda v: np.isfinite(v) & (v >= 0), "a count >= 0")
    if _is_concrete(heads) and _is_concrete(n) and np.any(np.asarray(heads) > np.asarray(n)):
        raise ValueError(f"{fn}: heads must be <= n (the number of tosses), got heads {heads} and n {n}")
    return heads, n


def _check_samples(x, fn: str) -> jax.Array:
    x = _float(x)
    if x.ndim < 1:
        raise ValueError(f"{fn}: x must have a sample axis (the last; [N] or [..., N]), got shape {x.shape}")
    return x


def _z(level):
    """z with P(|Z| <= z) = level for Z ~ N(0, 1): z = Phi^-1((1 + level) / 2)."""
    return ndtri(0.5 + 0.5 * level)


def beta_binomial_posterior(heads, n, alpha=1.0, beta=1.0, level=0.95) -> BetaPosterior:
    """Beta(alpha, beta) prior, heads in n tosses: p(theta | data) = Beta(theta | alpha + heads, beta + n - heads).

    Conjugacy: Beta(theta | a, b) theta^heads (1 - theta)^(n - heads) is again a Beta density. alpha = beta = 1
    is the flat prior, under which the MAP is the MLE heads / n. Summaries: mean a/(a+b), std
    sqrt(ab / ((a+b)^2 (a+b+1))), mode (a-1)/(a+b-2) (0 or 1 when a <= 1 or b <= 1 makes the density monotone,
    nan when it is flat or U-shaped), the equal-tailed ``level`` credible interval (Beta quantiles by
    bisection on the incomplete beta function), and the predictive P(heads next) = integral theta
    p(theta | data) d theta = a/(a+b). The MLE is nan when n = 0. Arguments broadcast; jit/vmap-able.
    """
    fn = "beta_binomial_posterior"
    heads, n = _check_coin(heads, n, fn)
    alpha, beta = _positive(alpha, "alpha", fn), _positive(beta, "beta", fn)
    level = _check_level(level, fn)
    a, b = alpha + heads, beta + n - heads
    mean = a / (a + b)
    std = jnp.sqrt(a * b / (jnp.square(a + b) * (a + b + 1)))
    tail = 0.5 * (1 - level)
    interval = Interval(_beta_quantile(a, b, tail), _beta_quantile(a, b, 1 - tail))
    mle = heads / n
    return BetaPosterior(a, b, mean, std, _beta_mode(a, b), mle, interval, mean)


def _beta_quantile(a, b, q):
    """theta with I_theta(a, b) = q (the Beta cdf is the regularised incomplete beta), by 60 bisection steps."""
    a, b, q = jnp.broadcast_arrays(a, b, q)
    *_, lo, hi = jax.lax.fori_loop(0, 60, _halve, (a, b, q, jnp.zeros_like(q), jnp.ones_like(q)))
    return 0.5 * (lo + hi)


def _halve(_, carry):
    """One bisection step of _beta_quantile on [lo, hi]. A module-level body, so that called eagerly the loop is
    compiled once per shape rather than once per call."""
    a, b, q, lo, hi = carry
    mid = 0.5 * (lo + hi)
    below = betainc(a, b, mid) < q
    return a, b, q, jnp.where(below, mid, lo), jnp.where(below, hi, mid)


def _beta_mode(a, b):
    """argmax_theta Beta(theta | a, b): (a-1)/(a+b-2) inside, 0 or 1 on a monotone side, nan when U-shaped/flat."""
    flat = (a == 1) & (b == 1)
    interior = (a - 1) / jnp.where((a > 1) & (b > 1), a + b - 2, 1.0)
    at_zero = (a <= 1) & (b >= 1) & ~flat
    at_one = (a >= 1) & (b <= 1) & ~flat
    return jnp.where((a > 1) & (b > 1), interior, jnp.where(at_zero, 0.0, jnp.where(at_one, 1.0, jnp.nan)))


def gaussian_mean_posterior(x, sigma, prior_mean=0.0, prior_std=1.0, level=0.95) -> GaussianMeanPosterior:
    """Prior mu ~ N(m0, s0^2), x_i ~ N(mu, sigma^2): posterior N(mu | m_n, s_n^2), 1/s_n^2 = 1/s0^2 + n/sigma^2.

    m_n = s_n^2 (m0 / s0^2 + sum_i x_i / sigma^2), a precision-weighted average of the prior mean and the sample
    mean (the MLE). prior_std = inf is the flat prior, under which m_n is the MLE and s_n = sigma / sqrt(n).
    The credible interval is m_n +- z s_n with z = Phi^-1((1 + level)/2); the posterior predictive of a new
    draw is N(m_n, sigma^2 + s_n^2). x is [N] or [..., N] (samples on the last axis; N = 0 gives the prior
    and a nan MLE); sigma, prior_mean and prior_std broadcast against x's other axes. jit/vmap-able.
    """
    fn = "gaussian_mean_posterior"
    x = _check_samples(x, fn)
    sigma = _positive(sigma, "sigma", fn)
    prior_mean = _check_values(prior_mean, "prior_mean", fn, np.isfinite, "finite")
    prior_std = _positive(prior_std, "prior_std", fn, allow_inf=True)
    level = _check_level(level, fn)
    n, total = x.shape[-1], jnp.sum(x, axis=-1)
    prior_precision, data_precision = 1 / jnp.square(prior_std), n / jnp.square(sigma)
    var = 1 / (prior_precision + data_precision)
    mean = var * (prior_mean * prior_precision + total / jnp.square(sigma))
    std = jnp.sqrt(var)
    half = _z(level) * std
    interval = Interval(mean - half, mean + half)
    predictive_std = jnp.sqrt(jnp.square(sigma) + var)
    return GaussianMeanPosterior(mean, std, mean, total / n, interval, mean, predictive_std)


def grid_posterior(log_likelihood: Callable, log_prior: Callable, grid, level=0.95) -> GridPosterior:
    """Bayes' rule on a grid: p(theta_g | data) = exp(l_g) / Z, l_g = ln p(data | theta_g) + ln p(theta_g).

    Z = sum_g w_g exp(l_g) with the trapezoid weights w_g of the grid, so the density integrates to 1; the
    general form of which the conjugate posteriors are two closed-form cases. log_likelihood and log_prior
    map the grid [G] (strictly increasing, G >= 2) to [G] (-inf where a value is impossible; the prior may be
    unnormalised, a flat prior is zeros). The interval inverts the cdf by linear interpolation, so its
    error, like that of the other summaries, falls with the grid spacing.
    """
    fn = "grid_posterior"
    for name, f in (("log_likelihood", log_likelihood), ("log_prior", log_prior)):
        if not callable(f):
            raise ValueError(f"{fn}: {name} must be a callable grid [G] -> [G], got {type(f).__name__}")
    grid = _float(grid)
    if grid.ndim != 1 or grid.shape[0] < 2:
        raise ValueError(f"{fn}: grid must be a 1-d array of at least 2 points, got shape {grid.shape}")
    if _is_concrete(grid) and not np.all(np.diff(np.asarray(grid)) > 0):
        raise ValueError(f"{fn}: grid must be strictly increasing (and free of nan), got {np.asarray(grid)[:5]}...")
    level = _check_level(level, fn)
    values = []
    for name, f in (("log_likelihood", log_likelihood), ("log_prior", log_prior)):
        v = _float(f(grid))
        if v.shape != grid.shape:
            raise ValueError(f"{fn}: {name} must return one value per grid point, shape {grid.shape}, got {v.shape}")
        if _is_concrete(v) and np.any(np.isnan(np.asarray(v)) | (np.asarray(v) == np.inf)):
            raise ValueError(f"{fn}: {name} must be finite or -inf on the grid, got nan or +inf (use xlogy for 0 ln 0)")
        values.append(v)
    log_lik, log_pri = values
    if _is_concrete(log_lik) and _is_concrete(log_pri) and not np.any(np.isfinite(np.asarray(log_lik + log_pri))):
        raise ValueError(f"{fn}: the posterior is zero on every grid point (log_likelihood + log_prior is -inf)")
    h = jnp.diff(grid)
    weights = 0.5 * (jnp.pad(h, (1, 0)) + jnp.pad(h, (0, 1)))  # trapezoid rule
    log_joint = log_lik + log_pri
    log_density = log_joint - logsumexp(log_joint + jnp.log(weights))
    density = jnp.exp(log_density)
    mass = weights * density
    mean = jnp.sum(mass * grid)
    std = jnp.sqrt(jnp.sum(mass * jnp.square(grid - mean)))
    cdf = jnp.concatenate([jnp.zeros(1, grid.dtype), jnp.cumsum(0.5 * h * (density[1:] + density[:-1]))])
    cdf = cdf / cdf[-1]
    tail = 0.5 * (1 - level)
    interval = Interval(*(_invert_cdf(cdf, grid, q) for q in (tail, 1 - tail)))
    return GridPosterior(
        grid, density, mass, mean, std, grid[jnp.argmax(log_joint)], grid[jnp.argmax(log_lik)], interval
    )


def _invert_cdf(cdf, grid, q):
    """theta where the piecewise-linear cdf through (grid_g, cdf_g) reaches q."""
    i = jnp.clip(jnp.searchsorted(cdf, q, side="left"), 1, grid.shape[0] - 1)
    lo, hi = cdf[i - 1], cdf[i]
    frac = jnp.where(hi > lo, (q - lo) / jnp.where(hi > lo, hi - lo, 1.0), 0.0)
    return grid[i - 1] + frac * (grid[i] - grid[i - 1])


def binomial_confidence_interval(heads, n, level=0.95, method: str = "wilson") -> Interval:
    """Frequentist interval for a coin's rate from heads in n tosses; p_hat = heads / n, z = Phi^-1((1+level)/2).

    "wald": p_hat +- z sqrt(p_hat (1 - p_hat) / n), clipped to [0, 1] (the textbook interval; poor coverage
    for small n or p near 0 or 1). "wilson" (default): the p with |p_hat - p| <= z sqrt(p (1 - p) / n),
    centre (p_hat + z^2/2n) / (1 + z^2/n), half-width z / (1 + z^2/n) sqrt(p_hat (1 - p_hat)/n + z^2/4n^2).
    Over repeated samples it covers the true rate with probability near ``level``. Arguments broadcast; under
    jit, method is static.
    """
    fn = "binomial_confidence_interval"
    if method not in BINOMIAL_INTERVALS:
        raise ValueError(f"{fn}: method={method!r} not supported; accepted: {BINOMIAL_INTERVALS}")
    heads, n = _check_coin(heads, n, fn, min_n=1)
    level = _check_level(level, fn)
    p, z = heads / n, _z(level)
    if method == "wald":
        half = z * jnp.sqrt(p * (1 - p) / n)
        return Interval(jnp.clip(p - half, 0, 1), jnp.clip(p + half, 0, 1))
    z2n = jnp.square(z) / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * jnp.sqrt(p * (1 - p) / n + z2n / (4 * n))
    return Interval(centre - half, centre + half)


def gaussian_mean_confidence_interval(x, sigma, level=0.95) -> Interval:
    """The z-interval x_bar +- z sigma / sqrt(n) for the mean of N(mu, sigma^2), sigma known, z = Phi^-1((1+level)/2).

    x is [N] or [..., N] (samples on the last axis, N >= 1); over repeated samples the interval covers mu with
    probability exactly ``level``.
    """
    fn = "gaussian_mean_confidence_interval"
    x = _check_samples(x, fn)
    if x.shape[-1] < 1:
        raise ValueError(f"{fn}: x must have at least one sample on its last axis, got shape {x.shape}")
    sigma = _positive(sigma, "sigma", fn)
    level = _check_level(level, fn)
    mean, half = jnp.mean(x, axis=-1), _z(level) * sigma / jnp.sqrt(x.shape[-1])
    return Interval(mean - half, mean + half)
