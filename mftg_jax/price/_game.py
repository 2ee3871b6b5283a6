r"""The price game of the slides: market, producers and noise as `eqx.Module`s.

$$dp = \eta\,(a(t) - \textstyle\sum_j u_j - p)\,dt + \sigma\,dB + \int\mu\,\tilde N(dt,d\theta)
        + \sigma_o\,dB_o + \int\mu_o\,\tilde N_o(dt,d\theta)$$

Producer $i$ maximises
$E[-\tfrac q2 e^{-\lambda_i t_1}(p(t_1)-\hat p(t_1))^2
+ \int_{t_0}^{t_1} e^{-\lambda_i t}(\hat p u_i - c_i u_i - \tfrac{r_i}2 u_i^2
- \tfrac{\bar r_i}2 \hat u_i^2)\,dt]$ (slides, "Price dynamics"; docs/model.md).
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np

from .._custom_types import PerProducer, Scalar
from .._noise._jumps import CompoundPoisson, no_jumps
from .._validation import check_instance, is_concrete, real, reals


class DemandIntercept(eqx.Module):
    r"""Demand intercept $a(t)$, a constant or a seasonal Fourier series.

    $$a(t) = \bar a + \sum_{k=1}^K c_k\cos(2\pi k t/T) + s_k\sin(2\pi k t/T)$$

    **Arguments:**

    - `mean`: the level $\bar a$.
    - `period`: the period $T > 0$ (same time unit as the game's horizon).
    - `cos`, `sin`: the harmonic amplitudes $c_k$, $s_k$, $k = 1..K$ (same length; empty for a
      constant intercept).
    """

    mean: Scalar = eqx.field(converter=real("a.mean"))
    period: Scalar = eqx.field(converter=real("a.period", "> 0", lambda v: v > 0), default=1.0)
    cos: Float[Array, " K"] = eqx.field(converter=reals("a.cos"), default=())
    sin: Float[Array, " K"] = eqx.field(converter=reals("a.sin"), default=())

    def __check_init__(self):
        if self.cos.shape != self.sin.shape:
            raise ValueError(
                f"a.cos and a.sin must have the same length, got {self.cos.shape[0]} "
                f"and {self.sin.shape[0]}"
            )

    @property
    def is_constant(self) -> bool:
        return self.cos.shape[-1] == 0

    def __call__(self, t) -> Array:
        """$a(t)$."""
        if self.is_constant:
            return self.mean + 0.0 * t
        k = jnp.arange(1, self.cos.shape[-1] + 1)
        w = 2 * jnp.pi * k * t / self.period
        return self.mean + jnp.sum(self.cos * jnp.cos(w) + self.sin * jnp.sin(w), axis=-1)


TERMINALS = ("penalty", "stationary")


def _intercept(a) -> DemandIntercept:
    if isinstance(a, DemandIntercept):
        return a
    return DemandIntercept(mean=a)


class Market(eqx.Module):
    r"""The sticky-price market and its horizon.

    **Arguments:**

    - `eta`: price adjustment speed $\eta > 0$.
    - `a`: demand intercept, a number or a [`DemandIntercept`][].
    - `q`: weight of the terminal penalty $-\tfrac q2 (p(t_1)-\hat p(t_1))^2$ (any real; a
      negative `q` rewards terminal deviation and can make the Riccati solution explode).
      Not used with `terminal="stationary"`.
    - `t0`, `t1`: the horizon, $t_0 < t_1$.
    - `p0`: initial price; `phat0`: initial conditional mean (defaults to `p0`).
    - `terminal`: the terminal values of the Riccati system (a static setting).
      `"penalty"` (default): $(\alpha, \beta, \gamma, \delta)(t_1) = (-q, 0, 0, 0)$, the
      finite-horizon game of the slides. `"stationary"`: the stationary values
      $(0, \beta^s, \gamma^s(t_1), 0)$
      ([`terminal_values`][mftg_jax.price.terminal_values]), so that the equilibrium is the
      stationary (for a seasonal intercept, periodic) one on the whole horizon, with no
      horizon effect (docs/model.md, "Stationary terminal values").
    """

    eta: Scalar = eqx.field(converter=real("eta", "> 0", lambda v: v > 0))
    a: DemandIntercept = eqx.field(converter=_intercept)
    q: Scalar = eqx.field(converter=real("q"))
    t0: Scalar = eqx.field(converter=real("t0"))
    t1: Scalar = eqx.field(converter=real("t1"))
    p0: Scalar = eqx.field(converter=real("p0"))
    phat0: Scalar = eqx.field(converter=real("phat0"))
    terminal: str = eqx.field(static=True)

    def __init__(self, eta, a, q, t0, t1, p0, phat0=None, terminal="penalty"):
        self.eta = eta
        self.a = a
        self.q = q
        self.t0 = t0
        self.t1 = t1
        self.p0 = p0
        self.phat0 = p0 if phat0 is None else phat0
        self.terminal = terminal

    def __check_init__(self):
        if not isinstance(self.terminal, str) or self.terminal not in TERMINALS:
            raise ValueError(
                f"terminal must be one of {', '.join(map(repr, TERMINALS))}, got {self.terminal!r}"
            )
        if is_concrete(self.t0, self.t1):
            t0, t1 = np.asarray(self.t0), np.asarray(self.t1)
            if not np.all(t1 > t0):
                raise ValueError(f"t1 must be > t0, got t0={t0}, t1={t1}")


class Producers(eqx.Module):
    r"""The $n \ge 1$ producers' cost and discount parameters.

    Producer $i$'s running cost is $c_i u_i + \tfrac{r_i}2 u_i^2 + \tfrac{\bar r_i}2\hat u_i^2$,
    discounted at rate $\lambda_i$.

    **Arguments:**

    - `c`: linear cost $c_i$ (any real).
    - `r`: quadratic cost $r_i > 0$.
    - `rbar`: quadratic cost on the conditional mean output, with $r_i + \bar r_i > 0$.
    - `lam`: discount rate $\lambda_i \ge 0$.
    """

    c: PerProducer = eqx.field(converter=reals("producers.c"))
    r: PerProducer = eqx.field(converter=reals("producers.r", "> 0", lambda v: v > 0))
    rbar: PerProducer = eqx.field(converter=reals("producers.rbar"))
    lam: PerProducer = eqx.field(converter=reals("producers.lam", ">= 0", lambda v: v >= 0))

    def __check_init__(self):
        shapes = {k: getattr(self, k).shape for k in ("c", "r", "rbar", "lam")}
        if len(set(shapes.values())) != 1:
            raise ValueError(
                "producers.c, r, rbar and lam must have the same length, got "
                + ", ".join(f"{k}: {s[-1] if s else 0}" for k, s in shapes.items())
            )
        if self.c.shape[-1] < 1:
            raise ValueError("producers must have at least one producer (n >= 1)")
        if is_concrete(self.r, self.rbar):
            total = np.asarray(self.r) + np.asarray(self.rbar)
            if not np.all(total > 0):
                bad = np.flatnonzero(total <= 0)
                raise ValueError(
                    f"producers.rbar must satisfy r + rbar > 0, violated for producer(s) "
                    f"{bad.tolist()} (r + rbar = {total[bad].tolist()})"
                )

    @property
    def n(self) -> int:
        return self.c.shape[-1]

    @property
    def R(self) -> PerProducer:
        """$R_i = r_i + \\bar r_i$."""
        return self.r + self.rbar


class Noise(eqx.Module):
    r"""Idiosyncratic and common noise of the price.

    **Arguments:**

    - `sigma`: idiosyncratic Brownian volatility $\sigma \ge 0$.
    - `sigma_o`: common-noise Brownian volatility $\sigma_o \ge 0$.
    - `jumps`: idiosyncratic compensated compound-Poisson jumps (default: none).
    - `common_jumps`: common compensated compound-Poisson jumps (default: none).
    """

    sigma: Scalar = eqx.field(converter=real("noise.sigma", ">= 0", lambda v: v >= 0), default=0.0)
    sigma_o: Scalar = eqx.field(
        converter=real("noise.sigma_o", ">= 0", lambda v: v >= 0), default=0.0
    )
    jumps: CompoundPoisson = eqx.field(default_factory=lambda: no_jumps())
    common_jumps: CompoundPoisson = eqx.field(default_factory=lambda: no_jumps())

    def __check_init__(self):
        check_instance("noise.jumps", self.jumps, CompoundPoisson)
        check_instance("noise.common_jumps", self.common_jumps, CompoundPoisson)

    @property
    def idiosyncratic_variance_rate(self) -> Scalar:
        r"""$\sigma^2 + \int\mu^2\,d\nu$."""
        return self.sigma**2 + self.jumps.variance_rate

    @property
    def common_variance_rate(self) -> Scalar:
        r"""$\sigma_o^2 + \int\mu_o^2\,d\nu_o$."""
        return self.sigma_o**2 + self.common_jumps.variance_rate


class PriceGame(eqx.Module):
    """The producers' price game: a market, its producers and the noise.

    **Arguments:**

    - `market`: a [`Market`][].
    - `producers`: a [`Producers`][].
    - `noise`: a [`Noise`][] (default: deterministic).
    """

    market: Market
    producers: Producers
    noise: Noise = eqx.field(default_factory=Noise)

    def __check_init__(self):
        check_instance("PriceGame(market=...)", self.market, Market)
        check_instance("PriceGame(producers=...)", self.producers, Producers)
        check_instance("PriceGame(noise=...)", self.noise, Noise)

    @property
    def n(self) -> int:
        return self.producers.n
