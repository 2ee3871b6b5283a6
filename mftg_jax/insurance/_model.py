r"""The consumption-investment-insurance problem of the slides, equations (12)-(13)
(docs/insurance.md), as validated modules.

An agent with wealth $s$ in regime $j$ (a Markov chain with generator $G$, the common noise
$\bar s$) consumes $u^c = c\,s$, holds $u^I_k = \pi_k s$ in $d$ energy assets and buys cover
$u^{ins} = I\,s$ against the loss $L = l_j s$ of a Poisson process of intensity $\bar\lambda_j$
at the premium rate $\bar\lambda_j(1 + \theta_j)u^{ins}$:

$$\frac{ds}{s_-} = \big[r_j + \pi\cdot(\hat\mu_j + \mathrm{Drift}(t) - r_j) - c
 - \bar\lambda_j(1+\theta_j)I\big]dt + \pi\cdot dR^{noise} - (l_j - I)\,dN^{(\sim)},$$

$$\sup\ E\Big[\int_{t_0}^{t_1} e^{-\lambda t}\log u^c\,dt + b_j e^{-\lambda t_1}\log s(t_1)\Big]
 - q\,e^{-\lambda t_1}\mathrm{Var}\,s(t_1).$$
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np

from .._validation import check_field, is_concrete
from ..tracking import TrackingGame

#: Conventions for the loss term: against the compensated measure (the slides' rule) or
#: against the Poisson measure itself.
CONVENTIONS = ("compensated", "poisson")


def _vector(x) -> Array:
    return jnp.atleast_1d(jnp.asarray(x, dtype=float))


def _matrix(x) -> Array:
    return jnp.atleast_2d(jnp.asarray(x, dtype=float))


def _float(x) -> Array:
    return jnp.asarray(x, dtype=float)


class Regimes(eqx.Module):
    r"""The regime chain $\bar s$ and the regime-dependent coefficients, $m$ regimes.

    **Arguments:**

    - `generator`: $G$, shape `(m, m)`, off-diagonal $\ge 0$, rows summing to 0.
    - `riskless_rate`: $r_j = \kappa_0(r_0(j) + \hat\mu_0(j))$, shape `(m,)`, finite.
    - `asset_premium`: $\hat\mu_{jk}$ added to the assets' drift, shape `(m, d)`, finite.
    - `loss_intensity`: $\bar\lambda_j \ge 0$, shape `(m,)`.
    - `loss_fraction`: $l_j \in [0, 1)$, the loss $L = l_j s$, shape `(m,)`.
    - `loading`: $\theta_j > -1$, the premium loading, shape `(m,)`.
    - `bequest`: $b_j > 0$, the weight of $e^{-\lambda t_1}\log s(t_1)$, shape `(m,)`
      (not in the slides; with $b = 0$ the agent consumes all wealth by $t_1$ and the
      variance penalty is void, docs/insurance.md).
    """

    generator: Float[Array, "m m"] = eqx.field(converter=_matrix)
    riskless_rate: Float[Array, " m"] = eqx.field(converter=_vector)
    asset_premium: Float[Array, "m d"] = eqx.field(converter=_matrix)
    loss_intensity: Float[Array, " m"] = eqx.field(converter=_vector)
    loss_fraction: Float[Array, " m"] = eqx.field(converter=_vector)
    loading: Float[Array, " m"] = eqx.field(converter=_vector)
    bequest: Float[Array, " m"] = eqx.field(converter=_vector)

    def __check_init__(self):
        m = self.generator.shape[-1]
        if self.generator.shape != (m, m):
            raise ValueError(f"regimes.generator must be square (m, m), got {self.generator.shape}")
        for name in ("riskless_rate", "loss_intensity", "loss_fraction", "loading", "bequest"):
            v = getattr(self, name)
            if v.shape != (m,):
                raise ValueError(
                    f"regimes.{name} must have one entry per regime (m = {m}), got {v.shape}"
                )
        if self.asset_premium.shape[0] != m:
            raise ValueError(
                f"regimes.asset_premium must have shape (m = {m}, d), got "
                f"{self.asset_premium.shape}"
            )
        check_field("regimes.generator", self.generator, "finite")
        if is_concrete(self.generator):
            g = np.asarray(self.generator)
            off = g - np.diag(np.diag(g))
            if np.any(off < 0):
                raise ValueError(
                    f"regimes.generator must have off-diagonal entries >= 0, got {g.tolist()}"
                )
            if np.any(np.abs(g.sum(-1)) > 1e-10 * (1 + np.abs(g).sum(-1))):
                raise ValueError(f"regimes.generator rows must sum to 0, got {g.sum(-1).tolist()}")
        check_field("regimes.riskless_rate", self.riskless_rate, "finite")
        check_field("regimes.asset_premium", self.asset_premium, "finite")
        check_field("regimes.loss_intensity", self.loss_intensity, ">= 0", lambda v: v >= 0)
        check_field(
            "regimes.loss_fraction", self.loss_fraction, "in [0, 1)", lambda v: (v >= 0) & (v < 1)
        )
        check_field("regimes.loading", self.loading, "> -1", lambda v: v > -1)
        check_field("regimes.bequest", self.bequest, "> 0", lambda v: v > 0)

    @property
    def m(self) -> int:
        """Number of regimes."""
        return self.generator.shape[-1]


class InsuranceModel(eqx.Module):
    r"""The consumption-investment-insurance problem (module docstring), validated.

    **Arguments:**

    - `assets`: a decoupled [`TrackingGame`][mftg_jax.tracking.TrackingGame]; its prices are
      the assets' log-prices under the regulated equilibrium, its horizon is the horizon.
    - `regimes`: the [`Regimes`][mftg_jax.insurance.Regimes]; `asset_premium` must have
      `d = assets.n` columns.
    - `discount`: $\lambda \ge 0$.
    - `q`: the mean-field-type penalty weight $q \ge 0$ of
      $-q e^{-\lambda t_1}[s(t_1) - \hat s(t_1)]^2$.
    - `s0 > 0`: initial wealth; `regime0`: initial regime in `0..m-1`.
    - `convention`: `"compensated"` (the slides' insurance rule) or `"poisson"`.
    - `n_grid`: time nodes of the closed forms' grid (static, $\ge 2$).
    - `n_quadrature`: Gauss nodes of the jump-size expectations (static, $\ge 1$).
    """

    assets: TrackingGame
    regimes: Regimes
    discount: Float[Array, ""] = eqx.field(converter=_float, default=0.0)
    q: Float[Array, ""] = eqx.field(converter=_float, default=0.0)
    s0: Float[Array, ""] = eqx.field(converter=_float, default=1.0)
    regime0: int = eqx.field(static=True, default=0)
    convention: str = eqx.field(static=True, default="compensated")
    n_grid: int = eqx.field(static=True, default=33)
    n_quadrature: int = eqx.field(static=True, default=24)

    def __check_init__(self):
        if self.assets.interacting:
            raise ValueError("assets must be a decoupled tracking game (assets.cross = 0)")
        d = self.assets.n
        if self.regimes.asset_premium.shape[-1] != d:
            raise ValueError(
                f"regimes.asset_premium must have d = {d} columns (one per asset), got "
                f"{self.regimes.asset_premium.shape}"
            )
        check_field("discount", self.discount, ">= 0", lambda v: v >= 0)
        check_field("q", self.q, ">= 0", lambda v: v >= 0)
        check_field("s0", self.s0, "> 0", lambda v: v > 0)
        if not 0 <= int(self.regime0) < self.regimes.m:
            raise ValueError(f"regime0 must be in 0..{self.regimes.m - 1}, got {self.regime0}")
        if self.convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {self.convention!r}")
        if int(self.n_grid) < 2:
            raise ValueError(f"n_grid must be >= 2, got {self.n_grid}")
        if int(self.n_quadrature) < 1:
            raise ValueError(f"n_quadrature must be >= 1, got {self.n_quadrature}")

    @property
    def d(self) -> int:
        """Number of assets."""
        return self.assets.n

    @property
    def m(self) -> int:
        """Number of regimes."""
        return self.regimes.m

    @property
    def t0(self) -> Array:
        return self.assets.t0

    @property
    def t1(self) -> Array:
        return self.assets.t1
