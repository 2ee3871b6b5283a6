r"""A batch of price games solved as one stacked Riccati ODE (`solve_riccati(batch="stacked")`).

`jax.vmap` of an adaptive solve runs every game's step loop in lock-step: the loop continues
until the slowest game is done and every step selects, game by game, between the new and the
old state of the whole loop carry. The stacked solve integrates the $B$ Riccati systems of
the module docstring of `_riccati` as one ODE in $\mathbb R^{B \times 4n}$ (per chunk of
games): the vector field is vmapped over the games inside one `diffeqsolve`, all games share
the step sizes, and the step-size controller's error norm is
$\max_b \lVert e_b / (\mathrm{atol} + \mathrm{rtol}\,|y_b|) \rVert_{\mathrm{RMS}}$, the
largest of the games' own norms, so a step is accepted only when each game's error passes
the test it would pass alone. The price is that the stiffest game of a chunk sets the steps of
all of them.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike
import numpy as np

from .._custom_types import PerProducer
from .._odes import (
    check_stacked_chunk,
    checked_solution,
    largest_entry,
    last_accepted_time,
    RiccatiExplosionError,
    solve_ode,
    stacked_evaluate,
    stacked_ys,
    StepBudgetError,
)
from .._validation import check_time, is_concrete
from ._game import PriceGame
from ._riccati import (
    gains,
    in_given_order,
    revenue_at_t0,
    riccati_vector_field,
    RiccatiValues,
    solve_riccati,
    terminal_values,
)


class StackedRiccatiSolution(eqx.Module):
    r"""Riccati coefficients of $B$ price games solved as one stacked ODE (returned by
    [`solve_riccati`][mftg_jax.price.solve_riccati] with `batch="stacked"`).

    Every result holds the games on axis 0, as `jax.vmap` of the one-game solution would:
    `evaluate(t).alpha[b]` is game `b`'s $\alpha(t)$.
    """

    game: PriceGame
    solution: diffrax.Solution
    ts_order: ArrayLike | None = None
    ts_offset: int = eqx.field(static=True, default=0)

    @property
    def size(self) -> int:
        """The number of games $B$."""
        return self.game.market.t0.shape[0]

    def evaluate(self, t: ArrayLike) -> RiccatiValues:
        """The coefficients at time `t`: one time for all games (a scalar) or one per game
        (shape `(B,)`); arrays of shape `(B, n)`."""
        mk = self.game.market
        if is_concrete(mk.t0, mk.t1):
            check_time("t", t, mk.t0[0], mk.t1[0])
        if self.solution.interpolation is None:
            raise ValueError(
                "this Riccati solution was saved at given times only; solve with "
                "saveat=diffrax.SaveAt(t1=True, dense=True) to evaluate it anywhere"
            )
        return RiccatiValues(*stacked_evaluate(self.solution, t, self.size))

    def gains(self, t: ArrayLike) -> tuple[PerProducer, PerProducer]:
        """$(k(t), m(t))$ of each game, arrays of shape `(B, n)`."""
        return jax.vmap(gains)(self.game, self.evaluate(t))

    def revenue(self) -> PerProducer:
        """Each game's equilibrium revenues (the value function at $t_0$), shape `(B, n)`."""
        return jax.vmap(revenue_at_t0)(self.game, self.evaluate(self.game.market.t0))

    @property
    def values(self) -> RiccatiValues:
        """The coefficients at the saved times, arrays of shape `(B, len(ts), n)`, in the
        order of the `ts` given."""
        ys = RiccatiValues(*stacked_ys(self.solution, self.size))
        return jax.vmap(lambda y: in_given_order(y, self.ts_order, self.ts_offset))(ys)

    @property
    def stats(self) -> dict:
        """diffrax's step statistics, one entry per chunk of games (the steps a chunk's games
        share)."""
        return self.solution.stats


