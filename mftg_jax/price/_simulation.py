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
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray
import numpy as np

from .._noise._levy_path import GridLevyPath, jump_slots, phi1, poisson_max_count
from .._validation import is_concrete
from ._game import PriceGame
from ._policy import FeedbackPolicy
from ._riccati import solve_riccati

_SCHEMES = ("euler", "exponential")


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


class _PriceTerm(diffrax.AbstractTerm):
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

    # -- the exponential step ---------------------------------------------------------
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


class _GridEnd(diffrax.AbstractLocalInterpolation):
    """A step's end state: exact at the grid times, which are the only times saved.

    Keeping only the end state spares a copy of the batch per step (a linear interpolation
    would keep the start state alive as well).
    """

    t0: Any
    t1: Any
    y1: Any

    def evaluate(self, t0, t1=None, left=True):
        if t1 is not None:
            raise NotImplementedError("the ensemble's steps are only evaluated at grid times")
        return self.y1


class _GridStep(diffrax.AbstractSolver):
    """One grid step of the ensemble: `"euler"` (Euler-Maruyama) or `"exponential"`."""

    scheme: str = eqx.field(static=True)
    term_structure = diffrax.AbstractTerm
    interpolation_cls = _GridEnd

    def order(self, terms):
        return 1 if self.scheme == "euler" else 2

    def strong_order(self, terms):
        return 0.5

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        # diffeqsolve wraps the term (integration direction); the step needs ours.
        term = getattr(terms, "term", terms)
        if self.scheme == "euler":
            y1 = jax.tree.map(jnp.add, y0, term.vf_prod(t0, y0, args, term.contr(t0, t1)))
        else:
            y1 = term.exponential_step(t0, t1, y0)
        return y1, None, dict(y1=y1), None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


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


def _resolve_dtype(dtype) -> str:
    name = "float32" if dtype is None else jnp.dtype(dtype).name
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {name}")
    if name == "float64" and not jax.config.read("jax_enable_x64"):
        raise ValueError(
            "dtype float64 needs jax_enable_x64 (jax.config.update('jax_enable_x64', True))"
        )
    return name


def _save_indices(game, n_steps, save_times) -> tuple[int, ...]:
    if isinstance(save_times, dict):
        idx = tuple(int(i) for i in save_times["steps"])
        if (
            not idx
            or any(not 0 <= i <= n_steps for i in idx)
            or any(b <= a for a, b in zip(idx, idx[1:]))
        ):
            raise ValueError(f"save steps must increase within [0, {n_steps}], got {idx}")
        return idx
    if save_times is None:
        n_save = min(n_steps, 100)
        return tuple(int(round(i * n_steps / n_save)) for i in range(n_save + 1))
    if not is_concrete(game.market.t0, game.market.t1):
        raise ValueError(
            "save_times need a concrete horizon; under jit pass save_times={'steps': (k, ...)} "
            "(grid indices)"
        )
    t0, t1 = float(game.market.t0), float(game.market.t1)
    ts = np.atleast_1d(np.asarray(save_times, dtype=float))
    if np.any(ts < t0 - 1e-12) or np.any(ts > t1 + 1e-12) or ts.size == 0:
        raise ValueError(f"save_times must lie in [t0, t1] = [{t0:g}, {t1:g}], got {ts}")
    idx = np.round((ts - t0) / (t1 - t0) * n_steps).astype(int)
    if np.any(np.diff(idx) <= 0):
        raise ValueError(
            "save_times must be increasing and at least one grid step apart after snapping "
            f"to the grid of n_steps = {n_steps}"
        )
    return tuple(int(i) for i in idx)


