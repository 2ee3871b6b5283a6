"""TOML configuration of a consumption-investment-insurance problem.

The format (`m` = the number of regimes, the length of `regimes.riskless_rate`; `d` = the
number of assets of the market; a per-regime entry is a number or a list of `m`; optional
keys show their default)::

    [market]               # the assets: a regulated-price game in the format of
    t0 = 0.0               # `mftg regulate` (mftg_jax.tracking), its tables nested here:
    t1 = 1.0               # [market.assets], [market.band], [market.costs], [market.noise]
    [market.assets]
    eta = [1.0, 2.0]
    p0 = [0.0, 0.0]
    ...
    [regimes]
    generator = [[-1.0, 1.0], [2.0, -2.0]]
    riskless_rate = [0.02, 0.01]
    asset_premium = [[0.05, 0.06], [0.0, -0.02]]   # (m, d), default 0
    loss_intensity = [0.5, 2.0]
    loss_fraction = [0.6, 0.8]
    loading = [0.2, 0.5]
    bequest = 1.0
    [agent]
    discount = 0.1
    q = 0.0
    s0 = 1.0
    regime0 = 0
    convention = "compensated"   # or "poisson"
    [numerics]             # optional
    n_grid = 33
    n_quadrature = 24
    [simulation]           # optional, read by `mftg insurance`
    n_paths = 4000         # even (antithetic pairs)
    n_steps = 100
    seed = 0
    ruin_level = 0.5       # "ruin": wealth below ruin_level * s0 at a grid time
    [optimisation]         # optional, used when q > 0 (and for the q = 0 check)
    degree = 3
    n_paths = 1024
    n_steps = 25
    method = "lbfgs"       # or "adam"
    steps = 100
    learning_rate = 0.05   # adam only
    seed = 1
    certificate_seed = 2
    certificate_directions = 8
    certificate_sizes = [0.05, 0.2, 0.5]
"""

import os

from .._toml import array, ConfigError, integer, load, number, numbers, table, unknown
from ..tracking import game_from_dict
from ._model import CONVENTIONS, InsuranceModel, Regimes

_TOP = {"market", "regimes", "agent", "numerics", "simulation", "optimisation"}
_REGIMES = {
    "generator",
    "riskless_rate",
    "asset_premium",
    "loss_intensity",
    "loss_fraction",
    "loading",
    "bequest",
}
_AGENT = {"discount", "q", "s0", "regime0", "convention"}
_NUMERICS = {"n_grid", "n_quadrature"}
_SIMULATION = {"n_paths", "n_steps", "seed", "ruin_level"}
_OPTIMISATION = {
    "degree",
    "n_paths",
    "n_steps",
    "method",
    "steps",
    "learning_rate",
    "seed",
    "certificate_seed",
    "certificate_directions",
    "certificate_sizes",
}


