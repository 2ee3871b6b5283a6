r"""The slides' three scenarios run end to end: the data of figures (a)-(f) and the costs table.

- Scenario 1: the uncontrolled price for several adjustment speeds ([`scenario_1`][]).
- Scenario 2: the deterministic equilibrium, exact (Riccati and mean path by adaptive ODE
  solves); costs in both conventions of [`costs`][] / [`cost_integrals`][]; the same for the
  slides' misprinted $\gamma_i(t_0) = 0$ with its best-response certificate.
- Scenario 3: Scenario 2 with noise; exact expected costs and a Monte Carlo ensemble (means
  with standard errors, a sample path and a quantile band).

The slides' costs table (Scenarios 2 and 3) is [`SLIDES_COSTS`][].
"""

import dataclasses

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray
import numpy as np

from .._simulation._spec import EnsembleSpec
from ..price import (
    AbstractRiccatiSolution,
    Expectations,
    gains,
    nash_gap,
    PriceGame,
    running_cost,
    simulate_paths,
    solve_expectations,
    solve_riccati,
)
from ._costs import cost_instants, NUM_COST_INSTANTS
from ._misprint import solve_misprinted_riccati
from ._scenarios import scenario_game
from ._uncontrolled import demand_profile, SCENARIO1_SPEEDS, scenario_1

SLIDES_COSTS = {2: (180430.0, 93526.0, 57159.0), 3: (180570.0, 93608.0, 57224.0)}
"""The slides' costs table ("Costs comparison"): $C_1, C_2, C_3$ for Scenarios 2 and 3."""


@dataclasses.dataclass(frozen=True)
class UncontrolledRun:
    """Scenario 1: `price (len(speeds), T)` at `times (T,)`, and the target $a - D(t)$."""

    speeds: tuple[float, ...]
    times: np.ndarray
    price: np.ndarray
    target: np.ndarray
    demand: np.ndarray


def run_scenario_1(speeds=SCENARIO1_SPEEDS, num: int = 2001) -> UncontrolledRun:
    """The uncontrolled price of Scenario 1 for each adjustment speed, exact (closed form).

    **Arguments:**

    - `speeds`: the adjustment speeds $s$ (default 1, 10, 100).
    - `num`: number of plotted instants on $[0, 1]$.

    **Returns:** an [`UncontrolledRun`][].
    """
    ts = np.linspace(0.0, 1.0, num)
    price = np.stack([np.asarray(scenario_1(s)(ts)) for s in speeds])
    demand = np.asarray(demand_profile(ts))
    return UncontrolledRun(tuple(float(s) for s in speeds), ts, price, 30.0 - demand, demand)


@dataclasses.dataclass(frozen=True)
class EquilibriumRun:
    """The exact (expected) equilibrium of a price game on a time grid.

    Arrays over `times (T,)`: `price` $E[p]$, `phat` $E[\\hat p]$, `controls` $E[u_i]$ and
    `cost_rate` $E[C_i]$ `(T, n)`, `alpha`, `beta`, `gamma` `(T, n)`; per producer:
    `costs` (sum over 1000 instants), `cost_integrals`, `nash_gap`, `revenue`.
    """

    times: np.ndarray
    price: np.ndarray
    phat: np.ndarray
    controls: np.ndarray
    cost_rate: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    gamma: np.ndarray
    costs: np.ndarray
    cost_integrals: np.ndarray
    nash_gap: np.ndarray
    revenue: np.ndarray


@eqx.filter_jit
def _grid(path: Expectations, ts):
    riccati = path.riccati
    game = riccati.game

    def one(t):
        y = path.solution.evaluate(t)
        v = riccati.evaluate(t)
        k, m = gains(game, v)
        u = -game.market.eta * v.alpha / game.producers.r * y.dev + k * y.phat - m
        # E[C_i]: with noise it exceeds C_i at the mean controls by the variance terms.
        return y.phat + y.dev, y.phat, u, path.rate(t), v.alpha, v.beta, v.gamma

    return jax.vmap(one)(ts)


