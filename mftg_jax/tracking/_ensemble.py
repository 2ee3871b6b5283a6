r"""Monte Carlo of the regulated prices on the shared engine: M common-noise scenarios x N
paths x n assets on a fixed grid.

$$dp = \eta\big[D - S + A\hat p - p - u\big]dt + \sigma dB + dJ + \sigma_odB_o + dJ_o,\qquad
  d\hat p = \eta\big[D - S + A\hat p - \hat p - \hat u\big]dt + \sigma_odB_o + dJ_o$$

with $u = u(t, p, \hat p)$ the equilibrium feedback (or $0$: the uncontrolled prices) and
$\hat u = u(t, \hat p, \hat p)$. All paths of a scenario share the common increments, so the
mean of $p$ over a scenario's paths converges to that scenario's $\hat p$. The noise is
counter-based ([`mftg_jax.GridLevyPath`][]): the increment of asset $i$ of path $j$ at step
$k$ in scenario $m$ is a function of `(key, k, m, j n + i)`, whatever the batch size.

Schemes: `"euler"` (Euler-Maruyama; unstable once $\kappa\Delta t > 2$, and the equilibrium's
gain is large near $t_1$ when the terminal weight is) and `"exponential"` (coefficients
frozen at the step's midpoint; $y = p - \hat p$ decays exactly, $y_{k+1} = e^{-\kappa\Delta t}
y_k + \sqrt{\varphi_1(-2\kappa\Delta t)}\,(\sigma\Delta B + \Delta J)$, which has the exact
mean and variance for frozen coefficients (the jumps' shape is approximate); without
interaction $\hat p$ likewise asset by asset; with interaction $\hat p$ by Euler).

Each path accumulates its realised cost (trapezoidal rule; the terminal term at $t_1$),
$q(p-\hat p)^2 + Q(\hat p - p_{tp})^2 + ru^2 + \bar r\hat u^2$, whose mean is the
equilibrium cost up to the $O(\Delta t^2)$ error of the quadrature, and the fraction of grid times
its price spends inside the band.
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PRNGKeyArray

from .._noise._levy_path import GridLevyPath, jump_truncation, phi1
from .._simulation._driver import (
    AbstractEnsemble,
    EnsembleStatistics,
    Observables,
    run_ensemble,
)
from .._simulation._spec import EnsembleSpec, save_indices
from .._simulation._stepper import AbstractEnsembleTerm, integrate, time_grid
from .._validation import is_concrete
from ._model import TrackingGame
from ._riccati import TrackingSolution


class TrackState(eqx.Module):
    """`phat (M, n)`, `p (M, B, n)`, running `cost (M, B, n)` and its control part
    `control_cost (M, B, n)`, `inside (M, B, n)` (grid times inside the band), `overflow`
    (jump truncation count)."""

    phat: Array
    p: Array
    cost: Array
    control_cost: Array
    inside: Array
    overflow: Array


def _cast(x, dtype):
    return jnp.asarray(x).astype(dtype)


class _TrackTerm(AbstractEnsembleTerm):
    game: TrackingGame
    policy: TrackingSolution | None
    idio: GridLevyPath
    common: GridLevyPath

    def _controls(self, t, p, phat):
        dtype = p.dtype
        if self.policy is None:
            return jnp.zeros_like(p), jnp.zeros_like(phat)
        tt = _cast(t, self.game.eta.dtype)
        u = self.policy.controls(tt, p.astype(tt.dtype), phat[:, None, :].astype(tt.dtype))
        uhat = self.policy.mean_control(tt, phat.astype(tt.dtype))
        return u.astype(dtype), uhat.astype(dtype)

    def _running(self, t, y: TrackState, u, uhat):
        g, dtype = self.game, y.p.dtype
        c = g.costs
        tt = _cast(t, g.eta.dtype)
        ptp = _cast(g.target(tt), dtype)
        lo, hi = _cast(g.band.lo, dtype), _cast(g.band.hi, dtype)
        e = lambda x: _cast(x, dtype)[None, None, :]  # noqa: E731
        dev = y.p - y.phat[:, None, :]
        err = (y.phat - ptp[None, :])[:, None, :]
        uh = uhat[:, None, :]
        control = e(c.r) * u**2 + e(c.rbar) * uh**2
        cost = e(c.q) * dev**2 + e(c.Q) * err**2 + control
        inside = ((y.p >= lo[None, None, :]) & (y.p <= hi[None, None, :])).astype(dtype)
        return cost, control, inside

    # diffrax's term interface: the grid solver only calls `step`; `vf` is asked for the
    # structure of the state, so it returns zeros of that structure.
    def vf(self, t, y, args):
        return jax.tree.map(jnp.zeros_like, y)

    def contr(self, t0, t1, **kwargs):
        return t1 - t0

    def prod(self, vf, control):
        return vf

    def step(self, scheme, t0, t1, y: TrackState) -> TrackState:
        if scheme == "exponential":
            return self.exponential_step(t0, t1, y)
        g, dtype = self.game, y.p.dtype
        k = self.idio.step_index(t0)
        dt = (t1 - t0).astype(dtype)
        tt = _cast(t0, g.eta.dtype)
        u, uhat = self._controls(t0, y.p, y.phat)
        eta = _cast(g.eta, dtype)[None, :]
        base = _cast(g.net_demand(tt), dtype)[None, :]
        if g.cross is not None:
            base = base + y.phat @ _cast(g.cross_matrix(), dtype).T
        dphat = eta * (base - y.phat - uhat)
        dp = eta[:, None, :] * (base[:, None, :] - y.p - u)
        b_idio, j_idio = self.idio.noise(k)
        b_common, j_common = self.common.noise(k)
        nz = g.noise
        d_common = _cast(nz.sigma_o, dtype) * b_common  # (M,)
        if j_common is not None:
            d_common = j_common.add_to(d_common)
        d_idio = _cast(nz.sigma, dtype)[None, None, :] * b_idio
        if j_idio is not None:
            d_idio = j_idio.add_to(d_idio)
        phat1 = y.phat + dphat * dt + d_common[:, None]
        p1 = y.p + dp * dt + d_idio + d_common[:, None, None]
        cost, control, inside = self._running(t0, y, u, uhat)
        over = y.overflow
        for j in (j_idio, j_common):
            if j is not None:
                over = over + j.overflow.astype(dtype)
        return TrackState(
            phat1, p1, y.cost + cost * dt, y.control_cost + control * dt, y.inside + inside, over
        )

    def exponential_step(self, t0, t1, y: TrackState) -> TrackState:
        r"""Coefficients frozen at the midpoint; $y = p - \hat p$ (and, without interaction,
        $\hat p$) stepped with the exact decay and noise scaled to the exact variance."""
        g, dtype = self.game, y.p.dtype
        k = self.idio.step_index(t0)
        dt = (t1 - t0).astype(dtype)
        tm = _cast((t0 + t1) / 2, g.eta.dtype)
        eta = _cast(g.eta, dtype)
        if self.policy is None:
            gain = jnp.zeros_like(eta)
            K = jnp.zeros_like(eta) if not g.interacting else jnp.zeros((g.n, g.n), dtype)
            kk = jnp.zeros_like(eta)
        else:
            gain = _cast(self.policy.deviation_gain(tm), dtype)
            K, kk = (_cast(x, dtype) for x in self.policy.mean_gains(tm))
        kappa = eta * (1 + gain)
        net = _cast(g.net_demand(tm), dtype)
        nz = g.noise
        b_idio, j_idio = self.idio.noise(k)
        b_common, j_common = self.common.noise(k)
        d_common = _cast(nz.sigma_o, dtype) * b_common
        if j_common is not None:
            d_common = j_common.add_to(d_common)
        d_idio = _cast(nz.sigma, dtype)[None, None, :] * b_idio
        if j_idio is not None:
            d_idio = j_idio.add_to(d_idio)
        scale = lambda c: jnp.sqrt(phi1(-2 * c * dt))  # noqa: E731
        if not g.interacting:
            kh = eta * (1 + K)
            b = eta * (net - kk)
            phat1 = (
                jnp.exp(-kh * dt)[None, :] * y.phat
                + (b * dt * phi1(-kh * dt))[None, :]
                + scale(kh)[None, :] * d_common[:, None]
            )
        else:
            A = _cast(g.cross_matrix(), dtype)
            drift = eta[None, :] * (net[None, :] + y.phat @ (A - K).T - y.phat - kk[None, :])
            phat1 = y.phat + drift * dt + d_common[:, None]
        dev = y.p - y.phat[:, None, :]
        dev1 = jnp.exp(-kappa * dt)[None, None, :] * dev + scale(kappa)[None, None, :] * d_idio
        p1 = phat1[:, None, :] + dev1
        u, uhat = self._controls(t0, y.p, y.phat)
        cost, control, inside = self._running(t0, y, u, uhat)
        over = y.overflow
        for j in (j_idio, j_common):
            if j is not None:
                over = over + j.overflow.astype(dtype)
        return TrackState(
            phat1, p1, y.cost + cost * dt, y.control_cost + control * dt, y.inside + inside, over
        )


class TrackConfig(eqx.Module):
    """Static settings of one batch program."""

    n_common: int = eqx.field(static=True)
    n_paths: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    scheme: str = eqx.field(static=True)
    save_idx: tuple[int, ...] = eqx.field(static=True)
    dtype: str = eqx.field(static=True)
    idio_jumps: bool = eqx.field(static=True)
    common_jumps: bool = eqx.field(static=True)
    max_count: int = eqx.field(static=True)
    max_count_common: int = eqx.field(static=True)


def track_config(game: TrackingGame, spec: EnsembleSpec, batch_size: int) -> TrackConfig:
    """Check and freeze the static settings of a batch."""
    horizon = (float(game.t0), float(game.t1)) if is_concrete(game.t0, game.t1) else (None,) * 2
    nz = game.noise
    on_i, k_i = jump_truncation(nz.jumps, horizon, spec.n_steps, spec.max_jumps_per_step)
    on_c, k_c = jump_truncation(nz.common_jumps, horizon, spec.n_steps, spec.max_jumps_per_step)
    return TrackConfig(
        n_common=spec.n_common,
        n_paths=batch_size,
        n_steps=spec.n_steps,
        scheme=spec.scheme,
        save_idx=save_indices(spec, *horizon),
        dtype=spec.checked_dtype(),
        idio_jumps=on_i,
        common_jumps=on_c,
        max_count=k_i,
        max_count_common=k_c,
    )


class TrackPaths(eqx.Module):
    """One batch: `times (S,)`, `p (M, B, S, n)`, `phat (M, S, n)`, realised `cost (M, B, n)`
    and its control part `control_cost (M, B, n)`, `inside (M, B, n)` (fraction of grid times
    in the band), `jump_overflow`."""

    times: Array
    p: Array
    phat: Array
    cost: Array
    control_cost: Array
    inside: Array
    jump_overflow: Array


def _pick(t, y, args):
    return y.phat, y.p


def run_paths(game, policy, key: PRNGKeyArray, path_ids: Array, cfg: TrackConfig) -> TrackPaths:
    """One batch of `path_ids (B,)` paths of every scenario (module docstring)."""
    dtype = jnp.dtype(cfg.dtype)
    n, M, B, K = game.n, cfg.n_common, path_ids.shape[0], cfg.n_steps
    t0, t1 = _cast(game.t0, dtype), _cast(game.t1, dtype)
    grid = time_grid(t0, t1, K, dtype)
    scen = jnp.arange(M, dtype=jnp.uint32)
    asset = jnp.arange(n, dtype=jnp.uint32)
    path = path_ids.astype(jnp.uint32)[:, None] * jnp.uint32(n) + asset[None, :]
    idio = GridLevyPath(
        key=jax.random.fold_in(key, 1),
        t0=t0,
        t1=t1,
        scenario=scen[:, None, None],
        path=path[None],
        jumps=game.noise.jumps if cfg.idio_jumps else None,
        n_steps=K,
        max_count=cfg.max_count,
        dtype=cfg.dtype,
    )
    common = GridLevyPath(
        key=jax.random.fold_in(key, 2),
        t0=t0,
        t1=t1,
        scenario=scen,
        path=jnp.zeros((), jnp.uint32),
        jumps=game.noise.common_jumps if cfg.common_jumps else None,
        n_steps=K,
        max_count=cfg.max_count_common,
        dtype=cfg.dtype,
    )
    term = _TrackTerm(game, policy, idio, common)
    p0 = _cast(game.p0, dtype)
    zeros = jnp.zeros((M, B, n), dtype)
    y0 = TrackState(
        jnp.broadcast_to(p0[None, :], (M, n)),
        jnp.broadcast_to(p0[None, None, :], (M, B, n)),
        zeros,
        zeros,
        zeros,
        jnp.zeros((), dtype),
    )
    yT, (phat_s, p_s) = integrate(term, cfg.scheme, y0, grid, cfg.save_idx, _pick)
    c = game.costs
    e = lambda x: _cast(x, dtype)[None, None, :]  # noqa: E731
    ptp1 = _cast(game.target(_cast(game.t1, game.eta.dtype)), dtype)
    dev = yT.p - yT.phat[:, None, :]
    err = (yT.phat - ptp1[None, :])[:, None, :]
    # Trapezoid = left sum + dt/2 (f(t1) - f(t0)): the mean's transient can be fast.
    dt = (t1 - t0) / K
    f0, c0, _ = term._running(t0, y0, *term._controls(t0, y0.p, y0.phat))
    fT, cT, _ = term._running(t1, yT, *term._controls(t1, yT.p, yT.phat))
    cost = yT.cost + dt / 2 * (fT - f0)
    control_cost = yT.control_cost + dt / 2 * (cT - c0)
    cost = cost + e(c.q_terminal) * dev**2 + e(c.Q_terminal) * err**2
    return TrackPaths(
        times=grid[jnp.asarray(cfg.save_idx)],
        p=jnp.moveaxis(p_s, 0, 2),
        phat=jnp.moveaxis(phat_s, 0, 1),
        cost=cost,
        control_cost=control_cost,
        inside=yT.inside / K,
        jump_overflow=yT.overflow,
    )


class TrackingEnsemble(AbstractEnsemble):
    r"""The regulated prices' ensemble on the shared engine (module docstring).

    **Arguments:** `game`; `policy`: a [`TrackingSolution`][mftg_jax.tracking.TrackingSolution]
    (its equilibrium feedback) or `None` (no control); `center`: optional `(S, n)` values
    $c$ at the save times for the observable `centered2` $= (p - c)^2$ (with $c = E p$ its
    mean is $\mathrm{Var}\,p$ and the engine's standard error is the variance's);
    `fan`: also stream the quantiles of `p` and of the control `u` at the save times (fan
    charts).
    """

    game: TrackingGame
    policy: TrackingSolution | None
    center: Array | None = None
    fan: bool = eqx.field(static=True, default=False)

    def _control_paths(self, batch: TrackPaths) -> Array:
        """The feedback $u$ along the saved paths, `(M, B, S, n)`."""
        dtype = self.game.eta.dtype

        def at(t, p, phat):
            return self.policy.controls(t.astype(dtype), p.astype(dtype), phat[:, None, :])

        u = jax.vmap(at, in_axes=(0, 2, 1), out_axes=2)(
            batch.times, batch.p, batch.phat.astype(dtype)
        )
        return u.astype(batch.p.dtype)

    def configure(self, spec: EnsembleSpec, batch_size: int, n_tiles: int) -> TrackConfig:
        return track_config(self.game, spec, batch_size)

    def saved_per_path(self, spec: EnsembleSpec) -> int:
        g = self.game
        horizon = (float(g.t0), float(g.t1)) if is_concrete(g.t0, g.t1) else (None,) * 2
        return len(save_indices(spec, *horizon)) * g.n

    def paths(self, key, path_ids, cfg: TrackConfig) -> TrackPaths:
        return run_paths(self.game, self.policy, key, path_ids, cfg)

    def observe(self, batch: TrackPaths, cfg: TrackConfig) -> Observables:
        return Observables(
            per_path=dict(
                p=batch.p,
                deviation2=(batch.p - batch.phat[:, None]) ** 2,
                cost=batch.cost,
                control_cost=batch.control_cost,
                inside=batch.inside,
                **({"u": self._control_paths(batch)} if self._fan_control else {}),
                **(
                    {}
                    if self.center is None
                    else dict(
                        centered2=(batch.p - self.center.astype(batch.p.dtype)[None, None]) ** 2
                    )
                ),
            ),
            per_scenario=dict(phat=batch.phat),
            overflow=batch.jump_overflow,
        )

    def histogrammed(self) -> tuple[str, ...]:
        if not self.fan:
            return ()
        return ("p", "u") if self._fan_control else ("p",)

    @property
    def _fan_control(self) -> bool:
        # Without a policy u = 0: nothing to stream (and XLA would constant-fold its range).
        return self.fan and self.policy is not None


def simulate(
    game_or_solution: TrackingGame | TrackingSolution,
    key: PRNGKeyArray,
    spec: EnsembleSpec,
    *,
    controlled: bool = True,
    center: Array | None = None,
    fan: bool = False,
    **kwargs: Any,
) -> EnsembleStatistics:
    r"""Monte Carlo of the regulated (or uncontrolled) prices on the shared engine.

    **Arguments:**

    - `game_or_solution`: a [`TrackingSolution`][mftg_jax.tracking.TrackingSolution], or a
      game (solved here when `controlled`).
    - `key`: a JAX PRNG key; `spec`: an [`mftg_jax.EnsembleSpec`][] with `scheme="euler"`.
    - `controlled`: `False` simulates $u = 0$.
    - `center`: `(S, n)` centre of the observable `centered2` (see `TrackingEnsemble`).
    - `fan`: also the streamed quantiles of `p` and, when controlled, the per-path control
      `u (S, n)` and its quantiles (levels `spec.quantiles`).
    - `kwargs`: passed to [`mftg_jax.run_ensemble`][] (`mesh`, `progress`).

    **Returns:** [`mftg_jax.EnsembleStatistics`][] with per-path observables `p (S, n)`,
    `deviation2 (S, n)` $= (p - \hat p)^2$,
    `cost (n,)` (realised cost), `control_cost (n,)` (its part $\int ru^2 + \bar r\hat u^2
    dt$), `inside (n,)` (fraction of grid times in the band) and the per-scenario
    `phat (S, n)`.
    """
    if isinstance(game_or_solution, TrackingSolution):
        game, sol = game_or_solution.game, game_or_solution
    else:
        from ._riccati import solve

        game = game_or_solution
        sol = solve(game) if controlled else None
    model = TrackingEnsemble(game, sol if controlled else None, center, fan)
    return run_ensemble(model, key, spec, **kwargs)
