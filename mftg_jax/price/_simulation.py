r"""Path ensembles of the price game: M common-noise scenarios x N paths, one `diffeqsolve`.

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
Both schemes are `diffrax.AbstractSolver`s stepping on the grid (`StepTo`); their
interpolation is the step's end state, exact at the grid times where the paths are saved.
"""

from collections.abc import Callable
import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._noise._levy_path import GridLevyPath, jump_slots, jump_truncation, phi1
from .._simulation._driver import AbstractEnsemble, Observables
from .._simulation._spec import EnsembleSpec, save_indices
from .._simulation._stepper import AbstractEnsembleTerm, integrate, time_grid
from .._validation import check_size, is_concrete
from ._game import PriceGame
from ._policy import FeedbackPolicy
from ._riccati import solve_riccati


class EnsembleState(eqx.Module):
    """The batched state: `phat (M,)`, `p (M, B)`, running revenue and cost `(n, M, B)`."""

    phat: Array
    p: Array
    revenue: Array
    cost: Array
    overflow: Array


class SimulatedPaths(eqx.Module):
    r"""Paths of one batch (returned by [`simulate_paths`][]).

    - `times (S,)`: the save times.
    - `p (M, B, S)`: prices; `phat (M, S)`: conditional mean price of each scenario.
    - `revenue (M, B, n)`: realised discounted revenue of each producer,
      $-\tfrac q2 e^{-\lambda_i(t_1-t_0)}(p-\hat p)(t_1)^2 + \int_{t_0}^{t_1}
      e^{-\lambda_i(t-t_0)}(\hat p u_i - c_i u_i - \tfrac{r_i}2u_i^2
      - \tfrac{\bar r_i}2\hat u_i^2)\,dt$.
    - `cost (M, B, n)`: realised undiscounted cost
      $\int_{t_0}^{t_1}(c_i u_i + \tfrac{r_i}2u_i^2 + \tfrac{\bar r_i}2\hat u_i^2)\,dt$.
    - `jump_overflow`: number of tile-steps whose jumping paths exceeded the slots (0 unless
      an event of probability < 1e-12 per tile-step happened).
    """

    times: Array
    p: Array
    phat: Array
    revenue: Array
    cost: Array
    jump_overflow: Array


class AffineControls(eqx.Module):
    r"""An affine feedback tabulated on times: $u_i = g_i(t)(p - \hat p) + k_i(t)\hat p - m_i(t)$.

    Built from a [`FeedbackPolicy`][] (or zero for no control) by [`affine_controls`][].
    """

    times: Array
    gain: Array
    k: Array
    m: Array

    def at(self, idx):
        return self.gain[idx], self.k[idx], self.m[idx]


def affine_controls(policy, times: Array, n: int, dtype) -> AffineControls | None:
    """Tabulate `policy` (a `FeedbackPolicy` or `None`) at `times`; other callables give None."""
    if policy is None:
        z = jnp.zeros((times.shape[0], n), dtype)
        return AffineControls(times, z, z, z)
    if isinstance(policy, FeedbackPolicy):

        def one(t):
            g = policy.deviation_gain(t)
            k, m = policy.riccati.gains(t)
            return g, k, m

        g, k, m = jax.vmap(one)(times.astype(policy.riccati.game.market.eta.dtype))
        return AffineControls(times, g.astype(dtype), k.astype(dtype), m.astype(dtype))
    return None