def equilibrium_run(
    riccati: AbstractRiccatiSolution, num: int = 301, certify: bool = True
) -> EquilibriumRun:
    """Tabulate an equilibrium (or a candidate, e.g. the misprint) for the figures and tables.

    **Arguments:**

    - `riccati`: a Riccati solution of the game.
    - `num`: the number of plotted instants.
    - `certify`: run the best-response certificate [`nash_gap`][] (otherwise `nash_gap`
      and `revenue` are NaN).

    **Returns:** an [`EquilibriumRun`][] (NumPy arrays).
    """
    mk = riccati.game.market
    ts = jnp.linspace(mk.t0, mk.t1, num)
    path = solve_expectations(riccati)
    grid = _grid(path, ts)
    if certify:
        cert = nash_gap(riccati)
        gap, revenue = np.asarray(cert.gap), np.asarray(cert.candidate_value)
    else:
        gap = revenue = np.full(riccati.game.n, np.nan)
    arrays = [np.asarray(x) for x in grid]
    return EquilibriumRun(
        np.asarray(ts),
        *arrays,
        costs=np.asarray(path.sums(NUM_COST_INSTANTS)),
        cost_integrals=np.asarray(path.integrals()),
        nash_gap=gap,
        revenue=revenue,
    )


def relative_difference(ours, slides) -> np.ndarray:
    """$(x - x_{\\text{slides}})/x_{\\text{slides}}$."""
    slides = np.asarray(slides, dtype=np.float64)
    return (np.asarray(ours, dtype=np.float64) - slides) / slides


@dataclasses.dataclass(frozen=True)
class Scenario2Run:
    """Scenario 2: the equilibrium and the slides' misprinted candidate, side by side."""

    game: PriceGame
    equilibrium: EquilibriumRun
    misprint: EquilibriumRun


def run_scenario_2(num: int = 301) -> Scenario2Run:
    """Scenario 2 exact, and the same with the slides' misprint $\\gamma_i(t_0) = 0$.

    **Arguments:**

    - `num`: the number of plotted instants.

    **Returns:** a [`Scenario2Run`][].
    """
    game = scenario_game(2)
    good = equilibrium_run(
        solve_riccati(game, stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10)), num
    )
    bad = equilibrium_run(solve_misprinted_riccati(game), num)
    return Scenario2Run(game, good, bad)


@dataclasses.dataclass(frozen=True)
class MonteCarloRun:
    """Scenario 3's ensemble on the 1000 cost instants.

    - `times (K,)`; `sample_price (K,)`, `sample_controls (K, n)`, `sample_cost_rate (K, n)`:
      one realised path; `price_mean`, `price_stderr (K,)` and `price_band (2, K)` (5% and
      95% quantiles) over the paths.
    - `costs`, `costs_stderr (n,)`: the mean over paths of the sum of $C_i$ over the 1000
      instants, and its standard error; `cost_integrals`, `cost_integrals_stderr (n,)`: the
      same for the trapezoidal integral on the simulation grid.
    - `sample_costs (n,)`: the sum for the sample path alone (the slides report one path).
    """

    n_paths: int
    times: np.ndarray
    sample_price: np.ndarray
    sample_controls: np.ndarray
    sample_cost_rate: np.ndarray
    price_mean: np.ndarray
    price_stderr: np.ndarray
    price_band: np.ndarray
    costs: np.ndarray
    costs_stderr: np.ndarray
    cost_integrals: np.ndarray
    cost_integrals_stderr: np.ndarray
    sample_costs: np.ndarray


@eqx.filter_jit
def _tabulated_gains(riccati: AbstractRiccatiSolution, ts):
    game = riccati.game

    def one(t):
        g = -game.market.eta * riccati.evaluate(t).alpha / game.producers.r
        k, m = riccati.gains(t)
        return g, k, m

    return jax.vmap(one)(ts)


