"""TOML configuration of a dispatch study: read and validate with field paths.

The format (`m` = the length of `fleet.capacity`, `n` = the number of dynamic stations, the
longest list in `[dynamic]`; per-station entries are a number or a list; optional keys show
their default)::

    [fleet]
    capacity = [50.0, 30.0, 40.0]      # sbar_k > 0
    cost = [10.0, 20.0, 30.0]          # p_k (linear marginal cost)
    quadratic = 0.0                    # q_k >= 0: cost p_k s + q_k s^2
    owner = [0, 0, 1]                  # optional producer of each station

    [demand]
    levels = [10.0, 60.0, 100.0]       # or range = { start = 0.0, stop = 120.0, num = 25 }
    mismatch = 2.0                     # optional kappa > 0 of l(x) = kappa/2 x^2

    [dynamic]                          # optional: risk-sensitive matching
    t0 = 0.0
    t1 = 1.0
    eta = [0.0, 0.5]                   # risk sensitivity >= 0
    arrival = 1.0                      # a >= 0
    demand = 1.0                       # D (the station's demand share)
    kappa = 2.0                        # mismatch weight > 0
    capacity = 1.5                     # sbar > 0
    sigma = 0.3
    q = 0.0
    q_terminal = 1.0
    target = 0.0
    e0 = 0.0
    bounded = true                     # true: grid HJB with s in [0, sbar]; false: Riccati
    [dynamic.jumps]                    # optional (only with eta = 0)
    intensity = 1.0
    size = { dist = "normal", mean = 0.0, std = 0.2 }   # or { dist = "fixed", value = ... }
    [dynamic.grid]                     # optional, the HJB grid
    n_x = 401
    n_t = 400
    [dynamic.monte_carlo]              # optional
    n_paths = 20000
    n_steps = 400                      # default: the grid's n_t
    seed = 0

    [consumers]                        # optional: consumer response
    utility = "quadratic"              # alpha, beta;  or "isoelastic": scale, elasticity,
    alpha = [40.0, 35.0]               #   saturation (optional)
    beta = [1.0, 2.0]
    base_demand = [0.0, 20.0, 40.0]    # inelastic demand levels to clear (default [0.0])
    large = { alpha = 40.0, beta = 1.0 }   # optional large (price-moving) consumer
    price_game = "price_game.toml"     # optional price-game file (relative to this file)
"""

import os

import equinox as eqx
import numpy as np

from .. import price
from .._noise._jumps import CompoundPoisson, FixedJumps, NormalJumps
from .._toml import array, ConfigError, integer, load, number, numbers, table, unknown
from ._fleet import Fleet
from ._hjb import HJBGrid
from ._matching import MatchingProblem
from ._utility import AbstractUtility, IsoelasticUtility, QuadraticUtility

_TOP = {"fleet", "demand", "dynamic", "consumers"}
_FLEET = {"capacity", "cost", "quadratic", "owner"}
_DEMAND = {"levels", "range", "mismatch"}
_STATION = (
    "eta",
    "arrival",
    "demand",
    "kappa",
    "capacity",
    "sigma",
    "q",
    "q_terminal",
    "target",
    "e0",
)
_DYNAMIC = {"t0", "t1", "bounded", "jumps", "grid", "monte_carlo", *_STATION}
_CONSUMERS = {"utility", "alpha", "beta", "scale", "elasticity", "saturation"}
_CONSUMERS_ALL = _CONSUMERS | {"base_demand", "large", "price_game"}


class DispatchConfig(eqx.Module):
    """A parsed dispatch study (module docstring): fleet and demands, and optionally the
    dynamic matching problem with its solver settings and the consumers."""

    fleet: Fleet
    demand: np.ndarray
    mismatch: float | None = eqx.field(static=True)
    problem: MatchingProblem | None
    bounded: bool = eqx.field(static=True)
    grid: HJBGrid
    mc: dict = eqx.field(static=True)
    consumers: AbstractUtility | None
    base_demand: np.ndarray
    large: AbstractUtility | None
    price_game: price.PriceGame | None