def path_config(
    game: PriceGame,
    *,
    n_paths_per_scenario: int,
    n_common: int = 1,
    n_steps: int = 1000,
    scheme: str = "exponential",
    save_times=None,
    dtype=None,
    track_revenue: bool = True,
    n_tiles: int = 1,
    max_jumps_per_step: int | None = None,
) -> PathConfig:
    """Check and freeze the static settings of [`simulate_paths`][] (see there)."""
    for name, v, lo in (
        ("n_paths_per_scenario", n_paths_per_scenario, 1),
        ("n_common", n_common, 1),
        ("n_steps", n_steps, 1),
    ):
        if not isinstance(v, int | np.integer) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme must be one of {_SCHEMES}, got {scheme!r}")
    if n_paths_per_scenario % n_tiles:
        raise ValueError(
            f"paths per scenario per batch ({n_paths_per_scenario}) must be a multiple of the "
            f"number of devices ({n_tiles})"
        )
    noise = game.noise

    def jumps_on(cp):
        return not (is_concrete(cp.intensity) and float(cp.intensity) == 0.0)

    def kmax(cp):
        if max_jumps_per_step is not None:
            return int(max_jumps_per_step)
        if is_concrete(cp.intensity, game.market.t0, game.market.t1):
            dt = (float(game.market.t1) - float(game.market.t0)) / n_steps
            return poisson_max_count(float(cp.intensity) * dt)
        return 8

    idio_on, common_on = jumps_on(noise.jumps), jumps_on(noise.common_jumps)
    tile = n_paths_per_scenario // n_tiles
    slots = None
    if idio_on and is_concrete(noise.jumps.intensity, game.market.t0, game.market.t1):
        dt = (float(game.market.t1) - float(game.market.t0)) / n_steps
        slots = jump_slots(tile, float(noise.jumps.intensity) * dt)
        if 4 * slots > tile:
            # Frequent jumps (or small tiles): dense size draws cost less than compaction.
            slots = None
    return PathConfig(
        n_common=int(n_common),
        n_paths=int(n_paths_per_scenario),
        n_steps=int(n_steps),
        scheme=scheme,
        save_idx=_save_indices(game, n_steps, save_times),
        dtype=_resolve_dtype(dtype),
        track_revenue=bool(track_revenue),
        idio_jumps=idio_on,
        common_jumps=common_on,
        max_count=kmax(noise.jumps) if idio_on else 1,
        max_count_common=kmax(noise.common_jumps) if common_on else 1,
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
    grid = t0 + (t1 - t0) * jnp.arange(K + 1, dtype=dtype) / K
    # The compiler may divide by K as a product with 1/K: pin the end to t1 exactly.
    grid = grid.at[-1].set(t1)
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
    later = tuple(i for i in cfg.save_idx if i > 0)
    subs = [diffrax.SubSaveAt(t1=True)]
    if later:
        subs.append(diffrax.SubSaveAt(ts=grid[jnp.asarray(later)], fn=_pick))
    if cfg.save_idx[0] == 0:
        subs.append(diffrax.SubSaveAt(t0=True, fn=_pick))
    saveat = diffrax.SaveAt(subs=subs)
    sol = diffrax.diffeqsolve(
        term,
        _GridStep(cfg.scheme),
        t0=t0,
        t1=t1,
        dt0=None,
        y0=y0,
        saveat=saveat,
        stepsize_controller=diffrax.StepTo(ts=grid),
        max_steps=K,
    )
    yT, *saved = sol.ys
    yT = jax.tree.map(lambda x: x[-1], yT)
    saved = saved[::-1]  # t0 first
    phat_s = jnp.concatenate([s[0] for s in saved])
    p_s = jnp.concatenate([s[1] for s in saved])
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
        revenue = revenue - q / 2 * jnp.exp(-lam * (t1 - t0)) * dev * dev
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


def simulate_paths(
    game: PriceGame,
    key: PRNGKeyArray,
    *,
    n_paths_per_scenario: int,
    n_common: int = 1,
    n_steps: int = 1000,
    scheme: str = "exponential",
    policy: Any = "equilibrium",
    save_times=None,
    dtype=None,
    path_offset: int = 0,
    track_revenue: bool = True,
    max_jumps_per_step: int | None = None,
) -> SimulatedPaths:
    r"""Simulate `n_common` x `n_paths_per_scenario` equilibrium price paths (module docstring).

    A pure function of the game's parameters for a fixed `key`: it works under `jax.jit`
    (with `game` traced) and `jax.grad` gives pathwise gradients (Poisson counts are held
    fixed; normal jump sizes are reparameterised).

    **Arguments:**

    - `game`: a [`PriceGame`][].
    - `key`: a JAX PRNG key; path $j$ of scenario $m$ depends only on `(key, m, j)`.
    - `n_paths_per_scenario`, `n_common`: the ensemble shape $N$, $M$.
    - `n_steps`: grid steps $K$ on $[t_0, t_1]$.
    - `scheme`: `"exponential"` (default; affine policies) or `"euler"`.
    - `policy`: `"equilibrium"` (solves the Riccati system), a [`FeedbackPolicy`][], `None`
      (no control) or any callable `u(t, p, phat) -> (..., n)` (Euler only).
    - `save_times`: times to save (snapped to the grid), or `{"steps": (k0, k1, ...)}` grid
      indices (needed when the horizon is traced); default 101 grid times.
    - `dtype`: `float32` (default) or `float64` (needs x64).
    - `path_offset`: global index of the first path (to simulate a later batch of the same
      ensemble).
    - `track_revenue`: integrate the realised revenues and costs.
    - `max_jumps_per_step`: Poisson truncation; default from the intensity (exact to $2^{-32}$)
      or 8 when the intensity is traced.

    **Returns:** a [`SimulatedPaths`][].
    """
    cfg = path_config(
        game,
        n_paths_per_scenario=n_paths_per_scenario,
        n_common=n_common,
        n_steps=n_steps,
        scheme=scheme,
        save_times=save_times,
        dtype=dtype,
        track_revenue=track_revenue,
        max_jumps_per_step=max_jumps_per_step,
    )
    pol = resolve_policy(game, policy)
    ids = jnp.arange(n_paths_per_scenario, dtype=jnp.uint32) + jnp.uint32(path_offset)
    return run_paths_jit(game, pol, key, ids, cfg)
