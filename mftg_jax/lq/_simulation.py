r"""Monte Carlo of a general game under its equilibrium feedback, on the shared engine.

Within a scenario the paths share the common noise: the regime path, $B_o$ and the common
marks $\tilde N_o$. The regime path is simulated exactly as a Markov chain at the grid
times (transition matrix $e^{Q\,\Delta t}$); the state by Euler-Maruyama with compensated
Poisson increments on the finite mark sets (intensities frozen over a step at the scenario's
regime); $\hat x$ by its own conditional-mean equation driven by the common noise,

$$d\hat x = \hat b\,dt + \hat\sigma_o\,dB_o + \textstyle\sum_m \hat\mu_{o,m}\,d\tilde N_{o,m},$$

where $\hat z$ is $z$ with $x \to \hat x$, $u_j \to \hat u_j$. Each path accumulates its
realised discounted cost of equation (2), including the noisy measurement terms
$(\xi\dots)\,dB_o$ and $(\xi\dots)\,d\tilde N_{o,m}$ (Itô sums), which have mean zero.

All noise is counter-based (`_noise/`): the increments of step $k$ of path $j$ in scenario
$m$ are pure functions of `(key, k, m, j)`, so the paths do not depend on how many are
simulated, on the batch size or on the number of devices. The initial deviation
$x_0 - \hat x_0$ is given a random sign per path so that it has conditional mean zero
(the value formula uses $E[(x_0-\hat x_0)^2] = (x_0-\hat x_0)^2$).
"""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jaxtyping import Array, Float, Int, PRNGKeyArray
import numpy as np

from .._linalg import small_expm
from .._noise._counts import counter_uniform, GridCounts
from .._noise._levy_path import GridLevyPath, poisson_max_count
from .._programs import persistent_jit
from .._simulation._driver import AbstractEnsemble, Observables, run_ensemble
from .._simulation._spec import EnsembleSpec
from .._simulation._stepper import AbstractEnsembleTerm, integrate, time_grid
from .._validation import check_size, is_concrete
from ._riccati import channels, RiccatiSolution


class LQPaths(eqx.Module):
    """Paths of one batch of a general game's ensemble (from [`simulate_paths`][]).

    - `costs`: realised discounted costs, `(scenarios, paths, n)`.
    - `x1`: terminal states `(scenarios, paths)`; `xhat1`: terminal conditional means
      `(scenarios,)`.
    - `regimes`: regime paths on the grid, `(scenarios, steps + 1)`.
    """

    costs: Float[Array, "S P n"]
    x1: Float[Array, "S P"]
    xhat1: Float[Array, " S"]
    regimes: Int[Array, "S T"]

    def mean_cost(self) -> Float[Array, " n"]:
        """Sample mean cost of every player."""
        return jnp.mean(self.costs, axis=(0, 1))

    def standard_error(self) -> Float[Array, " n"]:
        """Standard error of `mean_cost`, from the scenario means (paths within a scenario
        are correlated through the common noise)."""
        m = jnp.mean(self.costs, axis=1)
        return jnp.std(m, axis=0, ddof=1) / jnp.sqrt(m.shape[0])


class LQState(eqx.Module):
    """The batched state: `xhat (M,)`, `x (M, B)`, regime `(M,)` (held as a float: diffrax
    states are floating point), discount `(M, n)`, running cost `(M, B, n)`."""

    xhat: Array
    x: Array
    regime: Array
    discount: Array
    cost: Array


