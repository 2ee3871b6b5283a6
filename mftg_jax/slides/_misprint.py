r"""The slides' Riccati system taken literally: $\gamma_i(t_0) = 0$ instead of $\gamma_i(t_1) = 0$.

The slides ("Mean-field-type equilibria") print the boundary condition of $\gamma_i$ as
$\tilde\gamma_i(0) = 0$. Read literally, $\alpha$ and $\beta$ are integrated backwards from
$t_1$ (they do not involve $\gamma$), then $\gamma$ *forwards* from $\gamma_i(t_0) = 0$ with the
same vector field, then $\delta$ backwards from $\delta_i(t_1) = 0$. The HJB derivation gives
$\gamma_i(t_1) = 0$ (the terminal reward has no term linear in $\hat p$), so this candidate
is not an equilibrium; [`nash_gap`][mftg_jax.price.nash_gap] measures by how much
(docs/model.md). It exists to reproduce and explain the slides' numbers, not to be used.
"""

import diffrax
import jax.numpy as jnp

from .._odes import default_controller, solve_ode
from ..price import (
    AbstractRiccatiSolution,
    PriceGame,
    riccati_vector_field,
    RiccatiValues,
    solve_riccati,
)

_TSIT5 = diffrax.Tsit5()


def _with(v: RiccatiValues, **kw) -> RiccatiValues:
    return v._replace(**kw)


def _gamma_field(t, gamma, ab: AbstractRiccatiSolution):
    return riccati_vector_field(t, _with(ab.evaluate(t), gamma=gamma), ab.game).gamma


class _WithGamma(AbstractRiccatiSolution):
    game: PriceGame
    ab: AbstractRiccatiSolution
    gamma: diffrax.Solution

    def evaluate(self, t):
        return _with(self.ab.evaluate(t), gamma=self.gamma.evaluate(t))


def _delta_field(t, delta, abg: _WithGamma):
    return riccati_vector_field(t, _with(abg.evaluate(t), delta=delta), abg.game).delta


class MisprintedRiccatiSolution(AbstractRiccatiSolution):
    r"""The Riccati coefficients with the slides' misprinted condition $\gamma_i(t_0) = 0$.

    $\alpha, \beta$ as in the correct solution; $\gamma$ solves the correct $\gamma$-equation
    forwards from $\gamma_i(t_0) = 0$; $\delta$ solves its equation backwards from
    $\delta_i(t_1) = 0$ with this $\gamma$. Built by [`solve_misprinted_riccati`][].
    """

    game: PriceGame
    alpha_beta: AbstractRiccatiSolution
    gamma_solution: diffrax.Solution
    delta_solution: diffrax.Solution

    def evaluate(self, t):
        return _with(
            self.alpha_beta.evaluate(t),
            gamma=self.gamma_solution.evaluate(t),
            delta=self.delta_solution.evaluate(t),
        )


_DENSE = diffrax.SaveAt(t1=True, dense=True)


def _solve(ab: AbstractRiccatiSolution, solver, controller, max_steps):
    mk = ab.game.market
    zeros = jnp.zeros_like(ab.game.producers.c)
    common = dict(solver=solver, saveat=_DENSE, stepsize_controller=controller, max_steps=max_steps)
    gamma = solve_ode(_gamma_field, zeros, mk.t0, mk.t1, ab, **common)
    abg = _WithGamma(ab.game, ab, gamma)
    # delta backwards from t1 (solve_ode integrates in reverse time when t1 < t0).
    delta = solve_ode(_delta_field, zeros, mk.t1, mk.t0, abg, **common)
    return gamma, delta


def solve_misprinted_riccati(
    game: PriceGame,
    *,
    solver: diffrax.AbstractSolver = _TSIT5,
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    max_steps: int = 4096,
) -> MisprintedRiccatiSolution:
    r"""Solve the slides' Riccati system as printed, with $\gamma_i(t_0) = 0$ (module docstring).

    **Arguments:**

    - `game`: a [`PriceGame`][].
    - `solver`, `stepsize_controller` (default `PIDController(rtol=1e-10, atol=1e-10)`),
      `max_steps`: the diffrax solver and its step-size control, used for all three solves.

    **Returns:** a [`MisprintedRiccatiSolution`][], usable wherever a Riccati solution is
    (policy, mean path, costs, [`nash_gap`][mftg_jax.price.nash_gap]).
    """
    controller = (
        default_controller(1e-10, 1e-10) if stepsize_controller is None else stepsize_controller
    )
    ab = solve_riccati(game, solver=solver, stepsize_controller=controller, max_steps=max_steps)
    gamma, delta = _solve(ab, solver, controller, max_steps)
    return MisprintedRiccatiSolution(game, ab, gamma, delta)
