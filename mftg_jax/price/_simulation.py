r"""Path ensembles of the price game: M common-noise scenarios x N paths, one grid scan.

$$dp = \eta\,(a(t) - \textstyle\sum_j u_j(t, p, \hat p) - p)\,dt + \sigma\,dB + dJ
       + \sigma_o\,dB_o + dJ_o,\qquad
  d\hat p = \eta\,(a(t) - \textstyle\sum_j \hat u_j(t, \hat p) - \hat p)\,dt
       + \sigma_o\,dB_o + dJ_o$$

(docs/model.md). All paths of a scenario share the common increments $dB_o, dJ_o$, and
$\hat p$ is integrated along them, so the mean of $p$ over a scenario's paths converges to
that scenario's $\hat p$. The conditional mean control is $\hat u_j = u_j(t, \hat p, \hat p)$,
exact for every policy affine in $p$ (the equilibrium feedback, no control).

Schemes on the grid $t_k = t_0 + k\Delta t$:

- `"euler"`: Euler-Maruyama ($y_1 = y_0 + $ the term's `vf_prod`), weak order 1.
- `"exponential"`: with the coefficients frozen at the step's midpoint, the linear dynamics of
  $x = p - \hat p$ and $\hat p$,
  $dx = -\kappa_x x\,dt + \sigma dB + dJ$,
  $d\hat p = (b - \kappa_h\hat p)dt + \sigma_o dB_o + dJ_o$,
  are stepped exactly in distribution: $x_{k+1} = e^{-\kappa_x\Delta t}x_k
  + \int e^{-\kappa_x(t_{k+1}-s)}(\sigma dB + dJ)$ (affine policies only); weak order 2 in
  the moments for smooth coefficients, exact for constant ones.

Realised revenues and costs are integrated along each path with the trapezoidal rule; for the
affine policies each integrand is a quadratic in $x = p - \hat p$ whose coefficients depend
on the scenario only, so the per-path work is two multiply-adds per producer and quantity.
Both schemes are the term's `step` on the grid, run by the core's grid stepper (nested
`lax.scan`s, `mftg_jax._simulation._stepper`), which saves the paths at the grid times.
"""

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._noise._levy_path import GridLevyPath, jump_slots, jump_truncation
from .._programs import persistent_jit
from .._simulation._driver import AbstractEnsemble, Observables
from .._simulation._spec import EnsembleSpec, save_indices
from .._simulation._stepper import integrate, time_grid
from .._validation import check_instance, check_size, is_concrete
from ._game import PriceGame
from ._initial import InitialLaw
from ._policy import FeedbackPolicy
from ._riccati import solve_riccati, terminal_values
from ._term import affine_controls, EnsembleState, PriceTerm


class SimulatedPaths(eqx.Module):
    r"""Paths of one batch (returned by [`simulate_paths`][]).

    - `times (S,)`: the save times.
    - `p (M, B, S)`: prices; `phat (M, S)`: conditional mean price of each scenario.
    - `revenue (M, B, n)`: realised discounted revenue of each producer,
      $-\tfrac q2 e^{-\lambda_i(t_1-t_0)}(p-\hat p)(t_1)^2 + \int_{t_0}^{t_1}
      e^{-\lambda_i(t-t_0)}(\hat p u_i - c_i u_i - \tfrac{r_i}2u_i^2
      - \tfrac{\bar r_i}2\hat u_i^2)\,dt$; with `terminal="stationary"` the terminal term is
      the stationary terminal value
      $e^{-\lambda_i(t_1-t_0)}(\tfrac{\beta_i}2\hat p^2 + \gamma_i\hat p)(t_1)$ instead.
    - `cost (M, B, n)`: realised undiscounted cost
      $\int_{t_0}^{t_1}(c_i u_i + \tfrac{r_i}2u_i^2 + \tfrac{\bar r_i}2\hat u_i^2)\,dt$.
    - `jump_overflow`: number of tile-steps whose jumping paths exceeded the slots (0 unless
      an event of probability < 1e-12 per tile-step happened).
    - `running_revenue (M, B, S, n)` (with `revenue_series=True`, else `None`): the realised
      discounted running revenue $\int_{t_0}^{t_s} e^{-\lambda_i(t-t_0)}(\hat p u_i - c_i u_i
      - \tfrac{r_i}2u_i^2 - \tfrac{\bar r_i}2\hat u_i^2)\,dt$ up to each save time (trapezoidal
      rule on the grid; no terminal term).
    """

    times: Array
    p: Array
    phat: Array
    revenue: Array
    cost: Array
    jump_overflow: Array
    running_revenue: Array | None = None


