r"""The closed forms at $q = 0$ from the HJB, and the exact value of any proportional policy.

With $V = \alpha(t, j)\log s + \beta(t, j)$ and fractions $(c, \pi, I)$ the HJB splits into
the $\log s$ part and the rest (docs/insurance.md):

$$\dot\alpha_j = -e^{-\lambda t} - (G\alpha)_j,\qquad \alpha_j(t_1) = b_je^{-\lambda t_1},$$

$$\dot\beta_j = -\big[e^{-\lambda t}\log c_j + \alpha_j\big(r_j + g_j(\pi_j) + h_j(I_j) - c_j\big)
 + (G\beta)_j\big],\qquad \beta_j(t_1) = 0,$$

$g_j$ the assets' log-growth ([`log_growth`][mftg_jax.insurance.log_growth]), $h_j$ the
insurance part ([`loss_growth`][mftg_jax.insurance.loss_growth]). The optimum: $c_j =
e^{-\lambda t}/\alpha_j$ ($u^c = e^{-\lambda t}s/\alpha$), $\pi_j$ maximising $g_j$, $I_j$
maximising $h_j$. For any fixed proportional policy the same linear system gives its exact
objective at $q = 0$; both run through [`mftg_jax.solve_ode`][].
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._odes import checked_solution, solve_ode
from ._investment import log_growth, optimal_investment
from ._model import InsuranceModel
from ._policy import AbstractPolicy, ClosedFormPolicy
from ._returns import asset_returns, AssetReturns
from ._rules import insurance_fraction, loss_growth


def excess_returns(model: InsuranceModel, returns: AssetReturns, t) -> Array:
    r"""$\mu^{ex}_{jk}(t) = \hat\mu_{jk} + \mathrm{Drift}_k(t) - r_j$, shape `(m, d)`."""
    reg = model.regimes
    return reg.asset_premium + returns.drift_at(t)[None, :] - reg.riskless_rate[:, None]


def _vf(t, y, args):
    alpha, beta = y
    model, returns, policy = args
    reg = model.regimes
    lam = model.discount
    c, pi, ins = policy.fractions(t)
    ex = excess_returns(model, returns, t)
    g = jax.vmap(lambda p, e: log_growth(p, e, returns))(pi, ex)
    h = loss_growth(ins, reg.loss_fraction, reg.loading, reg.loss_intensity, model.convention)
    disc = jnp.exp(-lam * t)
    G = reg.generator
    d_alpha = -disc - G @ alpha
    d_beta = -(disc * jnp.log(c) + alpha * (reg.riskless_rate + g + h - c) + G @ beta)
    return d_alpha, d_beta


def policy_value(
    model: InsuranceModel,
    policy: AbstractPolicy,
    returns: AssetReturns | None = None,
    *,
    steps_per_node: int = 4,
) -> Array:
    r"""The exact objective at $q = 0$ of a proportional policy started in each regime,
    $\alpha_j(t_0)\log s_0 + \beta_j(t_0)$ (module docstring), shape `(m,)`.

    The coefficients are piecewise linear between the grid nodes, so the solve takes
    `steps_per_node` fixed Tsit5 steps per grid interval (steps never straddle a kink, and
    the value is a smooth function of the parameters: an adaptive controller would make it
    only piecewise smooth, at the level of its tolerance)."""
    if returns is None:
        returns = asset_returns(model)
    reg = model.regimes
    alpha1 = reg.bequest * jnp.exp(-model.discount * model.t1)
    n = steps_per_node * (model.n_grid - 1)
    sol = solve_ode(
        _vf,
        (alpha1, jnp.zeros_like(alpha1)),
        model.t1,
        model.t0,
        (model, returns, policy),
        stepsize_controller=diffrax.ConstantStepSize(),
        dt0=(model.t0 - model.t1) / n,
        max_steps=n + 1,
    )
    sol = checked_solution(
        sol,
        lambda s: (
            f"the value equations failed on [{float(model.t0):g}, {float(model.t1):g}] "
            f"(result {s.result}); check that the policy keeps 1 + pi J > 0"
        ),
        "the value equations failed",
    )
    alpha, beta = (y[-1] for y in sol.ys)
    return alpha * jnp.log(model.s0) + beta


def _alpha_vf(t, alpha, model):
    return -jnp.exp(-model.discount * t) - model.regimes.generator @ alpha


def solve_alpha(model: InsuranceModel, ts) -> Array:
    r"""$\alpha(t, j)$ at the increasing times `ts` from the linear ODE system (module
    docstring) through [`mftg_jax.solve_ode`][], shape `(T, m)`."""
    ts = jnp.asarray(ts, float)
    alpha1 = model.regimes.bequest * jnp.exp(-model.discount * model.t1)
    sol = solve_ode(
        _alpha_vf, alpha1, model.t1, model.t0, model, saveat=diffrax.SaveAt(ts=ts[::-1])
    )
    return sol.ys[::-1]


class InsuranceSolution(eqx.Module):
    r"""The $q = 0$ closed forms of an [`InsuranceModel`][mftg_jax.insurance.InsuranceModel]
    (from [`solve`][mftg_jax.insurance.solve]).

    - `returns`: the [`AssetReturns`][mftg_jax.insurance.AssetReturns].
    - `alpha (T, m)`: $\alpha(t, j)$ on the grid `returns.ts` (ODE route).
    - `investment (T, m, d)`: $\pi_j(t)$, the roots of the first-order condition;
      `foc_residual (T, m, d)`: $\nabla g$ there.
    - `insurance (m,)`: $I_j$, the rule of the model's convention.
    """

    model: InsuranceModel
    returns: AssetReturns
    alpha: Array
    investment: Array
    foc_residual: Array
    insurance: Array

    def policy(self) -> ClosedFormPolicy:
        """The optimum as a [`ClosedFormPolicy`][mftg_jax.insurance.ClosedFormPolicy]."""
        m = self.model
        return ClosedFormPolicy(
            generator=m.regimes.generator,
            bequest=m.regimes.bequest,
            discount=m.discount,
            t1=m.t1,
            ts=self.returns.ts,
            investment=self.investment,
            insurance=self.insurance,
        )

    def consumption_rate(self, t) -> Array:
        r"""$c_j(t) = e^{-\lambda t}/\alpha_j(t)$, shape `(m,)`."""
        return self.policy().fractions(t)[0]

    def investment_fraction(self, t) -> Array:
        r"""$\pi_j(t)$, shape `(m, d)`."""
        return self.policy().fractions(t)[1]

    def values(self) -> Array:
        r"""The optimal objective at $t_0$ from each regime, shape `(m,)`."""
        return policy_value(self.model, self.policy(), self.returns)

    def value(self) -> Array:
        r"""The optimal objective $\alpha(t_0, j_0)\log s_0 + \beta(t_0, j_0)$ (exact at
        $q = 0$; at $q > 0$ the objective of this policy without the penalty)."""
        return self.values()[self.model.regime0]


def solve(model: InsuranceModel) -> InsuranceSolution:
    r"""The $q = 0$ closed forms (module docstring): $\alpha$ by the ODE, $\pi$ by the
    vectorised root of the first-order condition, $I$ by the insurance rule.

    The fractions are held fixed under differentiation (`stop_gradient`): they are optimal,
    so by the envelope theorem the value's gradient does not depend on their derivative.

    **Returns:** an [`InsuranceSolution`][mftg_jax.insurance.InsuranceSolution].
    """
    returns = asset_returns(model)
    ts = returns.ts
    alpha = solve_alpha(model, ts)
    ex = jax.vmap(lambda t: excess_returns(model, returns, t))(ts)
    pi, res = optimal_investment(jax.lax.stop_gradient(ex), jax.lax.stop_gradient(returns))
    reg = model.regimes
    ins = insurance_fraction(reg.loss_fraction, reg.loading, model.convention)
    return InsuranceSolution(
        model=model,
        returns=returns,
        alpha=alpha,
        investment=jax.lax.stop_gradient(pi),
        foc_residual=res,
        insurance=jax.lax.stop_gradient(ins),
    )
