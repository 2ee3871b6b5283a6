r"""Consumers' utilities and their price responses (slides, "Consumer response").

Consumer $i$ earns $r_i = w_i(d_i) - p\,d_i$; a price taker demands
$d_i^* = \max(0, (w_i')^{-1}(p))$ ("Optimal demand: nonatomic case").
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._validation import check_field


def _vector(x) -> Array:
    return jnp.atleast_1d(jnp.asarray(x, dtype=float))


def _row(v: Array, like: Array) -> Array:
    return v.reshape((1,) * (jnp.ndim(like) - 1) + (-1,))


class AbstractUtility(eqx.Module):
    """Utilities $w_i$ of a group of consumers $i = 1..n$ (concave, increasing)."""

    @abc.abstractmethod
    def utility(self, d: Float[ArrayLike, "... n"]) -> Float[Array, "... n"]:
        """$w_i(d_i)$."""

    @abc.abstractmethod
    def marginal(self, d: Float[ArrayLike, "... n"]) -> Float[Array, "... n"]:
        """$w_i'(d_i)$."""

    @abc.abstractmethod
    def demand(self, p: Float[ArrayLike, "..."]) -> Float[Array, "... n"]:
        """$d_i^*(p) = \\max(0, (w_i')^{-1}(p))$, each consumer's price-taking demand."""

    @property
    @abc.abstractmethod
    def n(self) -> int:
        """The number of consumers."""

    def total_demand(self, p: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
        r"""$\sum_i d_i^*(p)$, nonincreasing in $p$."""
        return jnp.sum(self.demand(p), axis=-1)

    def payoff(self, d, p) -> Float[Array, "... n"]:
        r"""$r_i = w_i(d_i) - p\,d_i$."""
        return self.utility(d) - jnp.asarray(p)[..., None] * jnp.asarray(d)


class QuadraticUtility(AbstractUtility):
    r"""$w_i(d) = \alpha_i d - \tfrac{\beta_i}2 d^2$: linear demand
    $d_i^* = \max(0, (\alpha_i - p)/\beta_i)$.

    **Arguments:** `alpha` ($\alpha_i$, the choke price, any real), `beta` ($\beta_i > 0$).
    """

    alpha: Float[Array, " n"] = eqx.field(converter=_vector)
    beta: Float[Array, " n"] = eqx.field(converter=_vector)

    def __check_init__(self):
        check_field("consumers.alpha", self.alpha, "finite reals")
        check_field("consumers.beta", self.beta, "> 0", lambda v: v > 0)
        if self.alpha.shape != self.beta.shape:
            raise ValueError("consumers.alpha and consumers.beta must have the same length")

    @property
    def n(self) -> int:
        return self.alpha.shape[-1]

    def utility(self, d):
        d = jnp.atleast_1d(jnp.asarray(d))
        return _row(self.alpha, d) * d - 0.5 * _row(self.beta, d) * d * d

    def marginal(self, d):
        d = jnp.atleast_1d(jnp.asarray(d))
        return _row(self.alpha, d) - _row(self.beta, d) * d

    def demand(self, p):
        p = jnp.asarray(p)[..., None]
        return jnp.maximum(0.0, (_row(self.alpha, p) - p) / _row(self.beta, p))


class IsoelasticUtility(AbstractUtility):
    r"""$w_i(d) = A_i\frac{d^{1 - 1/\varepsilon_i}}{1 - 1/\varepsilon_i}$ ($A_i\log d$ for
    $\varepsilon_i = 1$): constant price elasticity, $d_i^* = (A_i/p)^{\varepsilon_i}$,
    capped at the saturation $\bar d_i$ (which also gives the demand at $p \le 0$).

    **Arguments:** `scale` ($A_i > 0$), `elasticity` ($\varepsilon_i > 0$), `saturation`
    ($\bar d_i > 0$, default $\infty$).
    """

    scale: Float[Array, " n"] = eqx.field(converter=_vector)
    elasticity: Float[Array, " n"] = eqx.field(converter=_vector)
    saturation: Float[Array, " n"] = eqx.field(converter=_vector, default=jnp.inf)

    def __check_init__(self):
        check_field("consumers.scale", self.scale, "> 0", lambda v: v > 0)
        check_field("consumers.elasticity", self.elasticity, "> 0", lambda v: v > 0)
        if not bool(jnp.all(self.saturation > 0)):
            raise ValueError("consumers.saturation must be > 0")
        if self.scale.shape != self.elasticity.shape:
            raise ValueError("consumers.scale and consumers.elasticity must have the same length")

    @property
    def n(self) -> int:
        return self.scale.shape[-1]

    def utility(self, d):
        d = jnp.atleast_1d(jnp.asarray(d))
        e = _row(self.elasticity, d)
        one = jnp.abs(e - 1) < 1e-12
        k = jnp.where(one, 0.5, 1 - 1 / jnp.where(one, 2.0, e))
        return _row(self.scale, d) * jnp.where(one, jnp.log(d), d**k / k)

    def marginal(self, d):
        d = jnp.atleast_1d(jnp.asarray(d))
        return _row(self.scale, d) * d ** (-1 / _row(self.elasticity, d))

    def demand(self, p):
        p = jnp.asarray(p)[..., None]
        safe = jnp.where(p > 0, p, 1.0)
        d = jnp.where(p > 0, (_row(self.scale, p) / safe) ** _row(self.elasticity, p), jnp.inf)
        return jnp.minimum(d, _row(self.saturation, p))