def _m(a, b):
    """`a * b` with the lower-rank operand given leading unit axes (explicit broadcasting)."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim < b.ndim:
        a = a.reshape((1,) * (b.ndim - a.ndim) + a.shape)
    elif b.ndim < a.ndim:
        b = b.reshape((1,) * (a.ndim - b.ndim) + b.shape)
    return a * b


def _add(*xs):
    shape = jnp.broadcast_shapes(*(jnp.shape(x) for x in xs))
    return sum(jnp.broadcast_to(x, shape) for x in xs)


def _affine(aff, x, xhat, u, uhat):
    """Evaluate an affine coefficient; `x, xhat` broadcast against the coefficient."""
    return _add(
        aff[0],
        _m(aff[1], x),
        _m(aff[2], xhat),
        jnp.sum(_m(aff[3], u), -1),
        jnp.sum(_m(aff[4], uhat), -1),
    )


def _ito_cost(cost, x, xhat, u, uhat):
    return _add(
        0.5
        * _add(_m(cost.q, x**2), _m(cost.qbar, xhat**2), _m(cost.r, u**2), _m(cost.rbar, uhat**2)),
        _m(cost.eps1, _m(x, u)),
        _m(cost.eps1bar, _m(xhat, uhat)),
        _m(cost.eps2, u),
        _m(cost.eps2bar, uhat),
        _m(cost.eps3, x),
        _m(cost.eps3bar, xhat),
    )


def _scenario_step(co, gains, x, xhat, disc, cost, noise, dt):
    """Euler step of one scenario in its regime: `x (B,)`, `cost (B, n)`, noise increments
    `dW (B, Ci)` (idiosyncratic) and `dWo (Co,)` (common)."""
    g, gh, h = gains
    dW, dWo = noise
    uhat = gh * xhat + h  # (n,)
    u = uhat[None, :] + g[None, :] * (x - xhat)[:, None]  # (B, n)
    dyn = co.dynamics
    idio, com = channels(co)
    dr = (dyn.drift.const, dyn.drift.x, dyn.drift.xhat, dyn.drift.u, dyn.drift.uhat)
    ic, oc = tuple(idio[:5]), tuple(com[:5])
    xc = x[:, None]
    b = _affine(dr, x, xhat, u, uhat[None, :])
    zi = _affine(ic, xc, xhat, u[:, None, :], uhat[None, None, :])  # (B, Ci)
    zo = _affine(oc, xc, xhat, u[:, None, :], uhat[None, None, :])  # (B, Co)
    bh = _affine(dr, xhat, xhat, uhat, uhat)
    zoh = _affine(oc, xhat, xhat, uhat[None, :], uhat[None, :])  # (Co,)
    x_new = x + b * dt + jnp.sum(zi * dW, -1) + zo @ dWo
    xhat_new = xhat + bh * dt + zoh @ dWo
    cn = co.cost_noise
    dBo, dNo = dWo[0], dWo[1:]
    brown = _add(cn.xi0, cn.xi1 * xhat, 0.5 * _m(cn.xi2, xc**2), 0.5 * cn.xi2bar * xhat**2)
    marks = _add(
        cn.jump_xi0,
        cn.jump_xi1 * xhat,
        0.5 * _m(cn.jump_xi2, xc[:, None] ** 2),
        0.5 * cn.jump_xi2bar * xhat**2,
    )  # (B, Co - 1, n)
    meas = brown * dBo + jnp.sum(_m(marks, dNo[:, None]), axis=-2)
    run = _ito_cost(co.cost, xc, xhat, u, uhat[None, :]) * dt + meas
    cost = cost + disc[None, :] * run
    disc = disc * jnp.exp(-co.cost.lam * dt)
    return x_new, xhat_new, disc, cost


class _LQTerm(AbstractEnsembleTerm):
    """The general game's batched Euler step (module docstring)."""

    game: Any
    grid: Array
    gains: tuple[Array, Array, Array]  # each (K, regimes, n)
    cdf: Array  # (regimes, regimes): rows of the cumulative transition matrix
    idio: GridLevyPath
    common: GridLevyPath
    idio_marks: GridCounts
    common_marks: GridCounts
    regime_key: PRNGKeyArray
    scenario: Array

    def vf(self, t, y: LQState, args):
        """The drift of `(x, xhat)` (zero for the regime, discount and cost); `step` adds
        the noise, the regime chain and the running cost."""
        k = self.idio.step_index(t)
        s = y.regime.astype(jnp.int32)
        co_s = jax.tree.map(lambda a: a[s].astype(y.x.dtype), self.game.at(t))
        g, gh, h = (a[k][s] for a in self.gains)

        def drift(co, g, gh, h, x, xhat):
            uhat = gh * xhat + h
            u = uhat[None, :] + g[None, :] * (x - xhat)[:, None]
            dr = co.dynamics.drift
            dr = (dr.const, dr.x, dr.xhat, dr.u, dr.uhat)
            return _affine(dr, x, xhat, u, uhat[None, :]), _affine(dr, xhat, xhat, uhat, uhat)

        b, bh = jax.vmap(drift)(co_s, g, gh, h, y.x, y.xhat)
        zero = jax.tree.map(jnp.zeros_like, y)
        return LQState(bh, b, zero.regime, zero.discount, zero.cost)

    def contr(self, t0, t1, **kwargs):
        return t1 - t0

    def prod(self, vf, control):
        return jax.tree.map(lambda v: v * control, vf)

    def step(self, scheme, t0, t1, y: LQState) -> LQState:
        k = self.idio.step_index(t0)
        dtype = y.x.dtype
        dt = (t1 - t0).astype(dtype)
        s = y.regime.astype(jnp.int32)
        co = self.game.at(t0)
        co_s = jax.tree.map(lambda a: a[s].astype(dtype), co)  # leading (M,)
        idio, com = jax.vmap(channels)(co_s)
        nu_i = idio.weight[:, 1:] * dt  # (M, Ci - 1)
        nu_o = com.weight[:, 1:] * dt
        dB = self.idio.noise(k)[0]  # (M, B)
        dN = self.idio_marks.counts(k, nu_i[:, None, :]).astype(dtype) - nu_i[:, None, :]
        dBo = self.common.noise(k)[0]  # (M,)
        dNo = self.common_marks.counts(k, nu_o).astype(dtype) - nu_o
        dW = jnp.concatenate([dB[..., None], dN], axis=-1)  # (M, B, Ci)
        dWo = jnp.concatenate([dBo[:, None], dNo], axis=-1)  # (M, Co)
        g, gh, h = (a[k][s] for a in self.gains)  # (M, n)
        x, xhat, disc, cost = jax.vmap(_scenario_step, in_axes=(0,) * 7 + (None,))(
            co_s, (g, gh, h), y.x, y.xhat, y.discount, y.cost, (dW, dWo), dt
        )
        u = counter_uniform(self.regime_key, k, self.scenario, jnp.zeros((), jnp.uint32), dtype)
        row = self.cdf[s]  # (M, regimes)
        regime = jnp.minimum(jnp.sum(u[:, None] >= row, axis=-1), row.shape[-1] - 1)
        return LQState(xhat, x, regime.astype(dtype), disc, cost)


