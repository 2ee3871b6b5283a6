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
        return k * jnp.asarray(phat)[..., None] - m

    def __call__(self, t: ArrayLike, p: ArrayLike, phat: ArrayLike) -> Array:
        dev = (jnp.asarray(p) - jnp.asarray(phat))[..., None]
        return self.deviation_gain(t) * dev + self.mean(t, phat)