class PathConfig(eqx.Module):
    """Static settings of one ensemble program (shapes, scheme, jump slots)."""

    n_common: int = eqx.field(static=True)
    n_paths: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    scheme: str = eqx.field(static=True)
    save_idx: tuple[int, ...] = eqx.field(static=True)
    dtype: str = eqx.field(static=True)
    track_revenue: bool = eqx.field(static=True)
    idio_jumps: bool = eqx.field(static=True)
    common_jumps: bool = eqx.field(static=True)
    max_count: int = eqx.field(static=True)
    max_count_common: int = eqx.field(static=True)
    tile: int = eqx.field(static=True)
    slots: int | None = eqx.field(static=True)
    revenue_series: bool = eqx.field(static=True, default=False)


def path_config(
    game: PriceGame,
    spec: EnsembleSpec,
    batch_size: int,
    n_tiles: int,
    revenue_series: bool = False,
) -> PathConfig:
    """Check and freeze the static settings of one batch of `batch_size` paths per scenario
    (`revenue_series`: save the running revenues at the save times too)."""
    n_paths_per_scenario = batch_size
    n_steps, scheme, max_jumps_per_step = spec.n_steps, spec.scheme, spec.max_jumps_per_step
    if n_paths_per_scenario % n_tiles:
        raise ValueError(
            f"paths per scenario per batch ({n_paths_per_scenario}) must be a multiple of the "
            f"number of devices ({n_tiles})"
        )
    mk = game.market
    horizon = (float(mk.t0), float(mk.t1)) if is_concrete(mk.t0, mk.t1) else (None, None)
    noise = game.noise
    idio_on, max_count = jump_truncation(noise.jumps, horizon, n_steps, max_jumps_per_step)
    common_on, max_count_common = jump_truncation(
        noise.common_jumps, horizon, n_steps, max_jumps_per_step
    )
    tile = n_paths_per_scenario // n_tiles
    # Sizes before allocating: one batch's prices and every producer's revenue and cost.
    n_saved = len(save_indices(spec, *horizon))
    check_size("one batch of saved prices", (spec.n_common, n_paths_per_scenario, n_saved))
    check_size("one batch of revenues", (2, game.n, spec.n_common, n_paths_per_scenario))
    if revenue_series:
        check_size(
            "one batch of saved revenues", (game.n, spec.n_common, n_paths_per_scenario, n_saved)
        )
    slots = None
    if idio_on and is_concrete(noise.jumps.intensity, game.market.t0, game.market.t1):
        dt = (float(game.market.t1) - float(game.market.t0)) / n_steps
        slots = jump_slots(tile, float(noise.jumps.intensity) * dt)
        if 4 * slots > tile:
            # Frequent jumps (or small tiles): dense size draws cost less than compaction.
            slots = None
    return PathConfig(
        n_common=int(spec.n_common),
        n_paths=int(n_paths_per_scenario),
        n_steps=int(n_steps),
        scheme=scheme,
        save_idx=save_indices(spec, *horizon),
        dtype=spec.checked_dtype(),
        track_revenue=True,
        idio_jumps=idio_on,
        common_jumps=common_on,
        max_count=max_count,
        max_count_common=max_count_common,
        tile=tile,
        slots=slots,
        revenue_series=bool(revenue_series),
    )


