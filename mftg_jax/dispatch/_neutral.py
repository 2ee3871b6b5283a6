r"""Policy evaluation of a linear matching feedback: the risk-neutral expected cost $E L$.

Under $s = D + (P x + \beta)/\kappa$ the state $x = e - \bar e$ has mean and variance

$$\dot m = a - D - (P m + \beta)/\kappa,\qquad \dot v = -2Pv/\kappa + \sigma^2 + \nu E Y^2,$$

and $E L = \tfrac{q^T}2(m_1^2 + v_1) + \int \frac{(Pm + \beta)^2 + P^2 v}{2\kappa}
+ \tfrac q2(m^2 + v)\,dt$: a forward integration, independent of the backward value
equation. At $\eta = 0$ it must equal the value $V(t_0, e_0)$ (the risk-neutral LQ solution);
for $\eta > 0$ the certainty equivalent exceeds it by about $\tfrac\eta2\mathrm{var}\,L$.
"""

import diffrax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._odes import solve_ode
from ._risk_riccati import RiskSensitiveSolution


def _vector_field(t, y, sol: RiskSensitiveSolution):
    m, v, _ = y
    pr = sol.problem
    P, b, _ = sol.evaluate(t)
    g = P * m + b
    dm = pr.arrival - pr.demand - g / pr.kappa
    dv = -2 * P * v / pr.kappa + pr.variance_rate
    dc = (g * g + P * P * v) / (2 * pr.kappa) + 0.5 * pr.q * (m * m + v)
    return dm, dv, dc


def expected_loss(solution: RiskSensitiveSolution) -> Float[Array, " n"]:
    r"""$E L$ from $(t_0, e_0)$ under `solution`'s (linear, unbounded) feedback (module
    docstring), by [`solve_ode`][mftg_jax.solve_ode].

    **Arguments:** `solution`, a [`RiskSensitiveSolution`][mftg_jax.dispatch.RiskSensitiveSolution].

    **Returns:** $E L$ per station.
    """
    pr = solution.problem
    z = jnp.zeros(pr.n)
    y0 = (pr.e0 - pr.target, z, z)
    out = solve_ode(
        _vector_field,
        y0,
        pr.t0,
        pr.t1,
        solution,
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10),
    )
    m, v, c = (y[-1] for y in out.ys)
    return c + 0.5 * pr.q_terminal * (m * m + v)