def _one_horizon(game: PriceGame):
    """The horizon $(t_0, t_1)$ the stacked games share, as scalars."""
    mk = game.market
    if jnp.ndim(mk.t0) != 1:
        raise ValueError(
            "batch='stacked' takes games stacked on axis 0 (mj.price.stack_games), "
            f"got market.t0 of shape {jnp.shape(mk.t0)}"
        )
    t0, t1 = mk.t0[0], mk.t1[0]
    if is_concrete(mk.t0, mk.t1):
        for name, v in (("t0", mk.t0), ("t1", mk.t1)):
            if not bool(jnp.all(v == v[0])):
                raise ValueError(
                    f"batch='stacked' needs one horizon: market.{name} must be the same for "
                    f"every game, got values from {float(v.min()):g} to {float(v.max()):g}"
                )
        return t0, t1
    same = jnp.all(mk.t0 == t0) & jnp.all(mk.t1 == t1)
    t0 = eqx.error_if(t0, ~same, "batch='stacked' needs the same market.t0 and t1 for every game")
    return t0, t1


def solve_stacked(
    game: PriceGame, saveat, ts_order, ts_offset, max_steps, chunk, **kwargs
) -> StackedRiccatiSolution:
    """`solve_riccati(game, batch="stacked")` once `saveat` is in the direction of the
    solve (see there)."""
    check_stacked_chunk(kwargs["stepsize_controller"], chunk, "chunk")
    t0, t1 = _one_horizon(game)
    size = game.market.t0.shape[0]
    chunk = size if chunk is None else min(chunk, size)
    sol = solve_ode(
        riccati_vector_field,
        jax.vmap(terminal_values)(game),
        t1,
        t0,
        game,
        saveat=saveat,
        max_steps=max_steps,
        stacked_chunk=chunk,
        **kwargs,
    )
    diagnosis = {}

    def diagnose(sol):
        if not diagnosis:
            diagnosis["kind"], diagnosis["message"] = _diagnose(
                game, sol, chunk, saveat.dense, max_steps, kwargs
            )
        return diagnosis["kind"], diagnosis["message"]

    sol = checked_solution(
        sol,
        lambda s: diagnose(s)[1],
        "Riccati solution explodes on the horizon (finite-time blow-up) for a game of the "
        "stacked batch, or the stacked solve ran out of max_steps; call solve_riccati outside "
        "jit for a diagnosis",
        lambda s: diagnose(s)[1] if diagnose(s)[0] == "budget" else None,
    )
    return StackedRiccatiSolution(game, sol, ts_order, ts_offset)


def _diagnose(game, sol, chunk, dense, max_steps, kwargs) -> tuple[str, str]:
    """Which game made a stacked solve fail, and why: `("explosion" | "budget", message)`.

    The suspect of the first failed chunk is the game with the largest (or a non-finite)
    coefficient where the chunk stopped; solved alone, it names the time, coefficient and
    producer of a blow-up. When it solves alone, the chunk's shared steps ran out of budget.
    """
    size = game.market.t0.shape[0]
    ok = np.asarray(sol.result == diffrax.RESULTS.successful)
    finite = np.all(
        [np.all(np.isfinite(np.asarray(y)), axis=tuple(range(1, np.ndim(y)))) for y in sol.ys],
        axis=0,
    )
    c = int(np.flatnonzero(~(ok & finite))[0])
    one = jax.tree.map(lambda x: x[c], sol)
    names = ("alpha", "beta", "gamma", "delta")
    if dense:
        t_stop, _ = last_accepted_time(one, float(game.market.t1[0]))
        values = one.evaluate(t_stop)
        _, idx, _ = largest_entry(values, names)
        b = idx[0]
    else:
        _, idx, _ = largest_entry(one.ys, names)
        b = idx[1]
    b = min(c * chunk + b, size - 1)
    lo, hi = c * chunk, min((c + 1) * chunk, size)
    try:
        solve_riccati(jax.tree.map(lambda x: x[b], game), max_steps=max_steps, **kwargs)
    except RiccatiExplosionError as e:
        return "explosion", f"game {b} of the stacked batch: {e}"
    except StepBudgetError as e:
        return "budget", f"game {b} of the stacked batch: {e}"
    return "budget", (
        f"step budget too small: the stacked solve of games {lo} to {hi - 1} ran out of "
        f"max_steps = {max_steps} (their shared steps, set by the stiffest game of the chunk, "
        "outnumber any one game's); raise max_steps or pass a smaller chunk"
    )
