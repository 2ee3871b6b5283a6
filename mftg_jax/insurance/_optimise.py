r"""The $q > 0$ feedback by gradient descent through the Monte Carlo, and its certificate.

The variance penalty $-q e^{-\lambda t_1}\mathrm{Var}\,s(t_1)$ is not of the form
$\alpha\log s + \beta$, so the closed form breaks. The optimum is searched over the
[`FeedbackPolicy`][mftg_jax.insurance.FeedbackPolicy] class: `optax.adam` on the sample
objective of [`simulate_paths`][mftg_jax.insurance.simulate_paths] with one fixed key
(common random numbers, so the objective is a smooth deterministic function of the
coefficients and its pathwise gradient, by `jax.grad` through the scan, is exact for it).

The certificate ([`certify_policy`][mftg_jax.insurance.certify_policy]) re-simulates with an
independent key and evaluates the policy and random perturbations of it (directions drawn
uniformly on the sphere of the coefficients, several sizes) on the same paths: the
improvements $J(\text{perturbed}) - J(\text{policy})$ and their standard errors come from the
paired per-pair differences. The policy is certified when no improvement exceeds two
standard errors.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array
import numpy as np
import optax

from ._model import InsuranceModel
from ._montecarlo import mean_and_stderr, objective_samples, simulate_paths
from ._policy import AbstractPolicy, chebyshev, FeedbackPolicy
from ._returns import AssetReturns


def _trainable(policy: FeedbackPolicy):
    spec = jax.tree.map(lambda _: False, policy)
    return eqx.tree_at(
        lambda p: (p.log_consumption, p.investment, p.insurance_logit), spec, (True, True, True)
    )


def fit_feedback(model: InsuranceModel, policy: AbstractPolicy, degree: int = 3) -> FeedbackPolicy:
    r"""The [`FeedbackPolicy`][mftg_jax.insurance.FeedbackPolicy] of degree `degree` closest to
    `policy` (least squares at $2(K+1)$ Chebyshev points; the cover $I$ clipped to
    $[10^{-3}l, (1 - 10^{-3})l]$ before the logit)."""
    t0, t1 = float(model.t0), float(model.t1)
    n = 2 * (degree + 1)
    x = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    ts = t0 + (x + 1) * (t1 - t0) / 2
    cs, pis, inss = zip(*(policy.fractions(jnp.asarray(t)) for t in ts), strict=True)
    phi = np.stack([np.asarray(chebyshev(jnp.asarray(xi), degree)) for xi in x])  # (n, K+1)
    l = np.asarray(model.regimes.loss_fraction)
    frac = np.clip(np.stack(inss) / np.where(l > 0, l, 1.0), 1e-3, 1 - 1e-3)

    def lsq(y):  # y (n, ...) -> (..., K+1)
        flat = y.reshape((n, -1))
        coef = np.linalg.lstsq(phi, flat, rcond=None)[0]  # (K+1, prod)
        return np.moveaxis(coef.reshape((degree + 1,) + y.shape[1:]), 0, -1)

    return FeedbackPolicy(
        log_consumption=jnp.asarray(lsq(np.log(np.stack(cs)))),
        investment=jnp.asarray(lsq(np.stack(pis))),
        insurance_logit=jnp.asarray(lsq(np.log(frac / (1 - frac)))),
        loss_fraction=model.regimes.loss_fraction,
        t0=model.t0,
        t1=model.t1,
    )


def sample_objective(
    model: InsuranceModel, returns: AssetReturns, policy: AbstractPolicy, key, n_paths, n_steps
) -> tuple[Array, Array]:
    """The Monte Carlo objective (with the penalty) and its standard error."""
    paths = simulate_paths(model, returns, policy, key, n_paths, n_steps)
    return mean_and_stderr(objective_samples(model, paths))


class OptimisationResult(NamedTuple):
    """`policy`: the optimised feedback; `history (steps,)`: the sample objective per step;
    `gradient_norm`: the norm of the last gradient."""

    policy: FeedbackPolicy
    history: Array
    gradient_norm: Array


@eqx.filter_jit
def _run(model, returns, policy, key, n_paths, n_steps, steps, learning_rate, method):
    spec = _trainable(policy)
    params, static = eqx.partition(policy, spec)

    def loss(p):
        pol = eqx.combine(p, static)
        paths = simulate_paths(model, returns, pol, key, n_paths, n_steps)
        return -jnp.mean(objective_samples(model, paths))

    if method == "adam":
        opt = optax.adam(learning_rate)

        def body(carry, _):
            p, state = carry
            val, g = jax.value_and_grad(loss)(p)
            upd, state = opt.update(g, state, p)
            return (optax.apply_updates(p, upd), state), (-val, optax.tree.norm(g))

    else:
        opt = optax.lbfgs()
        vg = optax.value_and_grad_from_state(loss)

        def body(carry, _):
            p, state = carry
            val, g = vg(p, state=state)
            upd, state = opt.update(g, state, p, value=val, grad=g, value_fn=loss)
            return (optax.apply_updates(p, upd), state), (-val, optax.tree.norm(g))

    (params, _), (hist, gn) = jax.lax.scan(body, (params, opt.init(params)), None, length=steps)
    return eqx.combine(params, static), hist, gn[-1]


def optimise_policy(
    model: InsuranceModel,
    returns: AssetReturns,
    init: FeedbackPolicy,
    key,
    *,
    n_paths: int = 2000,
    n_steps: int = 50,
    steps: int = 300,
    learning_rate: float = 0.01,
    method: str = "adam",
) -> OptimisationResult:
    r"""Maximise the sample objective over the feedback coefficients (module docstring).

    **Arguments:** the model, its [`AssetReturns`][mftg_jax.insurance.AssetReturns], the
    starting [`FeedbackPolicy`][mftg_jax.insurance.FeedbackPolicy], the fixed `key` of the
    common random numbers, the Monte Carlo size, the number of `optax.adam` `steps` and its
    `learning_rate`; `method`: `"adam"` (`optax.adam`) or `"lbfgs"` (`optax.lbfgs` with its
    zoom line search; `learning_rate` unused), both fused in one jitted `lax.scan`.

    **Returns:** an [`OptimisationResult`][mftg_jax.insurance.OptimisationResult].
    """
    if method not in ("adam", "lbfgs"):
        raise ValueError(f"method must be 'adam' or 'lbfgs', got {method!r}")
    pol, hist, gn = _run(model, returns, init, key, n_paths, n_steps, steps, learning_rate, method)
    return OptimisationResult(pol, hist, gn)


class PolicyCertificate(NamedTuple):
    r"""`objective`, `objective_stderr`: the policy's objective on the certificate's paths;
    `improvements (P,)`, `stderrs (P,)`: $J(\text{perturbed}) - J(\text{policy})$ and their
    standard errors; `sizes (P,)`: the perturbation sizes; `bound`, `bound_stderr`:
    the largest improvement and its standard error; `certified`: no improvement exceeds two
    standard errors."""

    objective: float
    objective_stderr: float
    improvements: np.ndarray
    stderrs: np.ndarray
    sizes: np.ndarray
    bound: float
    bound_stderr: float
    certified: bool


@eqx.filter_jit
def _paired(model, returns, policy, perturbed_params, key, n_paths, n_steps):
    _, static = eqx.partition(policy, _trainable(policy))

    def samples(pol):
        return objective_samples(model, simulate_paths(model, returns, pol, key, n_paths, n_steps))

    base = samples(policy)
    pert = jax.lax.map(lambda p: samples(eqx.combine(p, static)), perturbed_params)
    diff = pert - base[None, :]
    n = base.shape[0]
    return (
        jnp.mean(base),
        jnp.std(base, ddof=1) / jnp.sqrt(n),
        jnp.mean(diff, 1),
        jnp.std(diff, 1, ddof=1) / jnp.sqrt(n),
    )


def certify_policy(
    model: InsuranceModel,
    returns: AssetReturns,
    policy: FeedbackPolicy,
    key,
    *,
    n_directions: int = 8,
    sizes=(0.01, 0.05, 0.2),
    n_paths: int = 2000,
    n_steps: int = 50,
    independent: bool = True,
) -> PolicyCertificate:
    r"""The perturbation certificate of the module docstring: `n_directions` random unit
    directions (in the Euclidean norm of all trainable coefficients) times each of `sizes`,
    evaluated with the key `key`.

    `independent=True`: `key` is independent of the optimisation's; the policy itself then
    carries Monte Carlo error, and an improvement's standard error is $\sqrt2$ times the
    paired one (to first order the out-of-sample gradient at the sample optimum has the
    covariance $S/n$ of the fresh paths plus $H\,\mathrm{Cov}(\hat\vartheta)H = S/n$ of the
    optimum, [`sampling_errors`][mftg_jax.insurance.sampling_errors]).
    `independent=False`: `key` is the optimisation's (the in-sample check of convergence;
    the paired standard error).

    **Returns:** a [`PolicyCertificate`][mftg_jax.insurance.PolicyCertificate].
    """
    params, _ = eqx.partition(policy, _trainable(policy))
    leaves, tree = jax.tree.flatten(params)
    kd = jax.random.fold_in(key, 10**6)
    dirs = [
        jax.random.normal(k, (n_directions,) + x.shape)
        for k, x in zip(jax.random.split(kd, len(leaves)), leaves, strict=True)
    ]
    norm = jnp.sqrt(sum(jnp.sum(dd**2, tuple(range(1, dd.ndim))) for dd in dirs))
    sz = jnp.repeat(jnp.asarray(sizes, float), n_directions)
    n_s = len(sizes)
    pert_leaves = [
        jnp.tile(x[None], (n_s * n_directions,) + (1,) * x.ndim)
        + sz.reshape((-1,) + (1,) * x.ndim)
        * jnp.tile(dd / norm.reshape((-1,) + (1,) * x.ndim), (n_s,) + (1,) * x.ndim)
        for x, dd in zip(leaves, dirs, strict=True)
    ]
    perturbed = jax.tree.unflatten(tree, pert_leaves)
    obj, obj_se, imp, se = _paired(model, returns, policy, perturbed, key, n_paths, n_steps)
    imp = np.asarray(imp)
    se = np.asarray(se) * (np.sqrt(2.0) if independent else 1.0)
    i = int(np.argmax(imp))
    return PolicyCertificate(
        objective=float(obj),
        objective_stderr=float(obj_se),
        improvements=imp,
        stderrs=se,
        sizes=np.asarray(sz),
        bound=float(imp[i]),
        bound_stderr=float(se[i]),
        certified=bool(np.all(imp <= 2 * se)),
    )


class SamplingErrors(NamedTuple):
    r"""Sandwich standard errors of the sample optimum: `coefficients` (flat),
    `consumption (m,)`, `investment (m, d)`, `insurance (m,)`: the standard errors of the
    fractions at time `t` implied by the Monte Carlo."""

    coefficients: np.ndarray
    consumption: np.ndarray
    investment: np.ndarray
    insurance: np.ndarray


def sampling_errors(
    model: InsuranceModel,
    returns: AssetReturns,
    policy: FeedbackPolicy,
    key,
    t,
    *,
    n_paths: int = 2000,
    n_steps: int = 50,
) -> SamplingErrors:
    r"""The Monte Carlo error of a sample optimum $\hatartheta$ of the objective
        $J_N(artheta) = rac1n\sum_i j_i(artheta)$ (pairs $i$): by the delta method
        $\mathrm{Cov}\,\hatartheta pprox H^{-1}SH^{-1}/n$ with $H =
    abla^2J_N$ and $S$ the
        sample covariance of the per-pair gradients $
    abla j_i$, mapped to the fractions at `t`
        by their Jacobian. Directions the sample does not see (a regime never visited) have
        a singular $H$; the pseudo-inverse then reports them as exact and they must not be
        compared.
    """
    from jax.flatten_util import ravel_pytree

    params, static = eqx.partition(policy, _trainable(policy))
    flat, unravel = ravel_pytree(params)

    def per_pair(v):
        pol = eqx.combine(unravel(v), static)
        return objective_samples(model, simulate_paths(model, returns, pol, key, n_paths, n_steps))

    J = np.asarray(jax.jacfwd(per_pair)(flat))  # (n, P)
    H = np.asarray(jax.hessian(lambda v: jnp.mean(per_pair(v)))(flat))
    n = J.shape[0]
    S = np.cov(J, rowvar=False)
    Hi = np.linalg.pinv(H, rcond=1e-10)
    cov = Hi @ S @ Hi / n

    def fr(v):
        c, pi, ins = eqx.combine(unravel(v), static).fractions(t)
        return jnp.concatenate([c, pi.reshape(-1), ins])

    D = np.asarray(jax.jacfwd(fr)(flat))
    se = np.sqrt(np.maximum(np.einsum("ip,pq,iq->i", D, cov, D), 0.0))
    m, d = model.m, model.d
    return SamplingErrors(
        coefficients=np.sqrt(np.maximum(np.diag(cov), 0.0)),
        consumption=se[:m],
        investment=se[m : m + m * d].reshape((m, d)),
        insurance=se[m + m * d :],
    )