def resolve_policy(game: PriceGame, policy) -> Any:
    """`"equilibrium"` -> `FeedbackPolicy(solve_riccati(game))`; others pass through."""
    if isinstance(policy, str):
        if policy != "equilibrium":
            raise ValueError(f"policy must be 'equilibrium', None or a callable, got {policy!r}")
        return FeedbackPolicy(solve_riccati(game))
    if policy is not None and not callable(policy):
        raise ValueError(f"policy must be 'equilibrium', None or a callable, got {policy!r}")
    return policy


def run_paths(
    game: PriceGame,
    policy,
    key: PRNGKeyArray,
    path_ids: Array,
    cfg: PathConfig,
    initial: InitialLaw | None = None,
) -> SimulatedPaths:
    """One batch: `path_ids (B,)` uint32 global path indices within each scenario; `initial`
    an [`InitialLaw`][mftg_jax.price.InitialLaw] of the initial state (default: the game's
    `p0`, `phat0`)."""
    dtype = jnp.dtype(cfg.dtype)
    mk = game.market
    t0, t1 = mk.t0.astype(dtype), mk.t1.astype(dtype)
    K = cfg.n_steps
    grid = time_grid(t0, t1, K, dtype)
    n = game.n
    table = affine_controls(policy, grid, n, dtype)
    mid = None
    if cfg.scheme == "exponential":
        if table is None:
            raise ValueError(
                "scheme='exponential' needs an affine policy ('equilibrium', a FeedbackPolicy "
                "or None); use scheme='euler' for a general callable"
            )
        mid = affine_controls(policy, (grid[:-1] + grid[1:]) / 2, n, dtype)
    M, B = cfg.n_common, path_ids.shape[0]
    k_idio, k_common = jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)
    scen = jnp.arange(M, dtype=jnp.uint32)[:, None]
    idio = GridLevyPath(
        key=k_idio,
        t0=t0,
        t1=t1,
        scenario=scen,
        path=path_ids.astype(jnp.uint32)[None, :],
        jumps=game.noise.jumps if cfg.idio_jumps else None,
        n_steps=K,
        max_count=cfg.max_count,
        tile=cfg.tile if B % cfg.tile == 0 else B,
        slots=cfg.slots,
        dtype=cfg.dtype,
    )
    common = GridLevyPath(
        key=k_common,
        t0=t0,
        t1=t1,
        scenario=scen[:, 0],
        path=jnp.zeros((), jnp.uint32),
        jumps=game.noise.common_jumps if cfg.common_jumps else None,
        n_steps=K,
        max_count=cfg.max_count_common,
        slots=None,
        dtype=cfg.dtype,
    )
    term = PriceTerm(
        game=game,
        grid=grid,
        table=table,
        mid=mid,
        user_policy=None if table is not None else policy,
        idio=idio,
        common=common,
        track=cfg.track_revenue,
    )
    zeros_n = jnp.zeros((n, M, B), dtype) if cfg.track_revenue else jnp.zeros((), dtype)
    if initial is None:
        phat0, p0 = jnp.full((M,), mk.phat0, dtype), jnp.full((M, B), mk.p0, dtype)
    else:
        phat0, p0 = initial.draw(jax.random.fold_in(key, 3), scen[:, 0], path_ids, dtype)
    y0 = EnsembleState(
        phat=phat0,
        p=p0,
        revenue=zeros_n,
        cost=zeros_n,
        overflow=jnp.zeros((), dtype),
    )
    save_ts = grid[jnp.asarray(cfg.save_idx)]
    series = cfg.revenue_series and cfg.track_revenue
    pick = _pick_revenue if series else _pick
    yT, saved = integrate(term, cfg.scheme, y0, grid, cfg.save_idx, pick)
    phat_s, p_s = saved[:2]
    revenue, cost = yT.revenue, yT.cost
    running_revenue = None
    if cfg.track_revenue:
        # Trapezoid = left sum + dt/2 (f(T) - f(0)); terminal penalty from docs/model.md.
        dt = (t1 - t0) / K
        r0, c0 = term.running(t0, 0, y0)
        if series:
            running_revenue = _running_revenue(term, y0, save_ts, cfg.save_idx, saved, r0, dt)
        rT, cT = term.running(t1, K, yT)
        revenue = revenue + dt / 2 * (rT - r0)
        cost = cost + dt / 2 * (cT - c0)
        revenue, cost = jnp.moveaxis(revenue, 0, -1), jnp.moveaxis(cost, 0, -1)
        revenue = revenue + _terminal_revenue(game, yT, t1 - t0, dtype)
    return SimulatedPaths(
        times=save_ts,
        p=jnp.moveaxis(p_s, 0, -1),
        phat=jnp.moveaxis(phat_s, 0, -1),
        revenue=revenue,
        cost=cost,
        jump_overflow=yT.overflow,
        running_revenue=running_revenue,
    )


