r"""The Riccati system of the price game, integrated backwards with diffrax.

$$\alpha_i' = (\lambda_i + 2\eta)\alpha_i - \tfrac{\eta^2}{r_i}\alpha_i^2
             - 2\eta^2\alpha_i S_{-i}(\alpha/r), \qquad \alpha_i(t_1) = -q$$
$$\beta_i' = (\lambda_i + 2\eta)\beta_i - \tfrac{(1-\eta\beta_i)^2}{R_i}
             + 2\eta\beta_i S_{-i}(k), \qquad \beta_i(t_1) = 0$$
$$\gamma_i' = (\lambda_i + \eta)\gamma_i - \eta\beta_i a + (1-\eta\beta_i)\,m_i
             + \eta\gamma_i S_{-i}(k) - \eta\beta_i S_{-i}(m), \qquad \gamma_i(t_1) = 0$$
$$\delta_i' = \lambda_i\delta_i - \tfrac{\beta_i}2 \Sigma_o - \tfrac{\alpha_i}2 \Sigma
             - \eta\gamma_i a - \tfrac{R_i m_i^2}{2} - \eta\gamma_i S_{-i}(m),
             \qquad \delta_i(t_1) = 0$$

with $R_i = r_i + \bar r_i$, $k_j = (1-\eta\beta_j)/R_j$, $m_j = (c_j+\eta\gamma_j)/R_j$,
$S_{-i}(z) = \sum_{j\ne i} z_j$ computed as total minus own term (O(n) per evaluation),
$\Sigma = \sigma^2 + \nu E[Y^2]$ and $\Sigma_o = \sigma_o^2 + \nu_o E[Y_o^2]$.
(Slides, "Stochastic Riccati system"; the slides' $\gamma_i(0) = 0$ is a misprint for
$\gamma_i(t_1) = 0$ and they drop the common-jump variance in $\delta_i$.) These are the
terminal values of `Market(terminal="penalty")`; `terminal="stationary"` replaces them by the
stationary ones ([`terminal_values`][]).
"""

import abc
from typing import NamedTuple, TYPE_CHECKING

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike
import numpy as np

from .._custom_types import PerProducer
from .._odes import (
    checked_solution,
    last_accepted_time,
    RiccatiExplosionError,
    solve_ode,
    solve_ok,
    step_budget_message,
)
from .._validation import check_instance, check_time
from ._game import PriceGame
from ._periodic import periodic_gamma
from ._stationary import stationary_values

if TYPE_CHECKING:
    from ._riccati_batch import StackedRiccatiSolution


class RiccatiValues(NamedTuple):
    """The Riccati coefficients at one time, each of shape `(n,)`."""

    alpha: PerProducer
    beta: PerProducer
    gamma: PerProducer
    delta: PerProducer


def gains(game: PriceGame, values: RiccatiValues) -> tuple[PerProducer, PerProducer]:
    r"""$k_j = (1-\eta\beta_j)/R_j$ and $m_j = (c_j+\eta\gamma_j)/R_j$."""
    eta = game.market.eta
    R = game.producers.R
    k = (1 - eta * values.beta) / R
    m = (game.producers.c + eta * values.gamma) / R
    return k, m


def riccati_vector_field(t, y: RiccatiValues, game: PriceGame) -> RiccatiValues:
    """Right-hand side of the Riccati system (module docstring), O(n) per call."""
    return riccati_local(t, y, riccati_totals(y, game), game)


def riccati_totals(y: RiccatiValues, game: PriceGame):
    r"""The three totals through which producers interact,
    $(\sum_j \alpha_j/r_j, \sum_j k_j, \sum_j m_j)$, shape `(3,)`."""
    k, m = gains(game, y)
    return jnp.stack([jnp.sum(y.alpha / game.producers.r), jnp.sum(k), jnp.sum(m)])