class _Config(eqx.Module):
    n_common: int = eqx.field(static=True)
    n_paths: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    dtype: str = eqx.field(static=True)
    max_count: int = eqx.field(static=True)


def _max_count(game, n_steps: int, spec: EnsembleSpec) -> int:
    if spec.max_jumps_per_step is not None:
        return int(spec.max_jumps_per_step)
    dyn = game.coefficients.dynamics
    rates = [dyn.jumps.intensity, dyn.common_jumps.intensity]
    if not is_concrete(game.t0, game.t1, *rates):
        return 8
    if game.cos is not None:
        amp = [game.cos.dynamics.jumps.intensity, game.cos.dynamics.common_jumps.intensity]
        amp += [game.sin.dynamics.jumps.intensity, game.sin.dynamics.common_jumps.intensity]
        extra = sum(
            float(np.max(np.abs(np.sum(np.abs(np.asarray(a)), axis=0)), initial=0.0)) for a in amp
        )
    else:
        extra = 0.0
    nu = max((float(np.max(np.asarray(r), initial=0.0)) for r in rates), default=0.0) + extra
    return poisson_max_count(nu * (float(game.t1) - float(game.t0)) / n_steps)


def _pick(t, y, args):
    return y.regime


def _run(solution: RiccatiSolution, key, path_ids, cfg: _Config) -> LQPaths:
    game = solution.game
    dtype = jnp.dtype(cfg.dtype)
    n = game.n
    M, B, K = cfg.n_common, path_ids.shape[0], cfg.n_steps
    grid = time_grid(game.t0, game.t1, K, dtype)
    gains = jax.vmap(solution.gains)(grid[:-1].astype(game.t0.dtype))
    table = tuple(
        a.astype(dtype) for a in (gains.deviation, gains.mean_slope, gains.mean_intercept)
    )
    dt = (game.t1 - game.t0) / K
    cdf = jnp.cumsum(small_expm(game.generator * dt), axis=-1).astype(dtype)
    scen = jnp.arange(M, dtype=jnp.uint32)
    path = path_ids.astype(jnp.uint32)[None, :]
    keys = [jax.random.fold_in(key, i) for i in range(6)]
    n_idio = game.coefficients.dynamics.jumps.intensity.shape[-1]
    n_common = game.coefficients.dynamics.common_jumps.intensity.shape[-1]
    kw = dict(t0=grid[0], t1=grid[-1], jumps=None, n_steps=K, dtype=cfg.dtype)
    term = _LQTerm(
        game=game,
        grid=grid,
        gains=table,
        cdf=cdf,
        idio=GridLevyPath(key=keys[0], scenario=scen[:, None], path=path, **kw),
        common=GridLevyPath(key=keys[1], scenario=scen, path=jnp.zeros((), jnp.uint32), **kw),
        idio_marks=GridCounts(keys[2], scen[:, None], path, n_idio, cfg.max_count),
        common_marks=GridCounts(keys[3], scen, jnp.zeros((), jnp.uint32), n_common, cfg.max_count),
        regime_key=keys[4],
        scenario=scen,
    )
    sign_u = counter_uniform(keys[5], 0, scen[:, None], path, jnp.float32)
    sign = jnp.where(sign_u < 0.5, 1.0, -1.0).astype(dtype)
    d0 = (game.x0 - game.xhat0).astype(dtype)
    xhat0 = jnp.full((M,), game.xhat0, dtype)
    y0 = LQState(
        xhat=xhat0,
        x=xhat0[:, None] + d0 * sign,
        regime=jnp.full((M,), game.regime0, dtype),
        discount=jnp.ones((M, n), dtype),
        cost=jnp.zeros((M, B, n), dtype),
    )
    yT, regimes = integrate(term, "euler", y0, grid, tuple(range(K + 1)), _pick)
    te = jax.tree.map(lambda a: a[yT.regime.astype(jnp.int32)].astype(dtype), game.terminal)
    xc = yT.x[..., None]
    xh = yT.xhat[:, None, None]
    q, qbar, e3, e3bar = (a.astype(dtype)[:, None, :] for a in (te.q, te.qbar, te.eps3, te.eps3bar))
    term_cost = 0.5 * (q * xc**2 + qbar * xh**2) + e3 * xc + e3bar * xh
    cost = yT.cost + yT.discount[:, None, :] * term_cost
    return LQPaths(cost, yT.x, yT.xhat, jnp.moveaxis(regimes, 0, -1).astype(jnp.int32))