def _running_revenue(term: PriceTerm, y0: EnsembleState, save_ts, save_idx, saved, r0, dt):
    """The trapezoidal running revenue at the save times, `(M, B, S, n)`, from the saved left
    sums `(S, n, M, B)`: left sum + dt/2 (f(t_s) - f(t_0))."""
    phat_s, p_s, left = saved

    def rate(t, i, phat, p):
        y = EnsembleState(phat, p, y0.revenue, y0.cost, y0.overflow)
        return term.running(t, i, y)[0]

    f = jax.vmap(rate)(save_ts, jnp.asarray(save_idx), phat_s, p_s)
    trapezoid = left + dt / 2 * (f - r0[None])
    return jnp.transpose(trapezoid, (2, 3, 0, 1))


def _terminal_revenue(game: PriceGame, yT: EnsembleState, horizon, dtype) -> Array:
    r"""$e^{-\lambda_i(t_1-t_0)}(\tfrac{\alpha_i}2(p-\hat p)^2 + \tfrac{\beta_i}2\hat p^2
    + \gamma_i\hat p)$ at $t_1$ with the game's terminal values: the penalty
    $-\tfrac q2(p-\hat p)^2$, or the stationary terminal value; `(M, B, n)`."""
    tv = terminal_values(game)
    alpha, beta, gamma = (v.astype(dtype)[None, None, :] for v in tv[:3])
    disc = jnp.exp(-game.producers.lam.astype(dtype) * horizon)[None, None, :]
    dev = (yT.p - yT.phat[:, None])[..., None]
    phat = jnp.broadcast_to(yT.phat[:, None, None], dev.shape)
    return disc * (alpha / 2 * dev * dev + (beta / 2 * phat + gamma) * phat)


def _pick(t, y, args):
    # Module level, not a closure: a new function per call would defeat the jit cache.
    return y.phat, y.p


def _pick_revenue(t, y, args):
    return y.phat, y.p, y.revenue


run_paths_jit = persistent_jit(run_paths)