def riccati_local(t, y: RiccatiValues, totals, game: PriceGame) -> RiccatiValues:
    """The Riccati right-hand side given the totals of `riccati_totals`: producer `i`'s
    rate reads only its own coefficients and the totals (the structure an implicit solve
    exploits, `mj.price.structured_solver`)."""
    alpha, beta, gamma, delta = y
    eta = game.market.eta
    a = game.market.a(t)
    pr = game.producers
    r, R, lam, c = pr.r, pr.R, pr.lam, pr.c
    k, m = gains(game, y)
    s_alpha = totals[0] - alpha / r
    s_k = totals[1] - k
    s_m = totals[2] - m
    var = game.noise.idiosyncratic_variance_rate
    var_o = game.noise.common_variance_rate
    d_alpha = (lam + 2 * eta) * alpha - eta**2 / r * alpha**2 - 2 * eta**2 * alpha * s_alpha
    d_beta = (lam + 2 * eta) * beta - (1 - eta * beta) ** 2 / R + 2 * eta * beta * s_k
    d_gamma = (
        (lam + eta) * gamma
        - eta * beta * a
        + (1 - eta * beta) * (c + eta * gamma) / R
        + eta * gamma * s_k
        - eta * beta * s_m
    )
    d_delta = (
        lam * delta
        - beta / 2 * var_o
        - alpha / 2 * var
        - eta * gamma * a
        - (c + eta * gamma) ** 2 / (2 * R)
        - eta * gamma * s_m
    )
    return RiccatiValues(d_alpha, d_beta, d_gamma, d_delta)


def terminal_values(game: PriceGame) -> RiccatiValues:
    r"""The Riccati values at $t_1$ that `game.market.terminal` names.

    `"penalty"`: $(\alpha, \beta, \gamma, \delta)(t_1) = (-q, 0, 0, 0)$.
    `"stationary"`: $(0, \beta^s, \gamma^s(t_1), 0)$, the stationary $\beta$
    ([`stationary_values`][mftg_jax.price.stationary_values]) and the periodic $\gamma$
    ([`periodic_gamma`][mftg_jax.price.periodic_gamma]) at $t_1$;
    then $\alpha \equiv 0$, $\beta \equiv \beta^s$ and $\gamma = \gamma^s$ on the whole
    horizon. $\delta(t_1) = 0$ drops the constant of the stationary value function, so the
    revenue is the expected running revenue on $[t_0, t_1]$ plus the discounted terminal
    value $\tfrac{\beta^s_i}2\hat p(t_1)^2 + \gamma^s_i(t_1)\hat p(t_1)$ (docs/model.md).
    """
    zeros = jnp.zeros_like(game.producers.c)
    if game.market.terminal == "stationary":
        sv = stationary_values(game)
        return RiccatiValues(zeros, sv.beta, periodic_gamma(game, game.market.t1), zeros)
    return RiccatiValues(zeros - game.market.q, zeros, zeros, zeros)


class AbstractRiccatiSolution(eqx.Module):
    """Riccati coefficients of a price game, evaluable at any time in the horizon."""

    game: eqx.AbstractVar[PriceGame]

    @abc.abstractmethod
    def evaluate(self, t: ArrayLike) -> RiccatiValues:
        """The coefficients at time `t` (a scalar)."""

    def gains(self, t: ArrayLike) -> tuple[PerProducer, PerProducer]:
        """$(k(t), m(t))$ of the conditional-mean feedback $\\hat u_i = k_i\\hat p - m_i$."""
        return gains(self.game, self.evaluate(t))

    def revenue(self) -> PerProducer:
        r"""Equilibrium revenue of each producer, from the value function at $t_0$.

        $$V_i = \tfrac{\alpha_i}2(p_0-\hat p_0)^2 + \tfrac{\beta_i}2\hat p_0^2
                + \gamma_i\hat p_0 + \delta_i$$

        evaluated at $t_0$ (discounted to $t_0$).
        """
        return revenue_at_t0(self.game, self.evaluate(self.game.market.t0))


def revenue_at_t0(game: PriceGame, v: RiccatiValues) -> PerProducer:
    """The revenue of [`AbstractRiccatiSolution.revenue`][] from the values `v` at $t_0$."""
    mk = game.market
    dev = mk.p0 - mk.phat0
    return v.alpha / 2 * dev**2 + v.beta / 2 * mk.phat0**2 + v.gamma * mk.phat0 + v.delta


class RiccatiSolution(AbstractRiccatiSolution):
    """Solution of the Riccati system (returned by [`solve_riccati`][]).

    With the default `SaveAt(t1=True, dense=True)` it evaluates at any time of the horizon;
    with `SaveAt(ts=...)` only `values` (the coefficients at those times) is available.
    """

    game: PriceGame
    solution: diffrax.Solution
    ts_order: ArrayLike | None = None
    ts_offset: int = eqx.field(static=True, default=0)

    def evaluate(self, t):
        check_time("t", t, self.game.market.t0, self.game.market.t1)
        if self.solution.interpolation is None:
            raise ValueError(
                "this Riccati solution was saved at given times only; solve with "
                "saveat=diffrax.SaveAt(t1=True, dense=True) to evaluate it anywhere"
            )
        return self.solution.evaluate(t)

    @property
    def values(self) -> RiccatiValues:
        """The coefficients at the saved times, arrays of shape `(len(ts), n)`, in the order
        of the `ts` given (the solve itself runs backwards from $t_1$)."""
        return in_given_order(self.solution.ys, self.ts_order, self.ts_offset)

    @property
    def stats(self) -> dict:
        """diffrax's step statistics (number of steps, rejections)."""
        return self.solution.stats


