r"""The bounded problem: the HJB equation of the exponential criterion on a state grid.

With $s \in [0, \bar s]$ the value is not quadratic. We solve the dynamic-programming
equation of $V = \tfrac1\eta\log E e^{\eta L}$ backwards on a grid of $x = e - \bar e$ by a
semi-Lagrangian (Markov-chain approximation) scheme, one step $\Delta t$ at a time:

$$V_n(x) = \Big[\tfrac\kappa2(D - s)^2 + \tfrac q2 x^2\Big]\Delta t
 + \tfrac1\eta\log E\exp\big(\eta V_{n+1}(x + (a - s - \nu\bar\mu)\Delta t
 + \sigma\sqrt{\Delta t}\,Z + \mathbb 1_{\rm jump}Y)\big),$$

$s = \operatorname{clip}(D + \partial_x V_{n+1}/\kappa, 0, \bar s)$ (the minimiser of the
Hamiltonian, which $\eta$ does not change), $Z$ and the normal jump size $Y$ integrated by
Gauss-Hermite quadrature, one jump with probability $\nu\Delta t$ (the Poisson mean, so the
compensator and the variance rate are exact; $\nu\Delta t \le 1$), $V_{n+1}$ interpolated
by four-point (cubic) Lagrange interpolation ($\eta = 0$: the expectation itself). The scheme
is consistent, its error $O(\Delta t + h^4/\Delta t)$ (a linear interpolation would leave
$O(h^2/\Delta t)$, which does not vanish when $h$ and $\Delta t$ are refined together).

Why a grid and not a policy gradient: each station's state is one-dimensional and the
stations decouple, so the grid is exact up to discretisation, handles the bounds, the
exponential criterion and (for $\eta = 0$) the jumps without an ansatz, and is vectorised
over stations (one `vmap`); a policy gradient would only give an upper bound within a chosen
policy family. The value is certified against Monte Carlo
([`certainty_equivalent`][mftg_jax.dispatch.certainty_equivalent]) and, with wide bounds,
against the Riccati closed form.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float
import numpy as np

from ._matching import MatchingProblem
from ._risk_riccati import check_jumps


class HJBGrid(eqx.Module):
    """Discretisation of [`solve_hjb`][mftg_jax.dispatch.solve_hjb].

    **Arguments:**

    - `n_x`: grid points in the state ($\\ge 3$); `n_t`: time steps ($\\ge 1$).
    - `half_width`: half-width of the state grid around $[\\min(x_0, 0), \\max(x_0, 0)]$
      (default: the uncontrolled drift $|a - D|$ over the horizon plus 6 noise standard
      deviations).
    - `n_quad`: Gauss-Hermite nodes for the Brownian and the jump-size integrals.
    """

    n_x: int = eqx.field(static=True, default=401)
    n_t: int = eqx.field(static=True, default=400)
    half_width: float | None = eqx.field(static=True, default=None)
    n_quad: int = eqx.field(static=True, default=5)

    def __check_init__(self):
        if self.n_x < 3:
            raise ValueError(f"grid.n_x must be >= 3, got {self.n_x}")
        if self.n_t < 1:
            raise ValueError(f"grid.n_t must be >= 1, got {self.n_t}")
        if self.n_quad < 1:
            raise ValueError(f"grid.n_quad must be >= 1, got {self.n_quad}")
        if self.half_width is not None and not self.half_width > 0:
            raise ValueError(f"grid.half_width must be > 0, got {self.half_width}")


class HJBSolution(eqx.Module):
    r"""The grid value $V(t_0, \cdot)$ and the feedback $s_n(x)$ of every step.

    **Fields:** `problem`, `x` (grid of $x = e - \bar e$ per station, shape `(n, n_x)`),
    `value0` ($V(t_0, x)$, `(n, n_x)`), `policy` ($s_n(x)$, `(n, n_t, n_x)`), `dt`.
    """

    problem: MatchingProblem
    x: Float[Array, "n nx"]
    value0: Float[Array, "n nx"]
    policy: Float[Array, "n nt nx"]
    dt: Float[Array, ""]

    def value(self, e: Float[ArrayLike, " n"]) -> Float[Array, " n"]:
        r"""$V(t_0, e)$ per station (cubic interpolation on the grid)."""
        x = jnp.asarray(e) - self.problem.target
        return jax.vmap(_cubic)(x, self.x, self.value0)

    def control(self, t: ArrayLike, e: Float[ArrayLike, "... n"]) -> Float[Array, "... n"]:
        r"""$s(t, e)$: the step's feedback at the step containing $t$, interpolated in $x$."""
        n_t = self.policy.shape[1]
        k = jnp.clip(jnp.floor((t - self.problem.t0) / self.dt + 1e-9), 0, n_t - 1).astype(int)
        e = jnp.asarray(e)
        x = e - self.problem.target.reshape((1,) * (e.ndim - 1) + (-1,))
        pol = self.policy[:, k, :]
        flat = x.reshape(-1, self.problem.n)
        out = jax.vmap(jax.vmap(jnp.interp), in_axes=(0, None, None))(flat, self.x, pol)
        return out.reshape(x.shape)