def _fleet(d: dict) -> Fleet:
    f = table(d, "fleet")
    unknown("fleet.", f, _FLEET)
    cap = numbers(f, "capacity", "fleet.")
    m = len(cap)
    if "cost" not in f:
        raise ConfigError("missing fleet.cost")
    cost = array(f["cost"], (m,), "fleet.cost")
    quad = array(f.get("quadratic", 0.0), (m,), "fleet.quadratic")
    owner = None
    if "owner" in f:
        o = f["owner"]
        if not isinstance(o, list) or not all(isinstance(x, int) and x >= 0 for x in o):
            raise ConfigError(f"fleet.owner must be a list of integers >= 0, got {o!r}")
        if len(o) != m:
            raise ConfigError(f"fleet.owner must have one entry per station ({m})")
        owner = o
    return Fleet(np.asarray(cap), cost, quad, owner)


def _demand(d: dict) -> tuple[np.ndarray, float | None]:
    t = table(d, "demand")
    unknown("demand.", t, _DEMAND)
    if ("levels" in t) == ("range" in t):
        raise ConfigError("give exactly one of demand.levels or demand.range")
    if "levels" in t:
        levels = np.asarray(numbers(t, "levels", "demand."))
    else:
        r = table(t, "range", "demand.")
        unknown("demand.range.", r, {"start", "stop", "num"})
        levels = np.linspace(
            number(r, "start", "demand.range."),
            number(r, "stop", "demand.range."),
            integer(r, "num", "demand.range.", lo=1),
        )
    mismatch = number(t, "mismatch", "demand.", None)
    if mismatch is not None and not mismatch > 0:
        raise ConfigError(f"demand.mismatch must be > 0, got {mismatch}")
    return levels, mismatch


def _jumps(t: dict, where: str) -> CompoundPoisson | None:
    if "jumps" not in t:
        return None
    j = table(t, "jumps", where)
    unknown(f"{where}jumps.", j, {"intensity", "size"})
    size = j.get("size")
    w = f"{where}jumps.size"
    if not isinstance(size, dict) or "dist" not in size:
        raise ConfigError(f"{w} must be a table with a 'dist' key")
    if size["dist"] == "normal":
        unknown(f"{w}.", size, {"dist", "mean", "std"})
        law = NormalJumps(number(size, "mean", w + "."), number(size, "std", w + "."))
    elif size["dist"] == "fixed":
        unknown(f"{w}.", size, {"dist", "value"})
        law = FixedJumps(number(size, "value", w + "."))
    else:
        raise ConfigError(f"{w}.dist must be 'normal' or 'fixed', got {size['dist']!r}")
    return CompoundPoisson(number(j, "intensity", f"{where}jumps."), law)


def _dynamic(d: dict):
    t = table(d, "dynamic", required=False)
    if not t:
        return None, True, HJBGrid(), {}
    unknown("dynamic.", t, _DYNAMIC)
    n = 1
    for k in _STATION:
        if isinstance(t.get(k), list):
            n = max(n, len(t[k]))
    defaults = dict(sigma=0.0, q=0.0, q_terminal=1.0, target=0.0, e0=0.0)
    vals = {}
    for k in _STATION:
        if k not in t and k not in defaults:
            raise ConfigError(f"missing dynamic.{k}")
        vals[k] = array(t.get(k, defaults.get(k)), (n,), f"dynamic.{k}")
    bounded = t.get("bounded", True)
    if not isinstance(bounded, bool):
        raise ConfigError(f"dynamic.bounded must be true or false, got {bounded!r}")
    problem = MatchingProblem(
        **vals,
        jumps=_jumps(t, "dynamic."),
        t0=number(t, "t0", "dynamic.", 0.0),
        t1=number(t, "t1", "dynamic.", 1.0),
    )
    g = table(t, "grid", "dynamic.", required=False)
    unknown("dynamic.grid.", g, {"n_x", "n_t"})
    grid = HJBGrid(
        n_x=integer(g, "n_x", "dynamic.grid.", 401, lo=3),
        n_t=integer(g, "n_t", "dynamic.grid.", 400, lo=1),
    )
    mc = table(t, "monte_carlo", "dynamic.", required=False)
    unknown("dynamic.monte_carlo.", mc, {"n_paths", "n_steps", "seed"})
    settings = dict(
        n_paths=integer(mc, "n_paths", "dynamic.monte_carlo.", 20_000, lo=2),
        n_steps=integer(mc, "n_steps", "dynamic.monte_carlo.", grid.n_t, lo=1),
        seed=integer(mc, "seed", "dynamic.monte_carlo.", 0),
    )
    return problem, bounded, grid, settings