def in_given_order(ys: RiccatiValues, ts_order, ts_offset: int) -> RiccatiValues:
    """Values saved in decreasing time (the direction of the solve), put back in the order
    of the `ts` given; `ts_order` `None` leaves them as they are."""
    if ts_order is None:
        return ys
    k, m = ts_offset, ts_order.shape[-1]

    def reorder(y):
        seg = jnp.take(y[k : k + m], ts_order, axis=0)
        return jnp.concatenate([y[:k], seg, y[k + m :]])

    return RiccatiValues(*(reorder(y) for y in ys))


_DENSE = diffrax.SaveAt(t1=True, dense=True)


def solve_riccati(
    game: PriceGame,
    *,
    solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    stepsize_controller: diffrax.AbstractStepSizeController | None = None,
    adjoint: diffrax.AbstractAdjoint = diffrax.RecursiveCheckpointAdjoint(),
    saveat: diffrax.SaveAt = _DENSE,
    max_steps: int = 4096,
    batch: str | None = None,
    chunk: int | None = None,
) -> "RiccatiSolution | StackedRiccatiSolution":
    r"""Solve the price game's Riccati system backwards from $t_1$ (module docstring).

    One jit-compiled diffrax program; works under `jax.vmap` (a batch of games), `jax.jit`
    and `jax.grad`. A batch of games is solved either by `jax.vmap` of this function (each
    game with its own steps) or, with `batch="stacked"`, as one stacked ODE.

    **Arguments:**

    - `game`: a [`PriceGame`][mftg_jax.PriceGame].
    - `solver`: a diffrax ODE solver (default `Tsit5`, adaptive).
    - `stepsize_controller`: default `diffrax.PIDController(rtol=1e-8, atol=1e-8)`.
    - `adjoint`: diffrax adjoint used for reverse-mode gradients.
    - `saveat`: default `SaveAt(t1=True, dense=True)` (evaluable anywhere). `SaveAt(ts=ts)`
      (times in any order, e.g. increasing: they are sorted into the direction of
      integration and `.values` returns them in the order given) keeps no per-step
      interpolation coefficients, which makes large batches of games (`jax.vmap`) and games
      of many producers much cheaper when only a few times are needed; read them from
      `.values`.
    - `max_steps`: step budget; a blow-up exhausts it and is reported.
    - `batch`: `None` (one game) or `"stacked"`: `game` holds $B$ games stacked on axis 0
      ([`stack_games`][mftg_jax.price.stack_games], or a `jax.vmap`-built game) with one
      horizon, solved as one ODE per chunk of games with shared step sizes and an error
      norm that is the largest of the games' own norms, so each game meets its own
      tolerance ([`solve_ode`][mftg_jax.solve_ode] with `stacked_chunk`).
    - `chunk`: games per stacked ODE (default: the whole batch); the chunks are solved one
      after another. On a CPU a few hundred games per chunk keep the working set in cache.

    **Returns:**

    A [`RiccatiSolution`][]: `evaluate(t)` gives $(\alpha, \beta, \gamma, \delta)(t)$ for
    any $t \in [t_0, t_1]$ (dense output), `values` the coefficients at the saved times.
    With `batch="stacked"` a [`StackedRiccatiSolution`][mftg_jax.price.StackedRiccatiSolution],
    whose `evaluate(t)` and `values` hold the $B$ games on axis 0.

    **Raises:**

    [`RiccatiExplosionError`][mftg_jax.RiccatiExplosionError] when the solution blows up on
    the horizon (with concrete inputs; under tracing an `equinox` runtime error is raised
    instead).
    """
    check_instance("game", game, PriceGame)
    if batch not in (None, "stacked"):
        raise ValueError(f"batch must be None or 'stacked', got {batch!r}")
    if chunk is not None and batch is None:
        raise ValueError("chunk is the number of games per stacked solve: pass batch='stacked'")
    dense = saveat.dense
    if saveat.subs is not None and not isinstance(saveat.subs, diffrax.SubSaveAt):
        raise ValueError("saveat must be a single SaveAt (no nested subs)")
    ts_order, ts_offset = None, 0
    if saveat.subs.ts is not None:
        ts = jnp.atleast_1d(jnp.asarray(saveat.subs.ts, dtype=game.market.t0.dtype))
        # The solve runs backwards from t1: save in decreasing time, return in the given order.
        order = jnp.argsort(-ts, stable=True)
        ts_order, ts_offset = jnp.argsort(order, stable=True), int(bool(saveat.subs.t0))
        saveat = diffrax.SaveAt(ts=ts[order], t0=saveat.subs.t0, t1=saveat.subs.t1, dense=dense)
    mk = game.market
    kwargs = dict(solver=solver, stepsize_controller=stepsize_controller, adjoint=adjoint)
    if batch == "stacked":
        from .._structured import AggregativeChord
        from ._riccati_batch import solve_stacked

        if isinstance(getattr(solver, "root_finder", None), AggregativeChord):
            # Its Newton systems couple all producers of the stacked state through one set of
            # totals, which would mix the games of the batch.
            raise ValueError(
                "structured_solver() solves one game at a time: use it with batch=None (and "
                "jax.vmap for a batch), or an explicit solver with batch='stacked'"
            )

        return solve_stacked(game, saveat, ts_order, ts_offset, max_steps, chunk, **kwargs)
    sol = solve_ode(
        riccati_vector_field,
        terminal_values(game),
        mk.t1,
        mk.t0,
        game,
        saveat=saveat,
        max_steps=max_steps,
        **kwargs,
    )

    def explain(sol):
        if dense:
            return _explain_explosion(game, sol)
        # The dense solve names the time, coefficient and producer that diverge.
        try:
            solve_riccati(game, max_steps=max_steps, **kwargs)
        except RiccatiExplosionError as e:
            return str(e)
        return "Riccati solve failed at the requested times (max_steps too small?)"

    def budget(sol):
        if not dense or np.ndim(mk.t1) > 0:
            return None
        horizon = f"of the horizon [t0, t1] = [{float(mk.t0):g}, {float(mk.t1):g}]"
        return step_budget_message(sol, max_steps, float(mk.t1), float(mk.t0), horizon)

    sol = checked_solution(
        sol,
        explain,
        "Riccati solution explodes on the horizon (finite-time blow-up) for a game of the "
        "batch; call solve_riccati outside jit/vmap for a diagnosis",
        budget,
    )
    return RiccatiSolution(game, sol, ts_order, ts_offset)


