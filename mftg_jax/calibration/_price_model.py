r"""The equilibrium price of the price game as a two-factor linear state-space model.

With stationary Riccati values (horizon long against $1/\eta$, docs/model.md) the
equilibrium price is $p = \hat p + (p - \hat p)$ with

$$d\hat p = \eta\{a(t) + M(t) - (1+K)\hat p\}\,dt + \sigma_o\,dB_o + dJ_o, \qquad
  d(p-\hat p) = -\eta\,(1 - \eta\textstyle\sum_j\alpha_j/r_j)(p-\hat p)\,dt + \sigma\,dB + dJ$$

$K = \sum_j k_j$, $M = \sum_j m_j$. Stationary $\alpha = 0$, so the two mean-reversion rates
(per unit of time, here per hour) are $\kappa_c = \eta(1+K)$ for the common factor $\hat p$ and
$\kappa_i = \eta$ for the deviation $p - \hat p$. A seasonal intercept
$a(t) = \bar a + \mathrm{Re}\sum_h A_h e^{i\omega_h t}$ moves $\gamma$, hence $M$, through the
linear $\gamma$-equations: the periodic solution is $\Gamma_h = (L - i\omega_h)^{-1}\eta\beta A_h$
with $L = \mathrm{diag}(\lambda_i + \eta + \eta K) - \eta^2\beta(1/R)^\top
+ \mathrm{diag}(\eta^2\beta_i/R_i)$, and the mean price is
$\bar p + \mathrm{Re}\sum_h Z_h e^{i\omega_h t}$ with
$Z_h = \eta(A_h + \eta\sum_j\Gamma_{h,j}/R_j)/(\kappa_c + i\omega_h)$ — the transfer function
$T(\omega) = Z/A$ of the equilibrium. The factors are then zero-mean
Ornstein-Uhlenbeck processes with compensated jumps, observed through their sum.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np

from .._custom_types import Scalar
from .._linalg import small_solve
from .._noise._jumps import CompoundPoisson, NormalJumps
from .._validation import is_concrete
from ..price import (
    DemandIntercept,
    gamma_operator,
    Market,
    Noise,
    PriceGame,
    Producers,
    stationary_values,
)

COMMON, IDIOSYNCRATIC = 0, 1


def _value(x):
    """A model value as a traced leaf: NumPy float64 (exact whatever `jax_enable_x64` is
    when the module-level defaults are built); JAX arrays and tracers are kept."""
    if isinstance(x, jax.Array):
        return x
    return np.asarray(x, dtype=np.float64)


class LinearPriceModel(eqx.Module):
    r"""Seasonal mean plus two Ornstein-Uhlenbeck factors with jumps, in hours.

    $$p(t_k) = \bar p + \sum_h (C_h\cos\omega_h t_k + S_h\sin\omega_h t_k) + x_c(t_k) + x_i(t_k)$$

    Each factor $x$ moves over one step $\Delta$ as
    $x \mapsto e^{-\kappa\Delta}x + \epsilon - \pi\mu_J + \mathbb 1_{\text{jump}} J$,
    $\epsilon\sim N(0, \sigma^2(1-e^{-2\kappa\Delta})/2\kappa)$ (exact for the diffusion),
    at most one jump per step with probability $\pi$ ($\pi/\Delta$ per hour), sizes
    $J \sim N(\mu_J, s_J^2)$ and the per-step compensator $-\pi\mu_J$ (zero-mean factors).
    Index 0 is the common factor $\hat p - E\hat p$, index 1 the deviation $p - \hat p$.

    **Arguments:**

    - `level`: $\bar p$, the mean price.
    - `cos`, `sin`: $C_h, S_h$ of the mean price at the harmonics `harmonics` of `period`.
    - `kappa`: $(\kappa_c, \kappa_i)$ per hour, $> 0$.
    - `sigma`: factor volatilities $(\sigma_o, \sigma)$ per square-root hour, $\ge 0$.
    - `jump_prob`: per-step jump probabilities, $\ge 0$, summing to $< 1$.
    - `jump_loc`, `jump_std`: normal jump-size laws of each factor.
    - `period`: base period in hours (168: weekly); `harmonics`: integer multiples of it.
    """

    level: Scalar
    cos: Float[Array, " H"]
    sin: Float[Array, " H"]
    kappa: Float[Array, "2"]
    sigma: Float[Array, "2"]
    jump_prob: Float[Array, "2"]
    jump_loc: Float[Array, "2"]
    jump_std: Float[Array, "2"]
    period: float = eqx.field(static=True, default=168.0)
    harmonics: tuple[int, ...] = eqx.field(static=True, default=())

    def __check_init__(self):
        if len(self.harmonics) != self.cos.shape[-1] or self.cos.shape != self.sin.shape:
            raise ValueError(
                f"cos and sin must have one entry per harmonic ({len(self.harmonics)}), got "
                f"{self.cos.shape} and {self.sin.shape}"
            )

    @property
    def omega(self) -> Array:
        """Angular frequencies $\\omega_h = 2\\pi h/T$ (radians per hour)."""
        return 2 * jnp.pi * jnp.asarray(self.harmonics, dtype=self.cos.dtype) / self.period

    def seasonal_mean(self, t) -> Array:
        """$E[p(t)]$ for times `t` in hours (any shape)."""
        t = jnp.asarray(t)
        if not self.harmonics:
            return self.level + 0.0 * t
        w = jnp.expand_dims(t, -1) * jnp.reshape(self.omega, (1,) * t.ndim + (-1,))
        cos = jnp.reshape(self.cos, (1,) * t.ndim + (-1,))
        sin = jnp.reshape(self.sin, (1,) * t.ndim + (-1,))
        return self.level + jnp.sum(cos * jnp.cos(w) + sin * jnp.sin(w), axis=-1)

    def stationary_variance(self, dt) -> Array:
        """Per-factor stationary variance of the discretised factors (step `dt` hours)."""
        phi2 = jnp.exp(-2 * self.kappa * dt)
        q = self.sigma**2 * (-jnp.expm1(-2 * self.kappa * dt)) / (2 * self.kappa)
        pj = self.jump_prob
        jump_var = pj * (self.jump_std**2 + self.jump_loc**2) - (pj * self.jump_loc) ** 2
        return (q + jump_var) / (1 - phi2)


def _harmonic_indices(a: DemandIntercept) -> tuple[int, ...]:
    return tuple(range(1, a.cos.shape[-1] + 1))


def seasonal_transfer(game: PriceGame, omega) -> Array:
    r"""The equilibrium's transfer $T(\omega) = Z/A$ from intercept to mean-price harmonics.

    $T(\omega) = \eta\,(1 + \eta\,(1/R)^\top(L - i\omega)^{-1}\eta\beta)/(\kappa_c + i\omega)$
    at the stationary Riccati values (module docstring); $T(0)\,\bar a$ is the part of
    $\bar p$ proportional to the intercept's mean.

    **Arguments:** `game`, a [`PriceGame`][]; `omega`, angular frequencies (any shape).

    **Returns:** complex array of the shape of `omega`.
    """
    return _transfer(game, stationary_values(game), omega)


def _transfer(game: PriceGame, sv, omega) -> Array:
    eta = game.market.eta
    K = jnp.sum(sv.k)
    L = gamma_operator(game, sv.beta, K)
    n = L.shape[0]
    omega = jnp.asarray(omega)
    cdt = jnp.result_type(L.dtype, jnp.complex64)
    eye = jnp.eye(n, dtype=cdt)
    rhs = (eta * sv.beta).astype(cdt)

    def one(w):
        G = small_solve(L.astype(cdt) - 1j * w * eye, rhs)
        M = eta * jnp.sum(G / game.producers.R)
        return eta * (1 + M) / (eta * (1 + K) + 1j * w)

    flat = jnp.ravel(omega)
    return jax.vmap(one)(flat).reshape(omega.shape)


def rates_from_game(game: PriceGame) -> tuple[Scalar, Scalar]:
    r"""$(\kappa_c, \kappa_i) = (\eta(1+\sum_j k_j),\ \eta)$ at the stationary Riccati values."""
    sv = stationary_values(game)
    eta = game.market.eta
    return eta * (1 + jnp.sum(sv.k)), eta


def _normal_size(jumps: CompoundPoisson):
    size = jumps.size
    if isinstance(size, NormalJumps):
        return size.loc, size.std
    # Only normal sizes keep the one-step mixture Gaussian; others are moment-matched.
    m1, m2 = size.mean(), size.second_moment()
    return m1, jnp.sqrt(jnp.maximum(m2 - m1**2, 0.0))


def price_model_from_game(
    game: PriceGame, dt: float = 1.0, *, period: float | None = None
) -> LinearPriceModel:
    r"""The reduced form of the game's stationary equilibrium price (module docstring).

    Non-normal jump sizes are replaced by normal laws with the same mean and variance.

    **Arguments:**

    - `game`: a [`PriceGame`][] whose time unit is the hour.
    - `dt`: the observation step in hours (sets the per-step jump probabilities
      $\nu\Delta$).
    - `period`: the intercept's period in hours as a Python float (needed only when the
      game is traced, e.g. under `jit`).

    **Returns:** a [`LinearPriceModel`][].
    """
    a = game.market.a
    harmonics = _harmonic_indices(a)
    sv = stationary_values(game)
    kc = game.market.eta * (1 + jnp.sum(sv.k))
    ki = game.market.eta
    dtype = sv.price.dtype
    if harmonics:
        omega = 2 * jnp.pi * jnp.asarray(harmonics, dtype=dtype) / a.period
        A = a.cos - 1j * a.sin
        Z = _transfer(game, sv, omega) * A
        cos, sin = jnp.real(Z), -jnp.imag(Z)
    else:
        cos = sin = jnp.zeros((0,), dtype)
    noise = game.noise
    loc_c, std_c = _normal_size(noise.common_jumps)
    loc_i, std_i = _normal_size(noise.jumps)
    return LinearPriceModel(
        level=sv.price,
        cos=cos,
        sin=sin,
        kappa=jnp.stack([kc, ki]).astype(dtype),
        sigma=jnp.stack([noise.sigma_o, noise.sigma]).astype(dtype),
        jump_prob=jnp.stack([noise.common_jumps.intensity, noise.jumps.intensity]) * dt,
        jump_loc=jnp.stack([loc_c, loc_i]).astype(dtype),
        jump_std=jnp.stack([std_c, std_i]).astype(dtype),
        period=float(a.period) if period is None else float(period),
        harmonics=harmonics,
    )


class StructuralDefaults(eqx.Module):
    r"""The game parameters that prices cannot identify, fixed at stated values.

    Prices identify $\eta$, $K = \sum_j k_j$, the effective intercept $a + M$ (through
    $\bar p$ and the seasonal profile) and the noise. Not identified, hence fixed here:
    the number of producers `n` and how $K$ splits among them (producers are taken
    identical), the discount rate `lam` (it enters only through $\lambda + 2\eta(1+K)$),
    the split of $R = r + \bar r$ into `r` and `rbar` (stationary $\alpha = 0$, so only $R$
    matters), the linear cost `c` (only $a + M$ matters) and the terminal weight `q`.

    **Arguments:**

    - `n`: number of identical producers ($\ge 1$).
    - `lam`: discount rate per hour ($\ge 0$).
    - `c`: linear cost.
    - `r_share`: $r/R \in (0, 1]$.
    - `q`: terminal penalty weight (0: $\alpha \equiv 0$ on the whole horizon).
    - `horizon`: $t_1 - t_0$ of the written game, in hours.
    """

    n: int = eqx.field(static=True, default=1)
    lam: Scalar = eqx.field(converter=_value, default=0.0)
    c: Scalar = eqx.field(converter=_value, default=0.0)
    r_share: Scalar = eqx.field(converter=_value, default=0.5)
    q: Scalar = eqx.field(converter=_value, default=0.0)
    horizon: Scalar = eqx.field(converter=_value, default=24.0 * 7 * 4)

    def __check_init__(self):
        if not (isinstance(self.n, int) and self.n >= 1):
            raise ValueError(f"n must be an integer >= 1, got {self.n!r}")
        if not is_concrete(self.lam, self.r_share, self.horizon):
            return
        if not float(self.lam) >= 0:
            raise ValueError(f"lam must be >= 0, got {float(self.lam)}")
        if not 0 < float(self.r_share) <= 1:
            raise ValueError(f"r_share must be in (0, 1], got {float(self.r_share)}")
        if not float(self.horizon) > 0:
            raise ValueError(f"horizon must be > 0 hours, got {float(self.horizon)}")

    def values(self) -> dict:
        """The settings as Python numbers (`n` and the five model values)."""
        return {"n": self.n} | {k: float(getattr(self, k)) for k in _DEFAULT_VALUES}

    # The model values are traced leaves (new values reuse the compiled programs); hashing
    # and equality go by value, so that defaults (and settings holding them) can still be
    # dictionary keys.
    def __hash__(self) -> int:
        return hash(tuple(self.values().items()))

    def __eq__(self, other):
        if type(other) is not type(self) or not is_concrete(self, other):
            return super().__eq__(other)
        return self.values() == other.values()


_DEFAULT_VALUES = ("lam", "c", "r_share", "q", "horizon")


def total_cost_curvature(eta, K, defaults: StructuralDefaults):
    r"""$R$ of $n$ identical producers such that the stationary $\sum_j k_j = K$.

    With $x = KR/n = 1 - \eta\beta$ the stationary $\beta$-quadratic
    $\eta^2\beta^2 + R(\lambda + 2\eta + 2\eta K)\beta = 1$ becomes
    $x\,(b - 2) = x^2(b - 1)$, $b = n(\lambda/\eta + 2 + 2K)/K$, so $x = (b-2)/(b-1)$
    and $R = nx/K$ (always $b > 2$: every $\eta > 0$, $K > 0$ has its $R > 0$). Computed as
    $x = (n\lambda/\eta + 2n + 2(n-1)K)/(n\lambda/\eta + 2n + (2n-1)K)$: $b - 2$ itself
    would cancel when $K$ is large.
    """
    n = defaults.n
    base = n * defaults.lam / eta + 2 * n
    x = (base + 2 * (n - 1) * K) / (base + (2 * n - 1) * K)
    return n * x / K


def game_from_identified(
    eta,
    K,
    level,
    cos,
    sin,
    sigma,
    jumps: tuple[tuple, tuple],
    defaults: StructuralDefaults,
    *,
    harmonics: tuple[int, ...],
    period: float,
    dt: float,
    p0,
) -> PriceGame:
    r"""A price game whose stationary equilibrium has the given identified quantities.

    $R$ from $K$ (`total_cost_curvature`), the intercept's mean $\bar a$ from
    $\bar p = T(0)\bar a + \bar p|_{\bar a = 0}$ and its harmonics $A_h = Z_h/T(\omega_h)$.

    **Arguments:** `eta` and `K` ($\kappa_i = \eta$, $\kappa_c = \eta(1+K)$, per hour),
    `level` $\bar p$, the mean-price harmonics `cos`, `sin` at `harmonics` of `period`,
    `sigma` $= (\sigma_o, \sigma)$, `jumps` $= ((\pi_c, \mu_c, s_c), (\pi_i, \mu_i, s_i))$
    per step of `dt` hours, the fixed `defaults`, and the initial price `p0`.

    **Returns:** a [`PriceGame`][] in hours, $t_0 = 0$.
    """
    dtype = jnp.result_type(level, float)
    n = defaults.n
    R = total_cost_curvature(eta, K, defaults)
    ones = jnp.ones((n,), dtype)
    producers = Producers(
        c=defaults.c * ones,
        r=defaults.r_share * R * ones,
        rbar=(1 - defaults.r_share) * R * ones,
        lam=defaults.lam * ones,
    )
    nh = max(harmonics) if harmonics else 0
    zero = jnp.zeros((nh,), dtype)

    def game_with(a):
        market = Market(eta=eta, a=a, q=defaults.q, t0=0.0, t1=defaults.horizon, p0=p0)
        return PriceGame(market, producers, Noise())

    base = game_with(DemandIntercept(mean=0.0, period=period, cos=zero, sin=zero))
    sv = stationary_values(base)
    p_zero = sv.price
    idx = jnp.asarray([h - 1 for h in harmonics], dtype=int)
    omega = 2 * jnp.pi * jnp.asarray((0,) + tuple(harmonics), dtype=dtype) / period
    T = _transfer(base, sv, omega)
    a_mean = (level - p_zero) / jnp.real(T[0])
    if harmonics:
        A = (cos - 1j * sin) / T[1:]
        a_cos = zero.at[idx].set(jnp.real(A))
        a_sin = zero.at[idx].set(-jnp.imag(A))
    else:
        a_cos = a_sin = zero
    a = DemandIntercept(mean=a_mean, period=period, cos=a_cos, sin=a_sin)
    (pc, mc, sc), (pi_, mi, si) = jumps
    noise = Noise(
        sigma=sigma[IDIOSYNCRATIC],
        sigma_o=sigma[COMMON],
        jumps=CompoundPoisson(pi_ / dt, NormalJumps(mi, si)),
        common_jumps=CompoundPoisson(pc / dt, NormalJumps(mc, sc)),
    )
    market = Market(eta=eta, a=a, q=defaults.q, t0=0.0, t1=defaults.horizon, p0=p0)
    return PriceGame(market, producers, noise)