_run_jit = persistent_jit(_run)


class LQEnsemble(AbstractEnsemble):
    """The general game's ensemble on the shared engine: realised costs and terminal states."""

    solution: RiccatiSolution

    def configure(self, spec: EnsembleSpec, batch_size: int, n_tiles: int) -> _Config:
        if spec.scheme != "euler":
            raise ValueError(
                f"the general game is simulated with scheme='euler' only, got {spec.scheme!r}"
            )
        if batch_size % n_tiles:
            raise ValueError(
                f"paths per scenario per batch ({batch_size}) must be a multiple of the "
                f"number of devices ({n_tiles})"
            )
        game = self.solution.game
        # Sizes before allocating: the gain table (8 coefficients per step, regime and
        # player) and one batch's running costs.
        K, n = game.num_regimes, game.n
        check_size("the simulation's gain table", (spec.n_steps, 8, K, n))
        check_size("one batch of realised costs", (spec.n_common, batch_size, n))
        return _Config(
            n_common=spec.n_common,
            n_paths=batch_size,
            n_steps=spec.n_steps,
            dtype=spec.checked_dtype(),
            max_count=_max_count(game, spec.n_steps, spec),
        )

    def saved_per_path(self, spec: EnsembleSpec) -> int:
        return self.solution.game.n + 1

    def paths(self, key, path_ids, cfg: _Config) -> LQPaths:
        return _run(self.solution, key, path_ids, cfg)

    def observe(self, batch: LQPaths, cfg: _Config) -> Observables:
        return Observables(
            per_path=dict(cost=batch.costs, x1=batch.x1),
            per_scenario=dict(xhat1=batch.xhat1, regimes=batch.regimes),
            overflow=jnp.zeros((), jnp.int32),
        )

    def histogrammed(self) -> tuple[str, ...]:
        return ("x1",)