class _PriceTerm(AbstractEnsembleTerm):
    """Drift, Brownian and jump parts of the ensemble's dynamics (module docstring).

    Revenues and costs are carried producer-first, `(n, M, B)`, so that each producer's
    running sum is one contiguous array.
    """

    game: PriceGame
    grid: Array
    table: AffineControls | None
    mid: AffineControls | None
    user_policy: Callable | None
    idio: GridLevyPath
    common: GridLevyPath
    track: bool = eqx.field(static=True)

    # -- helpers -----------------------------------------------------------------
    def _idx(self, t):
        return self.idio.step_index(t)

    def _coef(self, dtype):
        g = self.game
        c = lambda x: jnp.asarray(x).astype(dtype)
        return (
            c(g.market.eta),
            c(g.noise.sigma),
            c(g.noise.sigma_o),
            c(g.producers.c),
            c(g.producers.r),
            c(g.producers.rbar),
            c(g.producers.lam),
        )

    def controls(self, t, idx, p, phat):
        """$(u, \\hat u)$: shapes `p.shape + (n,)` and `phat.shape + (n,)`."""
        if self.table is not None:
            g, k, m = self.table.at(idx)
            uhat = k * phat[..., None] - m
            u = g * (p - phat[..., None])[..., None] + uhat[..., None, :]
            return u, uhat
        u = self.user_policy(t, p, phat[..., None])
        uhat = self.user_policy(t, phat, phat)
        return u.astype(p.dtype), uhat.astype(p.dtype)

    def running(self, t, idx, y: EnsembleState, weight=None):
        r"""Revenue and cost integrands at `(t, y)` (times `weight`), each `(n, M, B)`.

        For an affine policy $u_i = g_i x + \hat u_i$, $x = p - \hat p$, both are quadratics
        $A_i + B_i x + C_i x^2$ whose coefficients depend on the scenario only.
        """
        dtype = y.p.dtype
        _, _, _, c, r, rbar, lam = self._coef(dtype)
        disc = jnp.exp(-lam * (t - self.grid[0]).astype(dtype))
        w = jnp.ones((), dtype) if weight is None else jnp.asarray(weight, dtype)
        if self.table is None:
            u, uhat = self.controls(t, idx, y.p, y.phat)
            u = jnp.moveaxis(u, -1, 0)
            uh = jnp.moveaxis(uhat, -1, 0)[..., None]
            ci, ri, rbi, di = (z[:, None, None] for z in (c, r, rbar, disc))
            cost = ci * u + ri / 2 * u * u + rbi / 2 * uh * uh
            revenue = di * (y.phat[None, :, None] * u - cost)
            return w * revenue, w * cost
        g, k, m = self.table.at(idx)
        col = lambda z: z[:, None]  # noqa: E731
        uhat = col(k) * y.phat[None, :] - col(m)  # (n, M)
        h = y.phat[None, :] - col(c)
        rr = col(r + rbar) / 2
        a_rev = col(w * disc) * (h * uhat - rr * uhat * uhat)
        b_rev = col(w * disc * g) * (h - col(r) * uhat)
        c_rev = -w * disc * r * g * g / 2
        a_cost = w * (col(c) * uhat + rr * uhat * uhat)
        b_cost = col(w * g) * (col(c) + col(r) * uhat)
        c_cost = w * r * g * g / 2
        x = (y.p - y.phat[:, None])[None]
        e = lambda z: z[..., None]  # noqa: E731
        revenue = e(a_rev) + x * (e(b_rev) + e(e(c_rev)) * x)
        cost = e(a_cost) + x * (e(b_cost) + e(e(c_cost)) * x)
        return revenue, cost

    def drift(self, t, y: EnsembleState):
        dtype = y.p.dtype
        idx = self._idx(t)
        eta = self._coef(dtype)[0]
        a = self.game.market.a(t).astype(dtype)
        if self.table is not None:
            g, k, m = self.table.at(idx)
            sum_uhat = jnp.sum(k) * y.phat - jnp.sum(m)
            dphat = eta * (a - sum_uhat - y.phat)
            dp = dphat[:, None] - eta * (1 + jnp.sum(g)) * (y.p - y.phat[:, None])
        else:
            u, uhat = self.controls(t, idx, y.p, y.phat)
            dp = eta * (a - jnp.sum(u, -1) - y.p)
            dphat = eta * (a - jnp.sum(uhat, -1) - y.phat)
        if self.track:
            rev, cost = self.running(t, idx, y)
        else:
            rev, cost = y.revenue, y.cost
        return dphat, dp, rev, cost

    # -- diffrax term interface ---------------------------------------------------
    def vf(self, t, y, args):
        return self.drift(t, y)

    def contr(self, t0, t1, **kwargs):
        k = self._idx(t0)
        return t1 - t0, self.idio.noise(k), self.common.noise(k)

    def prod(self, vf, control):
        dphat, dp, rev, cost = vf
        dt, (b_idio, j_idio), (b_common, j_common) = control
        dtype = dp.dtype
        _, sigma, sigma_o = self._coef(dtype)[:3]
        dt = jnp.asarray(dt).astype(dtype)
        d_common = sigma_o * b_common
        if j_common is not None:
            d_common = j_common.add_to(d_common)
        phat = dphat * dt + d_common
        p = dp * dt + sigma * b_idio + d_common[..., None]
        if j_idio is not None:
            p = j_idio.add_to(p)
        if self.track:
            rev, cost = rev * dt, cost * dt
        else:
            rev, cost = jnp.zeros_like(rev), jnp.zeros_like(cost)
        return EnsembleState(phat, p, rev, cost, _overflow(j_idio, j_common, dtype))

    # -- the grid step -------------------------------------------------------------------
    def step(self, scheme, t0, t1, y: EnsembleState) -> EnsembleState:
        if scheme == "euler":
            return jax.tree.map(jnp.add, y, self.vf_prod(t0, y, None, self.contr(t0, t1)))
        return self.exponential_step(t0, t1, y)

    def exponential_step(self, t0, t1, y: EnsembleState) -> EnsembleState:
        dtype = y.p.dtype
        k = self._idx(t0)
        eta, sigma, sigma_o = self._coef(dtype)[:3]
        dt = (t1 - t0).astype(dtype)
        g, kk, m = self.mid.at(k)
        a = self.game.market.a((t0 + t1) / 2).astype(dtype)
        kappa_x = eta * (1 + jnp.sum(g))
        kappa_h = eta * (1 + jnp.sum(kk))
        b = eta * (a + jnp.sum(m))
        b_idio, j_idio = self.idio.noise(k, decay=kappa_x)
        b_common, j_common = self.common.noise(k, decay=kappa_h)
        phat1 = jnp.exp(-kappa_h * dt) * y.phat + b * dt * phi1(-kappa_h * dt) + sigma_o * b_common
        if j_common is not None:
            phat1 = j_common.add_to(phat1)
        # p1 = phat1 + e^{-kappa_x dt} (p - phat) + sigma dB + dJ, in one pass over the paths.
        p1 = phat1[..., None] + jnp.exp(-kappa_x * dt) * (y.p - y.phat[..., None]) + sigma * b_idio
        if j_idio is not None:
            p1 = j_idio.add_to(p1)
        rev, cost = y.revenue, y.cost
        if self.track:
            r0, c0 = self.running(t0, k, y, weight=dt)
            rev, cost = rev + r0, cost + c0
        over = y.overflow + _overflow(j_idio, j_common, dtype)
        return EnsembleState(phat1, p1, rev, cost, over)


