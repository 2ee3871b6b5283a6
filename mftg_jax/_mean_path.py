r"""The conditional equilibrium price along the mean (common-noise-free) path.

$$\frac{d\hat p}{dt} = \eta\Big(a(t) + \sum_j m_j(t) - \hat p\,(1 + \sum_j k_j(t))\Big),\qquad
  \frac{d(p - \hat p)}{dt} = -\eta\Big(1 - \eta\sum_j \frac{\alpha_j(t)}{r_j}\Big)(p - \hat p)$$

The noise terms are zero-mean and the dynamics linear, so this path is also
$t \mapsto (E[\hat p(t)], E[p(t) - \hat p(t)])$ (docs/model.md).
"""

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._custom_types import Scalar
from ._policy import FeedbackPolicy
from ._riccati import AbstractRiccatiSolution


def mean_vector_field(t, y, riccati: AbstractRiccatiSolution):
    phat, dev = y
    game = riccati.game
    eta = game.market.eta
    v = riccati.evaluate(t)
    k, m = riccati.gains(t)
    d_phat = eta * (game.market.a(t) + jnp.sum(m) - phat * (1 + jnp.sum(k)))
    d_dev = -eta * (1 - eta * jnp.sum(v.alpha / game.producers.r)) * dev
    return d_phat, d_dev


class MeanPath(eqx.Module):
    """Dense solution of the conditional price ODE (returned by [`solve_mean_path`][])."""

    riccati: AbstractRiccatiSolution
    solution: diffrax.Solution

    def phat(self, t: ArrayLike) -> Scalar:
        r"""$\hat p(t)$ on the mean path."""
        return self.solution.evaluate(t)[0]

    def price(self, t: ArrayLike) -> Scalar:
        r"""$E[p(t)] = \hat p(t) + (p - \hat p)(t)$ on the mean path."""
        phat, dev = self.solution.evaluate(t)
        return phat + dev

    def controls(self, t: ArrayLike) -> Array:
        r"""$u_i^*(t, E[p(t)], \hat p(t))$, shape `(n,)`."""
        phat, dev = self.solution.evaluate(t)
        return FeedbackPolicy(self.riccati)(t, phat + dev, phat)

    def mean_controls(self, t: ArrayLike) -> Array:
        r"""$\hat u_i^*(t)$, shape `(n,)`."""
        return FeedbackPolicy(self.riccati).mean(t, self.phat(t))


@eqx.filter_jit
def _solve(riccati, solver, controller, dt0, max_steps):
    mk = riccati.game.market
    return diffrax.diffeqsolve(
        diffrax.ODETerm(mean_vector_field),
        solver,
        t0=mk.t0,
        t1=mk.t1,
        dt0=dt0,
        y0=(mk.phat0, mk.p0 - mk.phat0),
        args=riccati,
        saveat=diffrax.SaveAt(t1=True, dense=True),
        stepsize_controller=controller,
        max_steps=max_steps,
    )


def solve_mean_path(
    riccati: AbstractRiccatiSolution,
    *,
    solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    rtol: float = 1e-8,
    atol: float = 1e-8,
    dt0: float | None = None,
    max_steps: int = 4096,
) -> MeanPath:
    """Solve the conditional price ODE forwards from $t_0$ (adaptive, dense output).

    **Arguments:**

    - `riccati`: the Riccati solution that sets the feedback.
    - `solver`, `rtol`, `atol`, `max_steps`: as in [`solve_riccati`][].
    - `dt0`: a fixed step instead of adaptive steps (for convergence studies and for
      reproducing fixed-step figures); `None` (default) is adaptive.

    **Returns:** a [`MeanPath`][].
    """
    if dt0 is None:
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
    else:
        controller = diffrax.ConstantStepSize()
        # An array, not a Python float: a new step size must not trigger a recompilation.
        dt0 = jnp.asarray(dt0, dtype=riccati.game.market.t0.dtype)
    return MeanPath(riccati, _solve(riccati, solver, controller, dt0, max_steps))