def simulate_paths(solution: RiccatiSolution, key: PRNGKeyArray, spec: EnsembleSpec) -> LQPaths:
    r"""Simulate the equilibrium of a general game in one batch and return every path.

    **Arguments:**

    - `solution`: a [`RiccatiSolution`][mftg_jax.lq.RiccatiSolution] (its game and
      equilibrium feedback).
    - `key`: a JAX PRNG key; path $j$ of scenario $m$ depends only on `(key, m, j)`.
    - `spec`: an [`EnsembleSpec`][mftg_jax.EnsembleSpec] with `scheme="euler"` (weak error
      $O(\Delta t)$): `n_common` scenarios (regime path, $B_o$, $N_o$), `n_paths` in all.

    **Returns:** an [`LQPaths`][mftg_jax.lq.LQPaths].
    """
    cfg = LQEnsemble(solution).configure(spec, spec.paths_per_scenario, 1)
    ids = jnp.arange(spec.paths_per_scenario, dtype=jnp.uint32)
    return _run_jit(solution, key, ids, cfg)


class LQEnsembleResult(eqx.Module):
    """Statistics of a general game's ensemble (from [`simulate`][mftg_jax.lq.simulate]).

    - `cost_mean`, `cost_stderr (n,)`: realised discounted costs (compare with
      `RiccatiSolution.cost()`); the standard error is between scenarios when there are
      several.
    - `x1_mean`, `x1_var`, `x1_quantiles`: the terminal state; `xhat1 (M,)` the scenarios'
      terminal conditional means; `regimes (M, K + 1)` their regime paths.
    - `statistics`: the engine's [`EnsembleStatistics`][mftg_jax.EnsembleStatistics].
    """

    cost_mean: np.ndarray
    cost_stderr: np.ndarray
    x1_mean: np.ndarray
    x1_var: np.ndarray
    x1_quantiles: np.ndarray
    xhat1: np.ndarray
    regimes: np.ndarray
    statistics: Any

    def mean_cost(self) -> np.ndarray:
        """Sample mean cost of every player."""
        return self.cost_mean

    def standard_error(self) -> np.ndarray:
        """Standard error of `mean_cost`."""
        return self.cost_stderr


def simulate(
    solution: RiccatiSolution,
    key: PRNGKeyArray,
    spec: EnsembleSpec = EnsembleSpec(n_paths=4000, n_common=500, n_steps=200, scheme="euler"),
    *,
    mesh: Mesh | None = None,
    progress: bool = False,
) -> LQEnsembleResult:
    r"""Simulate the equilibrium of a general game on the shared engine and return the
    statistics of the realised costs (batches, devices and streamed statistics of the
    shared driver; the result does not depend on `spec.batch_size` or the devices).

    **Arguments:**

    - `solution`: a [`RiccatiSolution`][mftg_jax.lq.RiccatiSolution].
    - `key`: a JAX PRNG key.
    - `spec`: an [`EnsembleSpec`][mftg_jax.EnsembleSpec] with `scheme="euler"` (default:
      500 scenarios of 8 paths, 200 steps).
    - `mesh`, `progress`: as in [`mftg_jax.price.simulate`][].

    **Returns:** an [`LQEnsembleResult`][mftg_jax.lq.LQEnsembleResult].
    """
    st = run_ensemble(LQEnsemble(solution), key, spec, mesh=mesh, progress=progress)
    return LQEnsembleResult(
        cost_mean=st.mean["cost"],
        cost_stderr=st.stderr["cost"],
        x1_mean=st.mean["x1"],
        x1_var=st.var["x1"],
        x1_quantiles=st.quantiles["x1"],
        xhat1=st.per_scenario["xhat1"],
        regimes=st.per_scenario["regimes"],
        statistics=st,
    )