def _utility(t: dict, where: str) -> AbstractUtility:
    kind = t.get("utility", "quadratic")
    if kind == "quadratic":
        unknown(where, t, {"utility", "alpha", "beta"})
        alpha = numbers(t, "alpha", where)
        beta = array(t.get("beta", 1.0), (len(alpha),), where + "beta")
        return QuadraticUtility(np.asarray(alpha), beta)
    if kind == "isoelastic":
        unknown(where, t, {"utility", "scale", "elasticity", "saturation"})
        scale = numbers(t, "scale", where)
        n = len(scale)
        return IsoelasticUtility(
            np.asarray(scale),
            array(t.get("elasticity", 1.0), (n,), where + "elasticity"),
            array(t["saturation"], (n,), where + "saturation")
            if "saturation" in t
            else np.full(n, np.inf),
        )
    raise ConfigError(f"{where}utility must be 'quadratic' or 'isoelastic', got {kind!r}")


def _consumers(d: dict, base_dir: str):
    t = table(d, "consumers", required=False)
    if not t:
        return None, np.zeros(1), None, None
    unknown("consumers.", t, _CONSUMERS_ALL)
    consumers = _utility({k: v for k, v in t.items() if k in _CONSUMERS}, "consumers.")
    base = np.zeros(1)
    if "base_demand" in t:
        base = np.asarray(numbers(t, "base_demand", "consumers."))
    large = None
    if "large" in t:
        lt = table(t, "large", "consumers.")
        large = _utility(lt, "consumers.large.")
        if large.n != 1:
            raise ConfigError("consumers.large must describe one consumer")
    game = None
    if "price_game" in t:
        path = t["price_game"]
        if not isinstance(path, str):
            raise ConfigError(f"consumers.price_game must be a file name, got {path!r}")
        game = price.load_game(os.path.join(base_dir, path))
    return consumers, base, large, game


def config_from_dict(d: dict, base_dir: str = ".") -> DispatchConfig:
    """Build a [`DispatchConfig`][mftg_jax.dispatch.DispatchConfig] from parsed TOML (module
    docstring); a bad key or value raises [`mftg_jax.ConfigError`][] naming it. Relative
    file names (`consumers.price_game`) are read from `base_dir`."""
    unknown("", d, _TOP)
    fleet = _fleet(d)
    levels, mismatch = _demand(d)
    W = float(fleet.total_capacity)
    if mismatch is None and (levels.min() < 0 or levels.max() > W):
        raise ConfigError(
            f"demand.levels must be in [0, {W:g}] (the total capacity) without demand.mismatch"
        )
    problem, bounded, grid, mc = _dynamic(d)
    consumers, base, large, game = _consumers(d, base_dir)
    return DispatchConfig(
        fleet, levels, mismatch, problem, bounded, grid, mc, consumers, base, large, game
    )


def load_config(path: str | os.PathLike) -> DispatchConfig:
    """Read a dispatch study from a TOML file (module docstring).

    **Raises:** [`mftg_jax.ConfigError`][] prefixed with the file name.
    """
    base_dir = os.path.dirname(os.fspath(path)) or "."
    return load(path, lambda d: config_from_dict(d, base_dir))