class PriceEnsemble(AbstractEnsemble):
    """The price game's ensemble on the shared engine: prices, controls, revenues, costs."""

    game: PriceGame
    policy: Any
    initial: InitialLaw | None = None
    revenue_series: bool = eqx.field(static=True, default=False)

    def configure(self, spec: EnsembleSpec, batch_size: int, n_tiles: int) -> PathConfig:
        return path_config(self.game, spec, batch_size, n_tiles, self.revenue_series)

    def saved_per_path(self, spec: EnsembleSpec) -> int:
        mk = self.game.market
        horizon = (float(mk.t0), float(mk.t1)) if is_concrete(mk.t0, mk.t1) else (None, None)
        n_saved = len(save_indices(spec, *horizon))
        return n_saved * (1 + self.game.n) if self.revenue_series else n_saved

    def paths(self, key, path_ids, cfg: PathConfig) -> SimulatedPaths:
        return run_paths(self.game, self.policy, key, path_ids, cfg, self.initial)

    def observe(self, batch: SimulatedPaths, cfg: PathConfig) -> Observables:
        n = self.game.n
        u = _controls_at(self.policy, n, batch.times, batch.p, batch.phat)
        per_path = dict(p=batch.p, u=u, revenue=batch.revenue, cost=batch.cost)
        if batch.running_revenue is not None:
            per_path["running_revenue"] = batch.running_revenue
        return Observables(
            per_path=per_path,
            per_scenario=dict(
                phat=batch.phat, times=jnp.broadcast_to(batch.times, batch.phat.shape)
            ),
            overflow=batch.jump_overflow,
        )

    def histogrammed(self) -> tuple[str, ...]:
        series = ("running_revenue",) if self.revenue_series else ()
        return ("p", "u", "revenue", "cost") + series


def _controls_at(policy, n, times, p, phat):
    """$u(t_s, p, \\hat p)$ for `p (M, B, S)`, `phat (M, S)` -> `(M, B, S, n)`."""
    if policy is None:
        return jnp.zeros(p.shape + (n,), p.dtype)

    def one(t, ps, phs):
        return policy(t, ps, phs[:, None]).astype(p.dtype)

    return jax.vmap(one, in_axes=(0, -1, -1), out_axes=2)(times, p, phat)


def simulate_paths(
    game: PriceGame,
    key: PRNGKeyArray,
    spec: EnsembleSpec,
    *,
    policy: Any = "equilibrium",
    path_offset: int = 0,
    track_revenue: bool = True,
    initial: InitialLaw | None = None,
    revenue_series: bool = False,
) -> SimulatedPaths:
    r"""Simulate `spec.n_common` x `spec.n_paths // spec.n_common` equilibrium price paths in one
    batch on the shared engine (module docstring), and return the paths themselves.

    A pure function of the game's parameters for a fixed `key`: it works under `jax.jit`
    (with `game` traced) and `jax.grad` gives pathwise gradients (Poisson counts are held
    fixed; normal jump sizes are reparameterised).

    **Arguments:**

    - `game`: a [`PriceGame`][mftg_jax.PriceGame].
    - `key`: a JAX PRNG key; path $j$ of scenario $m$ depends only on `(key, m, j)`.
    - `spec`: an [`EnsembleSpec`][mftg_jax.EnsembleSpec]: the shape $M \times N$, the grid,
      the scheme, the save times (`save_steps` when the horizon is traced), the dtype and the
      Poisson truncation; its statistics fields are not used here.
    - `policy`: `"equilibrium"` (solves the Riccati system), a [`FeedbackPolicy`][], `None`
      (no control) or any callable `u(t, p, phat) -> (..., n)` (Euler only).
    - `path_offset`: global index of the first path (to simulate a later batch of the same
      ensemble).
    - `track_revenue`: integrate the realised revenues and costs.
    - `initial`: an [`InitialLaw`][mftg_jax.price.InitialLaw] of $(\hat p_0, p_0 - \hat p_0)$
      (default: the game's fixed `p0`, `phat0`).
    - `revenue_series`: also return the running revenues at the save times
      (`running_revenue`).

    **Returns:** a [`SimulatedPaths`][mftg_jax.price.SimulatedPaths].
    """
    cfg = path_config(game, spec, spec.paths_per_scenario, 1, revenue_series)
    if not track_revenue:
        cfg = dataclasses.replace(cfg, track_revenue=False)
    pol = resolve_policy(game, policy)
    ids = jnp.arange(spec.paths_per_scenario, dtype=jnp.uint32) + jnp.uint32(path_offset)
    if initial is not None:
        check_instance("initial", initial, InitialLaw)
    return run_paths_jit(game, pol, key, ids, cfg, initial)