def monte_carlo_costs(
    riccati: AbstractRiccatiSolution,
    key: PRNGKeyArray,
    n_paths: int = 4000,
    batch_size: int = 2000,
    scheme: str = "exponential",
) -> MonteCarloRun:
    """Monte Carlo of the costs along simulated equilibrium paths (one common scenario).

    The grid has 999 steps, so that its 1000 points are the cost instants of [`costs`][].

    **Arguments:**

    - `riccati`: the equilibrium of the game to simulate.
    - `key`: a JAX PRNG key; the result does not depend on `batch_size`.
    - `n_paths`: number of paths (a multiple of `batch_size`, or smaller than it).
    - `batch_size`: paths simulated at a time (bounds memory).
    - `scheme`: the simulation scheme, `"exponential"` or `"euler"`.

    **Returns:** a [`MonteCarloRun`][].
    """
    if n_paths < 2:
        raise ValueError(f"n_paths must be >= 2 (a standard error needs two paths), got {n_paths}")
    batch_size = min(batch_size, n_paths)
    if n_paths % batch_size:
        raise ValueError(f"n_paths ({n_paths}) must be a multiple of batch_size ({batch_size})")
    game = riccati.game
    mk = game.market
    dtype = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
    ts = cost_instants(mk.t0, mk.t1, NUM_COST_INSTANTS)
    g, k, m = (np.asarray(x, dtype=np.float64) for x in _tabulated_gains(riccati, ts))
    spec = EnsembleSpec(
        n_paths=batch_size,
        n_steps=NUM_COST_INSTANTS - 1,
        scheme=scheme,
        save_times=np.asarray(ts),
        dtype=dtype,
    )
    sums, integrals, p_all = [], [], []
    sample = None
    for b in range(n_paths // batch_size):
        paths = simulate_paths(game, key, spec, path_offset=b * batch_size)
        p = np.asarray(paths.p[0], dtype=np.float64)  # (B, K)
        phat = np.asarray(paths.phat[0], dtype=np.float64)  # (K,)
        uhat = k * phat[:, None] - m  # (K, n)
        u = g * (p - phat)[..., None] + uhat  # (B, K, n)
        rate = np.asarray(running_cost(game.producers, u, uhat))
        sums.append(rate.sum(axis=1))
        integrals.append(np.asarray(paths.cost[0], dtype=np.float64))
        p_all.append(p)
        if sample is None:
            sample = (p[0], u[0], rate[0])
    sums = np.concatenate(sums)
    integrals = np.concatenate(integrals)
    p_all = np.concatenate(p_all)
    se = lambda x: x.std(axis=0, ddof=1) / np.sqrt(x.shape[0])
    return MonteCarloRun(
        n_paths=n_paths,
        times=np.asarray(ts),
        sample_price=sample[0],
        sample_controls=sample[1],
        sample_cost_rate=sample[2],
        price_mean=p_all.mean(axis=0),
        price_stderr=se(p_all),
        price_band=np.quantile(p_all, [0.05, 0.95], axis=0),
        costs=sums.mean(axis=0),
        costs_stderr=se(sums),
        cost_integrals=integrals.mean(axis=0),
        cost_integrals_stderr=se(integrals),
        sample_costs=sums[0],
    )


@dataclasses.dataclass(frozen=True)
class Scenario3Run:
    """Scenario 3: the exact expectations and the Monte Carlo ensemble.

    `noise_free_costs (n,)` are the costs (sum convention) of the same game without noise,
    i.e. Scenario 2's.
    """

    game: PriceGame
    expected: EquilibriumRun
    monte_carlo: MonteCarloRun
    noise_free_costs: np.ndarray


def run_scenario_3(
    key: PRNGKeyArray | None = None,
    n_paths: int = 4000,
    batch_size: int = 2000,
    num: int = 301,
) -> Scenario3Run:
    """Scenario 3: exact expected costs and a Monte Carlo ensemble.

    **Arguments:**

    - `key`: a JAX PRNG key (default `jax.random.key(0)`).
    - `n_paths`, `batch_size`: as in [`monte_carlo_costs`][].
    - `num`: the number of plotted instants of the exact curves.

    **Returns:** a [`Scenario3Run`][].
    """
    key = jax.random.key(0) if key is None else key
    game = scenario_game(3)
    riccati = solve_riccati(game, stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10))
    # The feedback is Scenario 2's (noise enters delta only); its certificate is Scenario 2's.
    expected = equilibrium_run(riccati, num, certify=False)
    mc = monte_carlo_costs(riccati, key, n_paths, batch_size)
    # Scenario 2 with the same pytree structure as Scenario 3 (zero noise): the compiled
    # programs are reused.
    quiet = eqx.tree_at(
        lambda g: (g.noise.sigma, g.noise.jumps.intensity), game, (0.0 * game.noise.sigma,) * 2
    )
    quiet_riccati = solve_riccati(
        quiet, stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-10)
    )
    noise_free = np.asarray(solve_expectations(quiet_riccati).sums(NUM_COST_INSTANTS))
    return Scenario3Run(game, expected, mc, noise_free)


def run_scenario(number: int, **kwargs) -> UncontrolledRun | Scenario2Run | Scenario3Run:
    """Run the slides' Scenario `number` (1, 2 or 3) with the keyword arguments of
    [`run_scenario_1`][mftg_jax.slides.run_scenario_1],
    [`run_scenario_2`][mftg_jax.slides.run_scenario_2] or
    [`run_scenario_3`][mftg_jax.slides.run_scenario_3]."""
    runs = {1: run_scenario_1, 2: run_scenario_2, 3: run_scenario_3}
    if number not in runs:
        raise ValueError(f"scenario number must be 1, 2 or 3, got {number!r}")
    return runs[number](**kwargs)
