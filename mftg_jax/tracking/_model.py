r"""The regulated-price (tracking) game of the slides, "A more stable and regulated price",
equation (11), with the control cost that makes it well posed (docs/tracking.md).

Assets $i = 1..n$ (tokens) with prices

$$dp_i = \eta_i\big[D_i(t) + \textstyle\sum_j A_{ij}\hat p_j - p_i - (S_i(t) + u_i)\big]dt
  + \sigma_i\,dB_i + dJ_i + \sigma_o\,dB_o + dJ_o,$$

$\hat p_i = E[p_i \mid \mathcal F^{B_o, J_o}_t]$, target
$p_{tp,i}(t) = c_{i0} + \sum_{k=1,2} c_{ik}\cos(2\pi kt) + \hat c_{ik}\sin(2\pi kt)$ in the band
$[\underline p_i, \bar p_i]$, and issuer $i$ minimising

$$L_i = E\Big[q^T_i(p_i - \hat p_i)^2 + (q^T_i + \bar q^T_i)(\hat p_i - p_{tp,i})^2\Big]_{t_1}
 + E\int_{t_0}^{t_1} q_i(p_i - \hat p_i)^2 + (q_i + \bar q_i)(\hat p_i - p_{tp,i})^2
 + r_i u_i^2 + \bar r_i\hat u_i^2\,dt.$$
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np

from .._noise._jumps import CompoundPoisson, no_jumps
from .._validation import check_field, is_concrete


def _float(x) -> Array:
    return jnp.asarray(x, dtype=float)


def _vector(x) -> Array:
    return jnp.atleast_1d(jnp.asarray(x, dtype=float))


def _harmonics(x) -> Array:
    a = jnp.asarray(x, dtype=float)
    return a.reshape(a.shape + (0,)) if a.size == 0 and a.ndim < 2 else jnp.atleast_2d(a)


class Fourier(eqx.Module):
    r"""A deterministic profile per asset, $f_i(t) = m_i + \sum_{k=1}^H a_{ik}\cos(2\pi kt)
    + b_{ik}\sin(2\pi kt)$ (period 1, as the slides' target).

    **Arguments:**

    - `mean`: $m_i$, shape `(n,)`.
    - `cos`, `sin`: $a_{ik}$, $b_{ik}$, shape `(n, H)` (`H = 0`: a constant profile).
    """

    mean: Float[Array, " n"] = eqx.field(converter=_vector)
    cos: Float[Array, "n H"] = eqx.field(converter=_harmonics)
    sin: Float[Array, "n H"] = eqx.field(converter=_harmonics)

    def __check_init__(self):
        n = self.mean.shape[-1]
        for name, v in (("cos", self.cos), ("sin", self.sin)):
            if v.ndim < 2 or v.shape[-2] != n:
                raise ValueError(f"Fourier.{name} must have shape (n={n}, H), got {v.shape}")
        if self.cos.shape != self.sin.shape:
            raise ValueError(
                f"Fourier.cos and Fourier.sin must have one shape, got {self.cos.shape} "
                f"and {self.sin.shape}"
            )
        for name, v in (("mean", self.mean), ("cos", self.cos), ("sin", self.sin)):
            check_field(f"Fourier.{name}", v, "finite")

    @classmethod
    def constant(cls, value, n: int | None = None) -> "Fourier":
        """A constant profile (`value` broadcast to `n` assets)."""
        v = jnp.atleast_1d(jnp.asarray(value, dtype=float))
        if n is not None:
            v = jnp.broadcast_to(v, (n,))
        return cls(v, jnp.zeros((v.shape[0], 0)), jnp.zeros((v.shape[0], 0)))

    @property
    def harmonics(self) -> int:
        return self.cos.shape[-1]

    def _phases(self, t):
        k = jnp.arange(1, self.harmonics + 1, dtype=self.mean.dtype)
        w = 2 * jnp.pi * k * jnp.asarray(t, self.mean.dtype)
        return jnp.cos(w), jnp.sin(w)

    def __call__(self, t) -> Float[Array, " n"]:
        """$f(t)$, shape `(n,)` (for a scalar `t`)."""
        c, s = self._phases(t)
        return self.mean + self.cos @ c + self.sin @ s

    def derivative(self, t) -> Float[Array, " n"]:
        """$f'(t)$, shape `(n,)`."""
        c, s = self._phases(t)
        k = 2 * jnp.pi * jnp.arange(1, self.harmonics + 1, dtype=self.mean.dtype)
        return self.sin @ (k * c) - self.cos @ (k * s)


def slides_target(lo, hi) -> Fourier:
    r"""The slides' example target for the band $[\underline p, \bar p]$:
    $c_0 = (\underline p + \bar p)/2$, $c_1 = w/100$, $\hat c_1 = w/150$, $c_2 = w/200$,
    $\hat c_2 = w/250$ with $w = \bar p - \underline p$ ("Construction of a regulated price").

    **Arguments:** `lo`, `hi`: the band's ends, shape `(n,)`.

    **Returns:** the target as a [`Fourier`][mftg_jax.tracking.Fourier] with `H = 2`.
    """
    lo, hi = _vector(lo), _vector(hi)
    w = hi - lo
    cos = jnp.stack([w / 100, w / 200], -1)
    sin = jnp.stack([w / 150, w / 250], -1)
    return Fourier((lo + hi) / 2, cos, sin)


class Band(eqx.Module):
    r"""The regulation band $[\underline p_i, \bar p_i]$ and the target inside it.

    **Arguments:**

    - `lo`, `hi`: the band, shape `(n,)`, with `lo < hi`.
    - `target`: the target $p_{tp}$ (a [`Fourier`][mftg_jax.tracking.Fourier]); default the
      slides' example coefficients ([`slides_target`][mftg_jax.tracking.slides_target]).
    """

    lo: Float[Array, " n"] = eqx.field(converter=_vector)
    hi: Float[Array, " n"] = eqx.field(converter=_vector)
    target: Fourier = None  # type: ignore[assignment]

    def __post_init__(self):
        if self.target is None:
            object.__setattr__(self, "target", slides_target(self.lo, self.hi))

    def __check_init__(self):
        if self.lo.shape != self.hi.shape:
            raise ValueError(
                f"band lo and hi must have one shape, got {self.lo.shape}, {self.hi.shape}"
            )
        check_field("band.lo", self.lo, "finite")
        check_field("band.hi", self.hi, "finite")
        if is_concrete(self.lo, self.hi) and not np.all(np.asarray(self.hi > self.lo)):
            raise ValueError(
                f"band must have lo < hi for every asset, got lo = {np.asarray(self.lo)}, "
                f"hi = {np.asarray(self.hi)}"
            )
        if self.target.mean.shape != self.lo.shape:
            raise ValueError(
                f"band.target must have {self.lo.shape[0]} assets, got {self.target.mean.shape[0]}"
            )


class Costs(eqx.Module):
    r"""Cost weights of equation (11) plus the control cost (module docstring), shape `(n,)`.

    **Arguments:**

    - `q`, `qbar`: running weights of $(p-\hat p)^2$ and (with `q`) of
      $(\hat p-p_{tp})^2$: $q \ge 0$, $q + \bar q \ge 0$.
    - `q_terminal`, `qbar_terminal`: the same at $t_1$ ($\ge 0$ likewise).
    - `r`, `rbar`: control weights of $u^2$ and $\hat u^2$: $r > 0$, $r + \bar r > 0$ (not in
      the slides; without them the infimum is not attained, docs/tracking.md).
    """

    q: Float[Array, " n"] = eqx.field(converter=_vector)
    qbar: Float[Array, " n"] = eqx.field(converter=_vector)
    q_terminal: Float[Array, " n"] = eqx.field(converter=_vector)
    qbar_terminal: Float[Array, " n"] = eqx.field(converter=_vector)
    r: Float[Array, " n"] = eqx.field(converter=_vector)
    rbar: Float[Array, " n"] = eqx.field(converter=_vector)

    def __check_init__(self):
        check_field("costs.q", self.q, ">= 0", lambda v: v >= 0)
        check_field("costs.q + costs.qbar", self.Q, ">= 0", lambda v: v >= 0)
        check_field("costs.q_terminal", self.q_terminal, ">= 0", lambda v: v >= 0)
        check_field(
            "costs.q_terminal + costs.qbar_terminal", self.Q_terminal, ">= 0", lambda v: v >= 0
        )
        check_field("costs.r", self.r, "> 0", lambda v: v > 0)
        check_field("costs.r + costs.rbar", self.R, "> 0", lambda v: v > 0)

    @property
    def Q(self) -> Array:
        """$q + \\bar q$, the weight of the mean's tracking error."""
        return self.q + self.qbar

    @property
    def Q_terminal(self) -> Array:
        return self.q_terminal + self.qbar_terminal

    @property
    def R(self) -> Array:
        """$r + \\bar r$, the weight of $\\hat u^2$."""
        return self.r + self.rbar


class Noise(eqx.Module):
    r"""Noise of the prices: $\sigma_i dB_i + dJ_i$ (independent across assets, one jump law)
    and the common $\sigma_o dB_o + dJ_o$ (the same increments for every asset).

    **Arguments:** `sigma (n,)` $\ge 0$; `jumps`, `common_jumps`:
    [`CompoundPoisson`][mftg_jax.CompoundPoisson] (default none); `sigma_o` $\ge 0$ scalar.
    """

    sigma: Float[Array, " n"] = eqx.field(converter=_vector)
    sigma_o: Float[Array, ""] = eqx.field(converter=_float, default=0.0)
    jumps: CompoundPoisson = eqx.field(default_factory=no_jumps)
    common_jumps: CompoundPoisson = eqx.field(default_factory=no_jumps)

    def __check_init__(self):
        check_field("noise.sigma", self.sigma, ">= 0", lambda v: v >= 0)
        check_field("noise.sigma_o", self.sigma_o, ">= 0", lambda v: v >= 0)

    @property
    def idiosyncratic_variance_rate(self) -> Array:
        """$\\sigma_i^2 + \\nu E Y^2$, shape `(n,)`."""
        return self.sigma**2 + self.jumps.variance_rate

    @property
    def common_variance_rate(self) -> Array:
        """$\\sigma_o^2 + \\nu_o E Y_o^2$, a scalar."""
        return self.sigma_o**2 + self.common_jumps.variance_rate


class TrackingGame(eqx.Module):
    r"""The regulated-price game (module docstring), validated at construction.

    **Arguments:**

    - `eta`: adjustment speeds $\eta_i > 0$, shape `(n,)`.
    - `demand`, `supply`: $D_i(t)$, $S_i(t)$ ([`Fourier`][mftg_jax.tracking.Fourier]).
    - `band`: the [`Band`][mftg_jax.tracking.Band] with its target.
    - `costs`: the [`Costs`][mftg_jax.tracking.Costs].
    - `noise`: the [`Noise`][mftg_jax.tracking.Noise].
    - `p0`: initial prices (deterministic, so $\hat p(t_0) = p_0$), shape `(n,)`.
    - `t0 < t1`: the horizon.
    - `cross`: cross-price coefficients $A_{ij}$ of the demand on $\hat p_j$, shape `(n, n)`,
      zero diagonal; default zero (the issuers' problems decouple).
    """

    eta: Float[Array, " n"] = eqx.field(converter=_vector)
    demand: Fourier
    supply: Fourier
    band: Band
    costs: Costs
    noise: Noise
    p0: Float[Array, " n"] = eqx.field(converter=_vector)
    t0: Float[Array, ""] = eqx.field(converter=_float, default=0.0)
    t1: Float[Array, ""] = eqx.field(converter=_float, default=1.0)
    cross: Float[Array, "n n"] | None = None

    def __check_init__(self):
        n = self.eta.shape[-1]
        fields = dict(
            p0=self.p0,
            **{"band.lo": self.band.lo},
            **{
                "costs." + f: getattr(self.costs, f)
                for f in ("q", "qbar", "q_terminal", "qbar_terminal", "r", "rbar")
            },
            **{
                "noise.sigma": self.noise.sigma,
                "demand.mean": self.demand.mean,
                "supply.mean": self.supply.mean,
            },
        )
        for name, v in fields.items():
            if v.shape[-1] != n:
                raise ValueError(f"{name} must have one entry per asset (n = {n}), got {v.shape}")
        check_field("eta", self.eta, "> 0", lambda v: v > 0)
        check_field("p0", self.p0, "finite")
        check_field("t0", self.t0, "finite")
        check_field("t1", self.t1, "finite")
        if is_concrete(self.t0, self.t1) and not float(self.t1) > float(self.t0):
            raise ValueError(f"t1 must be > t0 = {float(self.t0):g}, got {float(self.t1):g}")
        if self.cross is not None:
            if self.cross.shape[-2:] != (n, n):
                raise ValueError(
                    f"cross must have shape (n, n) = ({n}, {n}), got {self.cross.shape}"
                )
            check_field("cross", self.cross, "finite")
            if is_concrete(self.cross) and np.any(np.diagonal(np.asarray(self.cross), 0, -2, -1)):
                raise ValueError("cross must have a zero diagonal (own price is in the drift)")

    @property
    def n(self) -> int:
        """Number of assets."""
        return self.eta.shape[-1]

    @property
    def interacting(self) -> bool:
        """Whether the demands depend on the other assets' prices (a game, not n problems)."""
        if self.cross is None:
            return False
        if not is_concrete(self.cross):
            return True
        return bool(np.any(np.asarray(self.cross) != 0))

    def cross_matrix(self) -> Array:
        """$A$ (zeros when `cross` is None), shape `(n, n)`."""
        if self.cross is None:
            return jnp.zeros((self.n, self.n), self.eta.dtype)
        return jnp.asarray(self.cross, float)

    def net_demand(self, t) -> Array:
        """$D_i(t) - S_i(t)$, shape `(n,)`."""
        return self.demand(t) - self.supply(t)

    def target(self, t) -> Array:
        """$p_{tp}(t)$, shape `(n,)`."""
        return self.band.target(t)


def target_range(game_or_band, t0=None, t1=None, n_grid: int = 4097):
    r"""Range of the target over $[t_0, t_1]$ and whether it stays inside the band.

    The extrema are taken on a grid of `n_grid` points, refined by one Newton step on
    $p_{tp}'$ at the grid's extremes (exact to ~1e-12 for the slides' targets).

    **Arguments:** a [`TrackingGame`][mftg_jax.tracking.TrackingGame] (its horizon) or a
    [`Band`][mftg_jax.tracking.Band] with `t0`, `t1` (default one period `[0, 1]`).

    **Returns:** `(target_min, target_max, inside_band)`, each `(n,)` (numpy).
    """
    if isinstance(game_or_band, TrackingGame):
        band = game_or_band.band
        t0 = game_or_band.t0 if t0 is None else t0
        t1 = game_or_band.t1 if t1 is None else t1
    else:
        band = game_or_band
        t0 = 0.0 if t0 is None else t0
        t1 = 1.0 if t1 is None else t1
    f = band.target
    ts = jnp.linspace(jnp.asarray(t0, float), jnp.asarray(t1, float), n_grid)
    vals = jax.vmap(f)(ts)  # (T, n)
    lo = float(t0)
    hi = float(t1)

    def refine(idx):
        t = ts[idx]
        d = jax.vmap(f.derivative)(t)  # (n, n): row per asset's time
        dd = jax.vmap(jax.jacfwd(f.derivative))(t)
        i = jnp.arange(f.mean.shape[0])
        step = d[i, i] / jnp.where(dd[i, i] == 0, 1.0, dd[i, i])
        tn = jnp.clip(t - step, lo, hi)
        v = jax.vmap(f)(tn)[i, i]
        return v

    vmin = jnp.minimum(jnp.min(vals, 0), refine(jnp.argmin(vals, 0)))
    vmax = jnp.maximum(jnp.max(vals, 0), refine(jnp.argmax(vals, 0)))
    inside = (vmin >= band.lo) & (vmax <= band.hi)
    return np.asarray(vmin), np.asarray(vmax), np.asarray(inside)
