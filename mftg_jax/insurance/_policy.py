r"""Feedback policies proportional to wealth: consumption $u^c = c(t, j)s$, investment
$u^I = \pi(t, j)s$, insurance $u^{ins} = I(t, j)s$.

[`ClosedFormPolicy`][mftg_jax.insurance.ClosedFormPolicy] is the $q = 0$ optimum,
[`FeedbackPolicy`][mftg_jax.insurance.FeedbackPolicy] the parametrised family searched by
gradient descent at $q > 0$: each fraction a Chebyshev series of degree $K$ in the rescaled
time $x = 2(t - t_0)/(t_1 - t_0) - 1$, one per regime,

$$\log c_j(t) = \sum_{k\le K} a_{jk}T_k(x),\quad \pi_{ji}(t) = \sum_k B_{jik}T_k(x),\quad
  I_j(t) = l_j\,\mathrm{sigmoid}\Big(\sum_k e_{jk}T_k(x)\Big).$$

Smooth in time and exact in the regime (a function of finitely many regimes needs no
approximation), positive consumption and cover in $(0, l)$ by construction; the $q = 0$
optimum is smooth in $t$ (docs/insurance.md), so a low degree represents it.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._linalg import small_expm


class AbstractPolicy(eqx.Module):
    """A wealth-proportional feedback."""

    @abc.abstractmethod
    def fractions(self, t) -> tuple[Array, Array, Array]:
        """`(c (m,), pi (m, d), I (m,))` at time `t` for every regime."""


def alpha_closed_form(t, generator, bequest, discount, t1) -> Array:
    r"""$\alpha(t) = e^{G(t_1 - t)}b\,e^{-\lambda t_1} + \mathbf 1\,
    (e^{-\lambda t} - e^{-\lambda t_1})/\lambda$ (the second term is $(t_1 - t)$ at
    $\lambda = 0$): the solution of $\dot\alpha = -e^{-\lambda t}\mathbf 1 - G\alpha$,
    $\alpha(t_1) = b e^{-\lambda t_1}$, since $G\mathbf 1 = 0$. Shape `(m,)`."""
    tau = t1 - t
    x = discount * tau
    safe = jnp.where(x > 1e-8, x, 1.0)
    phi = jnp.where(x > 1e-8, -jnp.expm1(-safe) / safe, 1 - x / 2)
    running = jnp.exp(-discount * t) * tau * phi
    return small_expm(generator * tau) @ (bequest * jnp.exp(-discount * t1)) + running


class ClosedFormPolicy(AbstractPolicy):
    r"""The $q = 0$ optimum: $c_j = e^{-\lambda t}/\alpha_j(t)$, $\pi_j(t)$ the root of the
    first-order condition (interpolated linearly on the grid `ts`), $I_j$ the insurance rule.
    """

    generator: Array
    bequest: Array
    discount: Array
    t1: Array
    ts: Array
    investment: Array  # (T, m, d)
    insurance: Array  # (m,)

    def fractions(self, t):
        alpha = alpha_closed_form(t, self.generator, self.bequest, self.discount, self.t1)
        c = jnp.exp(-self.discount * t) / alpha
        T, m, d = self.investment.shape
        flat = self.investment.reshape((T, m * d))
        pi = jnp.stack([jnp.interp(t, self.ts, flat[:, i]) for i in range(m * d)]).reshape((m, d))
        return c, pi, self.insurance


def chebyshev(x, degree: int) -> Array:
    """$T_0(x), \\dots, T_K(x)$, shape `(K + 1,)`."""
    out = [jnp.ones_like(x), x]
    for _ in range(degree - 1):
        out.append(2 * x * out[-1] - out[-2])
    return jnp.stack(out[: degree + 1])


class FeedbackPolicy(AbstractPolicy):
    r"""The parametrised feedback of the module docstring.

    **Arguments:** `log_consumption (m, K+1)`, `investment (m, d, K+1)`,
    `insurance_logit (m, K+1)`: the Chebyshev coefficients; `loss_fraction (m,)`: $l_j$;
    `t0`, `t1`: the horizon.
    """

    log_consumption: Array
    investment: Array
    insurance_logit: Array
    loss_fraction: Array
    t0: Array
    t1: Array

    def __check_init__(self):
        m, K1 = self.log_consumption.shape
        if self.investment.shape[0] != m or self.investment.shape[-1] != K1:
            raise ValueError(
                f"investment must have shape (m = {m}, d, K + 1 = {K1}), got "
                f"{self.investment.shape}"
            )
        if self.insurance_logit.shape != (m, K1):
            raise ValueError(
                f"insurance_logit must have shape ({m}, {K1}), got {self.insurance_logit.shape}"
            )

    @property
    def degree(self) -> int:
        return self.log_consumption.shape[-1] - 1

    def fractions(self, t):
        x = 2 * (t - self.t0) / (self.t1 - self.t0) - 1
        phi = chebyshev(x, self.degree)
        c = jnp.exp(self.log_consumption @ phi)
        pi = self.investment @ phi
        ins = self.loss_fraction * jax.nn.sigmoid(self.insurance_logit @ phi)
        return c, pi, ins


class WithoutInsurance(AbstractPolicy):
    """`policy` with its cover set to zero (the uninsured comparison)."""

    policy: AbstractPolicy

    def fractions(self, t):
        c, pi, ins = self.policy.fractions(t)
        return c, pi, jnp.zeros_like(ins)


def uninsured(policy: AbstractPolicy) -> AbstractPolicy:
    """`policy` without cover, of the same type where possible (a closed-form or feedback
    policy keeps its type, so that jitted programs compiled for it are reused); otherwise
    [`WithoutInsurance`][mftg_jax.insurance.WithoutInsurance]."""
    if isinstance(policy, ClosedFormPolicy):
        return eqx.tree_at(lambda p: p.insurance, policy, jnp.zeros_like(policy.insurance))
    if isinstance(policy, FeedbackPolicy):
        # sigmoid(-1e4) is exactly 0 in floating point
        logit = jnp.zeros_like(policy.insurance_logit).at[:, 0].set(-1e4)
        return eqx.tree_at(lambda p: p.insurance_logit, policy, logit)
    return WithoutInsurance(policy)
