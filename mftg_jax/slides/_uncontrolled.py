r"""The uncontrolled sticky price of the slides' Scenario 1, solved in closed form.

With no producer control and no noise the price follows the linear ODE

$$\dot p = s\,\big(a - D(t) - p\big), \qquad p(t_0) = p_0,$$

with adjustment speed $s$ (the game's $\eta$) and an exogenous demand profile $D(t)$. With the
net intercept $b(t) = a - D(t) = \bar b + \sum_k C_k\cos\omega_k t + S_k\sin\omega_k t$,
$\omega_k = 2\pi k/T$, the solution is

$$p(t) = p^*(t) + \big(p_0 - p^*(t_0)\big)e^{-s(t-t_0)},\qquad
  p^*(t) = \bar b + \sum_k \frac{s\,(sC_k - \omega_k S_k)\cos\omega_k t
                                 + s\,(sS_k + \omega_k C_k)\sin\omega_k t}{s^2 + \omega_k^2},$$

the periodic steady state $p^*$ plus a transient. $p^*$ lags $b$ by $\arctan(\omega_k/s)$
with gain $s/\sqrt{s^2+\omega_k^2}$: the faster the adjustment, the closer the price tracks
$a - D(t)$ (slides, "Simulation Results", Scenario 1: $t_1 = 1$, $p_0 = 170$, $a = 30$,
$D(t) = 30 + 20\sin(10\pi t)$, $s = 100$).
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._custom_types import Scalar
from .._validation import check_field, is_concrete
from ..price import DemandIntercept

SCENARIO1_SPEEDS = (1.0, 10.0, 100.0)


def _float(x) -> Array:
    return jnp.asarray(x, dtype=float)


class UncontrolledPrice(eqx.Module):
    r"""The uncontrolled price $\dot p = s(b(t) - p)$, $b(t) = a - D(t)$ (module docstring).

    **Arguments:**

    - `speed`: the adjustment speed $s > 0$.
    - `net_intercept`: $b(t) = a - D(t)$ as a [`DemandIntercept`][] (a constant or a Fourier
      series).
    - `t0`, `t1`: the horizon, $t_0 < t_1$.
    - `p0`: the initial price.

    Calling it at times `t` (any shape) returns $p(t)$ exactly.
    """

    speed: Scalar = eqx.field(converter=_float)
    net_intercept: DemandIntercept
    t0: Scalar = eqx.field(converter=_float)
    t1: Scalar = eqx.field(converter=_float)
    p0: Scalar = eqx.field(converter=_float)

    def __check_init__(self):
        check_field("speed", self.speed, "> 0", lambda v: v > 0)
        check_field("t0", self.t0, "a finite real")
        check_field("t1", self.t1, "a finite real")
        check_field("p0", self.p0, "a finite real")
        if is_concrete(self.t0, self.t1) and not float(self.t1) > float(self.t0):
            raise ValueError(f"t1 must be > t0, got t0={float(self.t0):g}, t1={float(self.t1):g}")

    def steady_state(self, t: ArrayLike) -> Array:
        r"""The periodic steady state $p^*(t)$ that the price converges to."""
        t = jnp.asarray(t, dtype=self.speed.dtype)
        b = self.net_intercept
        s = self.speed
        out = b.mean + 0.0 * t
        if b.is_constant:
            return out
        k = jnp.arange(1, b.cos.shape[-1] + 1, dtype=s.dtype)
        w = 2 * jnp.pi * k / b.period
        den = s**2 + w**2
        lead = (None,) * t.ndim  # harmonics along a new last axis of t
        cos_coef = (s * (s * b.cos - w * b.sin) / den)[lead]
        sin_coef = (s * (s * b.sin + w * b.cos) / den)[lead]
        wt = w[lead] * t[..., None]
        return out + jnp.sum(cos_coef * jnp.cos(wt) + sin_coef * jnp.sin(wt), axis=-1)

    def __call__(self, t: ArrayLike) -> Array:
        r"""$p(t) = p^*(t) + (p_0 - p^*(t_0))e^{-s(t-t_0)}$."""
        t = jnp.asarray(t, dtype=self.speed.dtype)
        transient = (self.p0 - self.steady_state(self.t0)) * jnp.exp(-self.speed * (t - self.t0))
        return self.steady_state(t) + transient

    def drift(self, t: ArrayLike, p: ArrayLike) -> Array:
        r"""$s\,(b(t) - p)$, the right-hand side of the price ODE."""
        return self.speed * (self.net_intercept(t) - p)


def demand_profile(t: ArrayLike) -> Array:
    r"""The slides' Scenario 1 demand $D(t) = 30 + 20\sin(10\pi t)$."""
    return 30.0 + 20.0 * jnp.sin(10 * jnp.pi * jnp.asarray(t, dtype=float))


def scenario_1(speed: float = 100.0) -> UncontrolledPrice:
    r"""The slides' Scenario 1 at adjustment speed `speed` (the slides show $s = 100$).

    $a = 30$, $D(t) = 30 + 20\sin(10\pi t)$, so $b(t) = a - D(t) = -20\sin(10\pi t)$
    (period $0.2$); $t_0 = 0$, $t_1 = 1$, $p_0 = 170$.

    **Arguments:**

    - `speed`: the adjustment speed $s > 0$ ([`SCENARIO1_SPEEDS`][] lists the ones shown).

    **Returns:** an [`UncontrolledPrice`][].
    """
    net = DemandIntercept(mean=30.0 - 30.0, period=0.2, cos=(0.0,), sin=(-20.0,))
    return UncontrolledPrice(speed=speed, net_intercept=net, t0=0.0, t1=1.0, p0=170.0)
