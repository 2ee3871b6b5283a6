r"""Cost distributions of the bidders: bounded supports, differentiable CDFs.

A bidder's cost $c_i$ has CDF $F_i$ on $[\underline c_i, \bar c_i]$, density $f_i = F_i'$ and
survival $G_i = 1 - F_i$ (the slides' $G_i(y) = P(c_i > y)$, "Prosumers market interaction:
auction"). The equilibrium solvers integrate in the quantile level $u_i = F_i(\lambda_i)$, so a
distribution provides its quantile $F_i^{-1}$ too (a safeguarded bisection by default).
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import betainc, betaln, ndtr, ndtri
from jaxtyping import Array, ArrayLike, Float

from .._validation import check_field

# Bisection steps of the generic quantile: the support width is divided by 2^64.
_QUANTILE_STEPS = 64


def _float(x) -> Array:
    return jnp.asarray(x, dtype=float)


class AbstractCostDistribution(eqx.Module):
    r"""A cost distribution on a bounded support $[\underline c, \bar c]$ with a differentiable
    CDF $F$ (subclass it to add a family: implement `cdf`; `pdf`, `quantile` and
    `top_exponent` have defaults).

    `top_exponent` is $\eta$ in $G(c) \sim C(\bar c - c)^\eta$ as $c \to \bar c$ ($\eta = 1$ for
    a density positive at the top); it fixes the slopes of the bid functions at the top of the
    auction (docs/auction.md, "The top of the bid range").
    """

    lo: eqx.AbstractVar[Float[Array, ""]]
    hi: eqx.AbstractVar[Float[Array, ""]]

    @abc.abstractmethod
    def cdf(self, c: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """$F(c)$, clipped to 0 below the support and to 1 above it."""

    def pdf(self, c: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """$f(c) = F'(c)$ (by forward-mode differentiation of `cdf` unless overridden)."""
        c = _float(c)
        return jax.jvp(self.cdf, (c,), (jnp.ones_like(c),))[1]

    def survival(self, c: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        """$G(c) = P(\\text{cost} > c) = 1 - F(c)$."""
        return 1.0 - self.cdf(c)

    def quantile(self, u: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        r"""$F^{-1}(u)$ for $u \in [0, 1]$: 64 bisection steps on the support, then one Newton
        step that carries the derivatives ($\partial F^{-1}/\partial u = 1/f$ and the
        parameter derivatives, by the implicit function theorem)."""
        u = jnp.clip(_float(u), 0.0, 1.0)
        lo = jnp.broadcast_to(jax.lax.stop_gradient(self.lo), u.shape)
        hi = jnp.broadcast_to(jax.lax.stop_gradient(self.hi), u.shape)
        frozen = jax.lax.stop_gradient(self)
        u0 = jax.lax.stop_gradient(u)

        def step(_, bracket):
            a, b = bracket
            m = 0.5 * (a + b)
            below = frozen.cdf(m) < u0
            return jnp.where(below, m, a), jnp.where(below, b, m)

        a, b = jax.lax.fori_loop(0, _QUANTILE_STEPS, step, (lo, hi))
        q = jax.lax.stop_gradient(0.5 * (a + b))
        dens = self.pdf(q)
        safe = jnp.where(dens > 0, dens, 1.0)
        return q - jnp.where(dens > 0, (self.cdf(q) - u) / safe, 0.0)

    @property
    def top_exponent(self) -> Float[Array, ""]:
        r"""$\eta$ with $G(c) \sim C(\bar c - c)^\eta$ at the top of the support (default 1)."""
        return jnp.asarray(1.0)

    def sample(self, key, shape: tuple[int, ...]) -> Float[Array, "..."]:
        """Costs drawn by inversion, $F^{-1}(U)$ with $U$ uniform."""
        return self.quantile(jax.random.uniform(key, shape, dtype=jnp.result_type(float)))

    def _check_support(self, name: str) -> None:
        check_field(f"{name}.lo", self.lo, "finite")
        check_field(f"{name}.hi", self.hi, "finite")
        check_field(f"{name}.hi", self.hi - self.lo, "> lo", lambda v: v > 0)


class Uniform(AbstractCostDistribution):
    r"""Uniform costs on $[\underline c, \bar c]$: $F(c) = (c - \underline c)/(\bar c -
    \underline c)$.

    **Arguments:** `lo`, `hi`: the support, `lo < hi`.
    """

    lo: Float[Array, ""] = eqx.field(converter=_float)
    hi: Float[Array, ""] = eqx.field(converter=_float)

    def __check_init__(self):
        self._check_support("Uniform")

    def cdf(self, c):
        return jnp.clip((_float(c) - self.lo) / (self.hi - self.lo), 0.0, 1.0)

    def pdf(self, c):
        c = _float(c)
        inside = (c >= self.lo) & (c <= self.hi)
        return jnp.where(inside, 1.0 / (self.hi - self.lo), 0.0)

    def quantile(self, u):
        return self.lo + jnp.clip(_float(u), 0.0, 1.0) * (self.hi - self.lo)


class Power(AbstractCostDistribution):
    r"""Power-law costs, $F(c) = \big((c - \underline c)/(\bar c - \underline c)\big)^a$ on
    $[\underline c, \bar c]$ (the power law $G(c) = ((c - lo)/(hi - lo))^a$ is this CDF: the
    function increases from 0 to 1, so it is $P(\text{cost} \le c)$, not the survival).

    **Arguments:** `lo`, `hi`: the support; `a > 0` the exponent (`a = 1`: uniform; `a > 1`
    puts mass near the top, the density vanishes at `lo`).
    """

    lo: Float[Array, ""] = eqx.field(converter=_float)
    hi: Float[Array, ""] = eqx.field(converter=_float)
    a: Float[Array, ""] = eqx.field(converter=_float)

    def __check_init__(self):
        self._check_support("Power")
        check_field("Power.a", self.a, "> 0", lambda v: v > 0)

    def _x(self, c):
        return jnp.clip((_float(c) - self.lo) / (self.hi - self.lo), 0.0, 1.0)

    def cdf(self, c):
        x = self._x(c)
        return jnp.where(x > 0, jnp.where(x > 0, x, 1.0) ** self.a, 0.0)

    def pdf(self, c):
        c = _float(c)
        x = self._x(c)
        inside = (c >= self.lo) & (c <= self.hi) & (x > 0)
        xs = jnp.where(inside, x, 1.0)
        return jnp.where(inside, self.a * xs ** (self.a - 1.0) / (self.hi - self.lo), 0.0)

    def quantile(self, u):
        u = jnp.clip(_float(u), 0.0, 1.0)
        root = jnp.where(u > 0, jnp.where(u > 0, u, 1.0) ** (1.0 / self.a), 0.0)
        return self.lo + (self.hi - self.lo) * root


class TruncatedNormal(AbstractCostDistribution):
    r"""A normal law $N(\mu, \sigma^2)$ truncated to $[\underline c, \bar c]$:
    $F(c) = \frac{\Phi((c-\mu)/\sigma) - \Phi(\alpha)}{\Phi(\beta) - \Phi(\alpha)}$,
    $\alpha = (\underline c - \mu)/\sigma$, $\beta = (\bar c - \mu)/\sigma$.

    **Arguments:** `lo`, `hi`: the support; `mean` $\mu$ (finite); `std` $\sigma > 0$.
    """

    lo: Float[Array, ""] = eqx.field(converter=_float)
    hi: Float[Array, ""] = eqx.field(converter=_float)
    mean: Float[Array, ""] = eqx.field(converter=_float)
    std: Float[Array, ""] = eqx.field(converter=_float)

    def __check_init__(self):
        self._check_support("TruncatedNormal")
        check_field("TruncatedNormal.mean", self.mean, "finite")
        check_field("TruncatedNormal.std", self.std, "> 0", lambda v: v > 0)
        # The mass of the support must be representable (else the CDF is 0/0).
        mass = ndtr((self.hi - self.mean) / self.std) - ndtr((self.lo - self.mean) / self.std)
        check_field(
            "TruncatedNormal.mean", mass, "within ~30 std of [lo, hi]", lambda v: v > 1e-200
        )

    def _ends(self):
        return ndtr((self.lo - self.mean) / self.std), ndtr((self.hi - self.mean) / self.std)

    def cdf(self, c):
        c = jnp.clip(_float(c), self.lo, self.hi)
        pa, pb = self._ends()
        return jnp.clip((ndtr((c - self.mean) / self.std) - pa) / (pb - pa), 0.0, 1.0)

    def pdf(self, c):
        c = _float(c)
        pa, pb = self._ends()
        z = (c - self.mean) / self.std
        dens = jnp.exp(-0.5 * z * z) / jnp.sqrt(2 * jnp.pi) / (self.std * (pb - pa))
        return jnp.where((c >= self.lo) & (c <= self.hi), dens, 0.0)

    def quantile(self, u):
        u = jnp.clip(_float(u), 0.0, 1.0)
        pa, pb = self._ends()
        q = self.mean + self.std * ndtri(pa + u * (pb - pa))
        return jnp.clip(q, self.lo, self.hi)


class Beta(AbstractCostDistribution):
    r"""A beta law scaled to $[\underline c, \bar c]$: $F(c) = I_x(\alpha, \beta)$,
    $x = (c - \underline c)/(\bar c - \underline c)$ (regularised incomplete beta function).

    **Arguments:** `lo`, `hi`: the support; `alpha`, `beta` $> 0$ the shapes. The top exponent
    is $\eta = \beta$. Derivatives with respect to `alpha` and `beta` are not available (JAX
    does not differentiate `betainc` in its shape parameters); those with respect to `lo`
    and `hi` are.
    """

    lo: Float[Array, ""] = eqx.field(converter=_float)
    hi: Float[Array, ""] = eqx.field(converter=_float)
    alpha: Float[Array, ""] = eqx.field(converter=_float)
    beta: Float[Array, ""] = eqx.field(converter=_float)

    def __check_init__(self):
        self._check_support("Beta")
        check_field("Beta.alpha", self.alpha, "> 0", lambda v: v > 0)
        check_field("Beta.beta", self.beta, "> 0", lambda v: v > 0)

    def _x(self, c):
        return jnp.clip((_float(c) - self.lo) / (self.hi - self.lo), 0.0, 1.0)

    def cdf(self, c):
        return betainc(self.alpha, self.beta, self._x(c))

    def pdf(self, c):
        c = _float(c)
        x = self._x(c)
        inside = (x > 0) & (x < 1)
        xs = jnp.where(inside, x, 0.5)
        log_f = (
            (self.alpha - 1) * jnp.log(xs)
            + (self.beta - 1) * jnp.log1p(-xs)
            - betaln(self.alpha, self.beta)
        )
        return jnp.where(inside, jnp.exp(log_f) / (self.hi - self.lo), 0.0)

    @property
    def top_exponent(self):
        return self.beta