def model_from_dict(d: dict) -> InsuranceModel:
    """Build an [`InsuranceModel`][mftg_jax.insurance.InsuranceModel] from parsed TOML
    (module docstring); a bad key or value raises [`mftg_jax.ConfigError`][] naming it."""
    unknown("", d, _TOP)
    market = table(d, "market")
    try:
        game = game_from_dict({k: v for k, v in market.items()})
    except ValueError as e:
        raise ConfigError(f"market: {e}") from None
    r = table(d, "regimes")
    unknown("regimes.", r, _REGIMES)
    m = len(numbers(r, "riskless_rate", "regimes."))
    if "generator" not in r:
        raise ConfigError("missing regimes.generator")
    gen = array(r["generator"], (m, m), "regimes.generator")
    vec = lambda k, default=...: array(  # noqa: E731
        r[k] if k in r else (default if default is not ... else number(r, k, "regimes.")),
        (m,),
        "regimes." + k,
    )
    regimes = Regimes(
        generator=gen,
        riskless_rate=vec("riskless_rate"),
        asset_premium=array(r.get("asset_premium", 0.0), (m, game.n), "regimes.asset_premium"),
        loss_intensity=vec("loss_intensity"),
        loss_fraction=vec("loss_fraction"),
        loading=vec("loading"),
        bequest=vec("bequest", 1.0),
    )
    a = table(d, "agent", required=False)
    unknown("agent.", a, _AGENT)
    conv = a.get("convention", "compensated")
    if conv not in CONVENTIONS:
        raise ConfigError(f"agent.convention must be one of {CONVENTIONS}, got {conv!r}")
    nm = table(d, "numerics", required=False)
    unknown("numerics.", nm, _NUMERICS)
    regime0 = integer(a, "regime0", "agent.", 0)
    if regime0 >= m:
        raise ConfigError(f"agent.regime0 must be in 0..{m - 1}, got {regime0}")
    return InsuranceModel(
        assets=game,
        regimes=regimes,
        discount=number(a, "discount", "agent.", 0.0),
        q=number(a, "q", "agent.", 0.0),
        s0=number(a, "s0", "agent.", 1.0),
        regime0=regime0,
        convention=conv,
        n_grid=integer(nm, "n_grid", "numerics.", 33, lo=2),
        n_quadrature=integer(nm, "n_quadrature", "numerics.", 24, lo=1),
    )


def run_settings(d: dict) -> dict:
    """The optional `[simulation]` and `[optimisation]` tables with their defaults."""
    sim = table(d, "simulation", required=False)
    unknown("simulation.", sim, _SIMULATION)
    opt = table(d, "optimisation", required=False)
    unknown("optimisation.", opt, _OPTIMISATION)
    out = dict(
        n_paths=integer(sim, "n_paths", "simulation.", 4000, lo=2),
        n_steps=integer(sim, "n_steps", "simulation.", 100, lo=1),
        seed=integer(sim, "seed", "simulation.", 0),
        ruin_level=number(sim, "ruin_level", "simulation.", 0.5),
        degree=integer(opt, "degree", "optimisation.", 3, lo=1),
        opt_paths=integer(opt, "n_paths", "optimisation.", 1024, lo=2),
        opt_steps=integer(opt, "n_steps", "optimisation.", 25, lo=1),
        method=opt.get("method", "lbfgs"),
        steps=integer(opt, "steps", "optimisation.", 100, lo=1),
        learning_rate=number(opt, "learning_rate", "optimisation.", 0.05),
        opt_seed=integer(opt, "seed", "optimisation.", 1),
        certificate_seed=integer(opt, "certificate_seed", "optimisation.", 2),
        certificate_directions=integer(opt, "certificate_directions", "optimisation.", 8, lo=1),
        certificate_sizes=tuple(
            numbers(opt, "certificate_sizes", "optimisation.")
            if "certificate_sizes" in opt
            else (0.05, 0.2, 0.5)
        ),
    )
    for k in ("n_paths", "opt_paths"):
        if out[k] % 2:
            where = "simulation.n_paths" if k == "n_paths" else "optimisation.n_paths"
            raise ConfigError(f"{where} must be even (antithetic pairs), got {out[k]}")
    if not 0 < out["ruin_level"] < 1:
        raise ConfigError(f"simulation.ruin_level must be in (0, 1), got {out['ruin_level']}")
    if out["method"] not in ("adam", "lbfgs"):
        raise ConfigError(f"optimisation.method must be 'adam' or 'lbfgs', got {out['method']!r}")
    if not out["learning_rate"] > 0:
        raise ConfigError(f"optimisation.learning_rate must be > 0, got {out['learning_rate']}")
    if not all(s > 0 for s in out["certificate_sizes"]):
        raise ConfigError("optimisation.certificate_sizes must be > 0")
    return out


def load_model(path: str | os.PathLike) -> InsuranceModel:
    """Read a consumption-investment-insurance problem from a TOML file (module docstring).

    **Raises:** [`mftg_jax.ConfigError`][] prefixed with the file name.
    """
    return load(path, model_from_dict)
