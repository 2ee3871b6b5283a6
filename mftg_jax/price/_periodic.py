r"""The stationary (periodic, for a seasonal intercept) Riccati values used as terminal values.

At the stationary $\beta^s$ (and $K = \sum_j k_j$, [`stationary_values`][]) the
$\gamma$-equations are linear with constant coefficients,

$$\dot\gamma = L\gamma - \eta\beta^s a(t) + f,\qquad
  L = \mathrm{diag}(\lambda_i + \eta + \eta K + \eta^2\beta^s_i/R_i) - \eta^2\beta^s(1/R)^\top,$$

$f_i = k_i c_i - \eta\beta^s_i\sum_{j\ne i} c_j/R_j$. For
$a(t) = \bar a + \mathrm{Re}\sum_h A_h e^{i\omega_h t}$, $A_h = c_h - i s_h$,
$\omega_h = 2\pi h/T$, its periodic solution is

$$\gamma(t) = \bar\gamma + \mathrm{Re}\sum_h \Gamma_h e^{i\omega_h t},\qquad
  \Gamma_h = (L - i\omega_h)^{-1}\eta\beta^s A_h,$$

$\bar\gamma$ the stationary $\gamma$ of the mean level $\bar a$. The eigenvalues of $L$ have
positive real parts, so integrated backwards every solution tends to this one: it is the
attracting (backward) orbit, as $\beta^s$ is the attracting root of the $\beta$-equations and
$\alpha = 0$ that of the $\alpha$-equations (docs/model.md, "Stationary terminal values").
"""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._linalg import small_solve
from ._game import PriceGame
from ._stationary import stationary_values


def gamma_operator(game: PriceGame, beta, K) -> Array:
    r"""$L = \mathrm{diag}(\lambda_i + \eta + \eta K + \eta^2\beta_i/R_i)
    - \eta^2\beta(1/R)^\top$ of the linear $\gamma$-equations (module docstring).

    Built from the off-diagonal coupling only: the diagonal's own term
    $\eta^2\beta_i/R_i$ cancels exactly, and adding then subtracting it loses digits when
    $R$ is tiny.

    **Arguments:** `game`, a [`PriceGame`][]; `beta`, per-producer $\beta$; `K`,
    $\sum_j k_j$.

    **Returns:** `(n, n)` array.
    """
    eta = game.market.eta
    R = game.producers.R
    n = beta.shape[0]
    off = 1 - jnp.eye(n, dtype=beta.dtype)
    L = -(eta**2) * (beta[:, None] / R[None, :]) * off
    return L + jnp.diag(game.producers.lam + eta + eta * K)


def periodic_gamma(game: PriceGame, t: ArrayLike) -> Array:
    r"""$\gamma(t)$ on the stationary periodic orbit (module docstring).

    **Arguments:**

    - `game`: a [`PriceGame`][] (its horizon, $q$ and initial price are not used).
    - `t`: times, any shape `S`.

    **Returns:** $\gamma(t)$, shape `S + (n,)`; the stationary $\gamma$ for a constant
    intercept.
    """
    sv = stationary_values(game)
    t = jnp.asarray(t, dtype=sv.gamma.dtype)
    gamma = jnp.broadcast_to(sv.gamma, t.shape + sv.gamma.shape)
    a = game.market.a
    if a.is_constant:
        return gamma
    eta = game.market.eta
    L = gamma_operator(game, sv.beta, jnp.sum(sv.k))
    n = L.shape[0]
    H = a.cos.shape[-1]
    omega = 2 * jnp.pi * jnp.arange(1, H + 1, dtype=gamma.dtype) / a.period
    cdt = jnp.result_type(L.dtype, jnp.complex64)
    A = (a.cos - 1j * a.sin).astype(cdt)
    lhs = L.astype(cdt)[None] - 1j * omega[:, None, None] * jnp.eye(n, dtype=cdt)[None]
    rhs = (eta * sv.beta).astype(cdt)[None, :] * A[:, None]
    G = small_solve(lhs, rhs)  # (H, n)
    w = omega.astype(cdt).reshape((1,) * t.ndim + (H,))
    phase = jnp.exp(1j * w * t[..., None].astype(cdt))  # S + (H,)
    wave = jnp.real(jnp.sum(phase[..., :, None] * G.reshape((1,) * t.ndim + G.shape), axis=-2))
    return gamma + wave
