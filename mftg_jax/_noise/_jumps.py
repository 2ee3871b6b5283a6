r"""Jump-size laws and compensated compound-Poisson noise.

A compensated compound-Poisson term $\int \mu(\theta)\,\tilde N(dt, d\theta)$ with intensity
$\nu$ and sizes $Y$ adds $\sum Y_k - \nu E[Y]\,dt$ over $dt$: zero mean, variance rate
$\nu E[Y^2]$.
"""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._custom_types import Scalar
from .._validation import check_instance, is_concrete, real


class AbstractJumpSize(eqx.Module):
    """A law for jump sizes."""

    @abc.abstractmethod
    def mean(self) -> Scalar:
        """$E[Y]$."""

    @abc.abstractmethod
    def second_moment(self) -> Scalar:
        """$E[Y^2]$."""

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, shape: tuple[int, ...], dtype=float) -> Array:
        """Independent draws of $Y$."""

    def quantile(self, u: Array) -> Array:
        r"""$F^{-1}(u)$ for levels $u \in (0, 1)$: a draw of $Y$ from a uniform $u$ (how the
        counter-based grid paths draw sizes from their own hash words). A law used on the
        grid paths must implement it; the library's laws do."""
        raise NotImplementedError(
            f"{type(self).__name__} has no quantile(u): the grid paths draw jump sizes as "
            "quantile(u) of their own uniforms; implement quantile for this jump-size law"
        )


class NormalJumps(AbstractJumpSize):
    """Normal sizes $Y \\sim N(\\mu, s^2)$, `std` $s \\ge 0$."""

    loc: Scalar = eqx.field(converter=real("jumps.size.mean"))
    std: Scalar = eqx.field(converter=real("jumps.size.std", ">= 0", lambda v: v >= 0))

    def mean(self):
        return self.loc

    def second_moment(self):
        return self.loc**2 + self.std**2

    def sample(self, key, shape, dtype=float):
        return self.loc.astype(dtype) + self.std.astype(dtype) * jax.random.normal(
            key, shape, dtype
        )

    def quantile(self, u):
        # Linear in (loc, std): pathwise gradients through the sizes (reparameterised).
        z = jnp.sqrt(jnp.asarray(2.0, u.dtype)) * jax.scipy.special.erfinv(2 * u - 1)
        return self.loc.astype(u.dtype) + self.std.astype(u.dtype) * z


class ExponentialJumps(AbstractJumpSize):
    """Exponential sizes of mean `scale` $> 0$; `sign` $= -1$ gives downward jumps."""

    scale: Scalar = eqx.field(converter=real("jumps.size.scale", "> 0", lambda v: v > 0))
    sign: Scalar = eqx.field(converter=real("jumps.size.sign", "1 or -1"), default=1.0)

    def __check_init__(self):
        if is_concrete(self.sign) and float(self.sign) not in (1.0, -1.0):
            raise ValueError(f"jumps.size.sign must be 1 or -1, got {float(self.sign):g}")

    def mean(self):
        return self.sign * self.scale

    def second_moment(self):
        return 2 * self.scale**2

    def sample(self, key, shape, dtype=float):
        return (self.sign * self.scale).astype(dtype) * jax.random.exponential(key, shape, dtype)

    def quantile(self, u):
        return (self.sign * self.scale).astype(u.dtype) * -jnp.log1p(-u)


class FixedJumps(AbstractJumpSize):
    """Jumps of one fixed size `value`."""

    value: Scalar = eqx.field(converter=real("jumps.size.value"))

    def mean(self):
        return self.value

    def second_moment(self):
        return self.value**2

    def sample(self, key, shape, dtype=float):
        return jnp.broadcast_to(self.value.astype(dtype), shape)

    def quantile(self, u):
        return jnp.broadcast_to(self.value.astype(u.dtype), u.shape)


class CompoundPoisson(eqx.Module):
    r"""Compensated compound-Poisson noise with intensity $\nu \ge 0$ (per unit time).

    **Arguments:**

    - `intensity`: jump rate $\nu \ge 0$.
    - `size`: an [`AbstractJumpSize`][] law.
    """

    intensity: Scalar = eqx.field(converter=real("jumps.intensity", ">= 0", lambda v: v >= 0))
    size: AbstractJumpSize

    def __check_init__(self):
        check_instance("jumps.size", self.size, AbstractJumpSize)

    @property
    def variance_rate(self) -> Scalar:
        r"""$\nu E[Y^2]$, the variance per unit time of the compensated process."""
        return self.intensity * self.size.second_moment()

    @property
    def drift_compensator(self) -> Scalar:
        r"""$\nu E[Y]$, subtracted per unit time so that the process has mean zero."""
        return self.intensity * self.size.mean()


def no_jumps() -> CompoundPoisson:
    """Zero-intensity jumps."""
    return CompoundPoisson(0.0, FixedJumps(0.0))