def _cubic(pts, x, V):
    # Four-point Lagrange interpolation on the uniform grid (exact for cubics). Points
    # beyond the grid are projected onto its ends: extrapolating a polynomial through the
    # exponential criterion is unstable.
    h = x[1] - x[0]
    u = jnp.clip((pts - x[0]) / h, 0.0, x.shape[0] - 1.0)
    i = jnp.clip(jnp.floor(u), 1, x.shape[0] - 3).astype(int)
    t = u - i
    w = (
        -t * (t - 1) * (t - 2) / 6,
        (t + 1) * (t - 1) * (t - 2) / 2,
        -(t + 1) * t * (t - 2) / 2,
        (t + 1) * t * (t - 1) / 6,
    )
    return sum(wk * V[i + k - 1] for k, wk in enumerate(w))


def _station(p, x, n_t, z, wz, dt, nu, jm, js):
    # p: per-station scalars (eta, a, D, kappa, sbar, sigma, q, qT); x: its grid.
    eta, a, D, kappa, sbar, sigma, q, qT = p
    h = x[1] - x[0]
    pj = jnp.minimum(nu * dt, 1.0)
    eta_s = jnp.where(eta > 0, eta, 1.0)

    def expect(V, pts, w):
        vals = _cubic(pts, x, V)
        risk = jax.nn.logsumexp(eta * vals, axis=-1, b=w[None, :]) / eta_s
        return jnp.where(eta > 0, risk, jnp.sum(w[None, :] * vals, axis=-1))

    def step(V, _):
        Vx = jnp.gradient(V, h)
        s = jnp.clip(D + Vx / kappa, 0.0, sbar)
        base = x + (a - s - nu * jm) * dt
        pts = base[:, None] + sigma * jnp.sqrt(dt) * z[None, :]
        jump = (pts[:, :, None] + jm + js * z[None, None, :]).reshape(x.shape[0], -1)
        both = jnp.concatenate([pts, jump], axis=1)
        w = jnp.concatenate([(1 - pj) * wz, pj * (wz[:, None] * wz[None, :]).reshape(-1)])
        run = (0.5 * kappa * (D - s) ** 2 + 0.5 * q * x * x) * dt
        return run + expect(V, both, w), s

    V1 = 0.5 * qT * x * x
    V0, pol = jax.lax.scan(step, V1, None, length=n_t, reverse=True)
    return V0, pol


@eqx.filter_jit
def _solve(problem: MatchingProblem, grid: HJBGrid, x):
    z, w = np.polynomial.hermite_e.hermegauss(grid.n_quad)
    z = jnp.asarray(z)
    w = jnp.asarray(w / np.sqrt(2 * np.pi))
    dt = (problem.t1 - problem.t0) / grid.n_t
    jm, js = problem.jump_size_moments
    pr = problem
    params = (pr.eta, pr.arrival, pr.demand, pr.kappa, pr.capacity, pr.sigma, pr.q, pr.q_terminal)
    V0, pol = jax.vmap(_station, in_axes=(0, 0, None, None, None, None, None, None, None))(
        params, x, grid.n_t, z, w, dt, pr.jumps.intensity, jm, js
    )
    return V0, pol, dt


def solve_hjb(problem: MatchingProblem, grid: HJBGrid = HJBGrid()) -> HJBSolution:
    r"""Solve the bounded risk-sensitive matching problem on a state grid (module docstring),
    all stations at once.

    **Arguments:**

    - `problem`: a [`MatchingProblem`][mftg_jax.dispatch.MatchingProblem] ($s \in [0, \bar s]$).
    - `grid`: an [`HJBGrid`][mftg_jax.dispatch.HJBGrid].

    **Raises:** `ValueError` for jumps with some $\eta_u > 0$ (an infinite criterion: see
    [`solve_riccati`][mftg_jax.dispatch.solve_riccati]).

    **Returns:** an [`HJBSolution`][mftg_jax.dispatch.HJBSolution].
    """
    check_jumps(problem)
    T = problem.t1 - problem.t0
    if float(problem.jumps.intensity * T / grid.n_t) > 1:
        raise ValueError(
            f"grid.n_t must be >= intensity x horizon ({float(problem.jumps.intensity * T):g}) "
            "so that at most one jump per step is likely"
        )
    x0 = problem.e0 - problem.target
    if grid.half_width is None:
        jm, js = problem.jump_size_moments
        drift = jnp.abs(problem.arrival - problem.demand) * T
        noise = jnp.sqrt(problem.variance_rate * T) + jnp.abs(jm) + 3 * js
        w = drift + 6 * noise + 1e-3
    else:
        w = jnp.full(problem.n, grid.half_width)
    lo = jnp.minimum(x0, 0.0) - w
    hi = jnp.maximum(x0, 0.0) + w
    x = lo[:, None] + (hi - lo)[:, None] * jnp.linspace(0.0, 1.0, grid.n_x)[None, :]
    V0, pol, dt = _solve(problem, grid, x)
    if not np.all(np.isfinite(np.asarray(V0))):
        raise ValueError("solve_hjb: the grid value is not finite (exp(eta L) overflows)")
    return HJBSolution(problem, x, V0, pol, dt)