def _overflow(j_idio, j_common, dtype):
    total = jnp.zeros((), dtype)
    for j in (j_idio, j_common):
        if j is not None:
            total = total + j.overflow.astype(dtype)
    return total


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


def path_config(game: PriceGame, spec: EnsembleSpec, batch_size: int, n_tiles: int) -> PathConfig:
    """Check and freeze the static settings of one batch of `batch_size` paths per scenario."""
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
) -> SimulatedPaths:
    """One batch: `path_ids (B,)` uint32 global path indices within each scenario."""
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
    term = _PriceTerm(
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
    y0 = EnsembleState(
        phat=jnp.full((M,), mk.phat0, dtype),
        p=jnp.full((M, B), mk.p0, dtype),
        revenue=zeros_n,
        cost=zeros_n,
        overflow=jnp.zeros((), dtype),
    )
    save_ts = grid[jnp.asarray(cfg.save_idx)]
    yT, (phat_s, p_s) = integrate(term, cfg.scheme, y0, grid, cfg.save_idx, _pick)
    revenue, cost = yT.revenue, yT.cost
    if cfg.track_revenue:
        # Trapezoid = left sum + dt/2 (f(T) - f(0)); terminal penalty from docs/model.md.
        dt = (t1 - t0) / K
        r0, c0 = term.running(t0, 0, y0)
        rT, cT = term.running(t1, K, yT)
        revenue = revenue + dt / 2 * (rT - r0)
        cost = cost + dt / 2 * (cT - c0)
        revenue, cost = jnp.moveaxis(revenue, 0, -1), jnp.moveaxis(cost, 0, -1)
        lam = game.producers.lam.astype(dtype)
        q = mk.q.astype(dtype)
        dev = (yT.p - yT.phat[:, None])[..., None]
        revenue = revenue - q / 2 * jnp.exp(-lam * (t1 - t0))[None, None, :] * dev * dev
    return SimulatedPaths(
        times=save_ts,
        p=jnp.moveaxis(p_s, 0, -1),
        phat=jnp.moveaxis(phat_s, 0, -1),
        revenue=revenue,
        cost=cost,
        jump_overflow=yT.overflow,
    )


def _pick(t, y, args):
    # Module level, not a closure: a new function per call would defeat the jit cache.
    return y.phat, y.p


run_paths_jit = eqx.filter_jit(run_paths)


class PriceEnsemble(AbstractEnsemble):
    """The price game's ensemble on the shared engine: prices, controls, revenues, costs."""

    game: PriceGame
    policy: Any

    def configure(self, spec: EnsembleSpec, batch_size: int, n_tiles: int) -> PathConfig:
        return path_config(self.game, spec, batch_size, n_tiles)

    def saved_per_path(self, spec: EnsembleSpec) -> int:
        mk = self.game.market
        horizon = (float(mk.t0), float(mk.t1)) if is_concrete(mk.t0, mk.t1) else (None, None)
        return len(save_indices(spec, *horizon))

    def paths(self, key, path_ids, cfg: PathConfig) -> SimulatedPaths:
        return run_paths(self.game, self.policy, key, path_ids, cfg)

    def observe(self, batch: SimulatedPaths, cfg: PathConfig) -> Observables:
        n = self.game.n
        u = _controls_at(self.policy, n, batch.times, batch.p, batch.phat)
        return Observables(
            per_path=dict(p=batch.p, u=u, revenue=batch.revenue, cost=batch.cost),
            per_scenario=dict(
                phat=batch.phat, times=jnp.broadcast_to(batch.times, batch.phat.shape)
            ),
            overflow=batch.jump_overflow,
        )

    def histogrammed(self) -> tuple[str, ...]:
        return ("p", "u")


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

    **Returns:** a [`SimulatedPaths`][mftg_jax.price.SimulatedPaths].
    """
    cfg = path_config(game, spec, spec.paths_per_scenario, 1)
    if not track_revenue:
        cfg = dataclasses.replace(cfg, track_revenue=False)
    pol = resolve_policy(game, policy)
    ids = jnp.arange(spec.paths_per_scenario, dtype=jnp.uint32) + jnp.uint32(path_offset)
    return run_paths_jit(game, pol, key, ids, cfg)