def _explain_explosion(game: PriceGame, sol: diffrax.Solution) -> str:
    mk, pr = game.market, game.producers
    if np.ndim(mk.t1) > 0:
        return (
            "Riccati solution explodes on the horizon for at least one game of the batch "
            f"(games {np.flatnonzero(~np.asarray(solve_ok(sol))).tolist()}); solve them one by one "
            "for a diagnosis"
        )
    t_last, any_step = last_accepted_time(sol, float(mk.t1))
    names = ("alpha", "beta", "gamma", "delta")
    worst, who, size = "alpha", 0, -np.inf
    if any_step:
        # The last accepted step holds the largest finite values: name what grew most.
        vals = sol.evaluate(t_last)
        for name, v in zip(names, vals):
            v = np.abs(np.asarray(v))
            v = np.where(np.isfinite(v), v, np.inf)
            if v.max() > size:
                worst, who, size = name, int(v.argmax()), float(v.max())
    return (
        f"Riccati solution explodes at t = {t_last:.6g} before reaching t0 = {float(mk.t0):g} "
        f"(integrating back from t1 = {float(mk.t1):g}); {worst} of producer {who} diverges. "
        f"Parameters: eta = {float(mk.eta):g}, q = {float(mk.q):g}, "
        f"r[{who}] = {float(pr.r[who]):g}, rbar[{who}] = {float(pr.rbar[who]):g}, "
        f"lam[{who}] = {float(pr.lam[who]):g}, horizon t1 - t0 = {float(mk.t1 - mk.t0):g}. "
        "A negative q, a long horizon or a small r + rbar cause this; shorten the horizon "
        "or raise q, r or rbar."
    )


def stack_games(games) -> PriceGame:
    """Stack games with the same number of producers into one batched game for `jax.vmap`."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *games)
