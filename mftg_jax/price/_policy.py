r"""The equilibrium feedback: state-and-conditional-mean-field form.

$$u_i^*(t, p, \hat p) = -\frac{\eta\alpha_i(t)}{r_i}(p-\hat p)
   + \frac{\hat p\,(1-\eta\beta_i(t)) - (c_i+\eta\gamma_i(t))}{r_i+\bar r_i},
   \qquad \hat u_i^* = k_i\hat p - m_i$$

(slides, "Equilibrium output"; docs/model.md.)
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._custom_types import PerProducer
from ._riccati import AbstractRiccatiSolution


class FeedbackPolicy(eqx.Module):
    """The producers' equilibrium feedback built from a Riccati solution.

    **Arguments:**

    - `riccati`: an [`AbstractRiccatiSolution`][].

    Calling it with `(t, p, phat)` (scalars or arrays broadcasting to a common shape `S`)
    returns the outputs of shape `S + (n,)`.
    """

    riccati: AbstractRiccatiSolution

    def deviation_gain(self, t: ArrayLike) -> PerProducer:
        r"""$-\eta\alpha_i(t)/r_i$, the gain on $p - \hat p$."""
        game = self.riccati.game
        return -game.market.eta * self.riccati.evaluate(t).alpha / game.producers.r

    def mean(self, t: ArrayLike, phat: ArrayLike) -> Array:
        r"""$\hat u_i^*(t) = k_i(t)\hat p - m_i(t)$."""
        k, m = self.riccati.gains(t)
        phat = jnp.asarray(phat)[..., None]
        return _lift(k, phat) * phat - _lift(m, phat)

    def __call__(self, t: ArrayLike, p: ArrayLike, phat: ArrayLike) -> Array:
        p, phat = jnp.asarray(p), jnp.asarray(phat)
        shape = jnp.broadcast_shapes(p.shape, phat.shape)
        p, phat = jnp.broadcast_to(p, shape), jnp.broadcast_to(phat, shape)
        dev = (p - phat)[..., None]
        return _lift(self.deviation_gain(t), dev) * dev + self.mean(t, phat)


def _lift(v: Array, like: Array) -> Array:
    """The per-producer vector `v (n,)` with leading unit axes to the rank of `like`."""
    return v.reshape((1,) * (like.ndim - 1) + v.shape[-1:])
