"""TOML configuration of a regulated-price game: read and validate with field paths.

The format (`n` = the length of `assets.eta`; every per-asset entry is a number or a list of
`n`; optional keys show their default)::

    t0 = 0.0
    t1 = 2.0
    [assets]
    eta = [1.0, 2.0]
    p0 = [1.0, 1.0]
    demand = 10.0          # or { mean = [...], cos = [[...], ...], sin = [[...], ...] }
    supply = 0.0           # the same form; harmonics k = 1..H of cos(2 pi k t), sin(2 pi k t)
    cross = [[0.0, 0.1], [0.2, 0.0]]   # optional cross-price coefficients (zero diagonal)
    [band]
    lo = [0.99, 0.98]
    hi = [1.01, 1.02]
    # target = { mean = [...], cos = [[c1, c2], ...], sin = [[chat1, chat2], ...] }
    #          (default: the slides' example coefficients)
    [costs]
    q = 1.0
    qbar = 0.0
    q_terminal = 1.0       # default q
    qbar_terminal = 0.0    # default qbar
    r = 0.1
    rbar = 0.0
    [noise]                # all optional
    sigma = 0.0
    sigma_o = 0.0
    [noise.jumps]          # idiosyncratic compound Poisson (same law for every asset)
    intensity = 2.0
    size = { dist = "normal", mean = 0.0, std = 0.1 }
    [noise.common_jumps]
    intensity = 0.0
    size = { dist = "fixed", value = 0.0 }
    [simulation]           # optional, read by `mftg regulate`
    n_paths = 20000
    n_common = 1
    n_steps = 500
    seed = 0

Jump sizes: `{ dist = "normal", mean, std }`, `{ dist = "exponential", scale, sign = 1 }`,
`{ dist = "fixed", value }`.
"""

import os

import numpy as np

from .._noise._jumps import (
    AbstractJumpSize,
    CompoundPoisson,
    ExponentialJumps,
    FixedJumps,
    no_jumps,
    NormalJumps,
)
from .._toml import array, ConfigError, integer, load, number, numbers, table, unknown
from ._model import Band, Costs, Fourier, Noise, TrackingGame

_TOP = {"t0", "t1", "assets", "band", "costs", "noise", "simulation"}
_ASSETS = {"eta", "p0", "demand", "supply", "cross"}
_BAND = {"lo", "hi", "target"}
_COSTS = {"q", "qbar", "q_terminal", "qbar_terminal", "r", "rbar"}
_NOISE = {"sigma", "sigma_o", "jumps", "common_jumps"}
_SIMULATION = {"n_paths", "n_common", "n_steps", "seed"}


def _fourier(v, n: int, where: str) -> Fourier:
    if not isinstance(v, dict):
        return Fourier.constant(array(v, (n,), where), n)
    unknown(f"{where}.", v, {"mean", "cos", "sin"})
    mean = array(v.get("mean", 0.0), (n,), f"{where}.mean")
    H = 0
    for k in ("cos", "sin"):
        if k in v:
            try:
                H = max(H, np.atleast_1d(np.asarray(v[k], float)).shape[-1])
            except (TypeError, ValueError):
                raise ConfigError(f"{where}.{k} must be a list of numbers") from None
    cos = array(v.get("cos", np.zeros((n, H))), (n, H), f"{where}.cos")
    sin = array(v.get("sin", np.zeros((n, H))), (n, H), f"{where}.sin")
    return Fourier(mean, cos, sin)


def _jump_size(v, where: str) -> AbstractJumpSize:
    if not isinstance(v, dict) or "dist" not in v:
        raise ConfigError(f"{where} must be a table with a 'dist' key")
    dist = v["dist"]
    if dist == "normal":
        unknown(f"{where}.", v, {"dist", "mean", "std"})
        return NormalJumps(number(v, "mean", where + "."), number(v, "std", where + "."))
    if dist == "exponential":
        unknown(f"{where}.", v, {"dist", "scale", "sign"})
        return ExponentialJumps(
            number(v, "scale", where + "."), number(v, "sign", where + ".", 1.0)
        )
    if dist == "fixed":
        unknown(f"{where}.", v, {"dist", "value"})
        return FixedJumps(number(v, "value", where + "."))
    raise ConfigError(f"{where}.dist must be 'normal', 'exponential' or 'fixed', got {dist!r}")


def _jumps(d: dict, key: str, where: str) -> CompoundPoisson:
    if key not in d:
        return no_jumps()
    t = table(d, key, where)
    unknown(f"{where}{key}.", t, {"intensity", "size"})
    return CompoundPoisson(
        number(t, "intensity", f"{where}{key}."), _jump_size(t.get("size"), f"{where}{key}.size")
    )


def game_from_dict(d: dict) -> TrackingGame:
    """Build a [`TrackingGame`][mftg_jax.tracking.TrackingGame] from parsed TOML (module
    docstring); a bad key or value raises [`mftg_jax.ConfigError`][] naming it."""
    unknown("", d, _TOP)
    a = table(d, "assets")
    unknown("assets.", a, _ASSETS)
    eta = numbers(a, "eta", "assets.")
    n = len(eta)
    vec = lambda t, k, w, default=...: array(  # noqa: E731
        t[k] if k in t else (default if default is not ... else number(t, k, w)), (n,), w + k
    )
    p0 = vec(a, "p0", "assets.")
    demand = _fourier(a.get("demand", 0.0), n, "assets.demand")
    supply = _fourier(a.get("supply", 0.0), n, "assets.supply")
    cross = array(a["cross"], (n, n), "assets.cross") if "cross" in a else None
    b = table(d, "band")
    unknown("band.", b, _BAND)
    lo, hi = vec(b, "lo", "band."), vec(b, "hi", "band.")
    target = _fourier(b["target"], n, "band.target") if "target" in b else None
    c = table(d, "costs")
    unknown("costs.", c, _COSTS)
    q = vec(c, "q", "costs.")
    qbar = vec(c, "qbar", "costs.", 0.0)
    costs = Costs(
        q=q,
        qbar=qbar,
        q_terminal=vec(c, "q_terminal", "costs.", q),
        qbar_terminal=vec(c, "qbar_terminal", "costs.", qbar),
        r=vec(c, "r", "costs."),
        rbar=vec(c, "rbar", "costs.", 0.0),
    )
    nz = table(d, "noise", required=False)
    unknown("noise.", nz, _NOISE)
    noise = Noise(
        sigma=vec(nz, "sigma", "noise.", 0.0),
        sigma_o=number(nz, "sigma_o", "noise.", 0.0),
        jumps=_jumps(nz, "jumps", "noise."),
        common_jumps=_jumps(nz, "common_jumps", "noise."),
    )
    sim = table(d, "simulation", required=False)
    unknown("simulation.", sim, _SIMULATION)
    return TrackingGame(
        eta=np.asarray(eta),
        demand=demand,
        supply=supply,
        band=Band(lo, hi, target),
        costs=costs,
        noise=noise,
        p0=p0,
        t0=number(d, "t0", "", 0.0),
        t1=number(d, "t1", "", 1.0),
        cross=cross,
    )


def simulation_settings(d: dict) -> dict:
    """The optional `[simulation]` table with its defaults."""
    sim = table(d, "simulation", required=False)
    unknown("simulation.", sim, _SIMULATION)
    return dict(
        n_paths=integer(sim, "n_paths", "simulation.", 20_000, lo=1),
        n_common=integer(sim, "n_common", "simulation.", 1, lo=1),
        n_steps=integer(sim, "n_steps", "simulation.", 500, lo=1),
        seed=integer(sim, "seed", "simulation.", 0),
    )


def load_game(path: str | os.PathLike) -> TrackingGame:
    """Read a regulated-price game from a TOML file (module docstring).

    **Raises:** [`mftg_jax.ConfigError`][] prefixed with the file name.
    """
    return load(path, game_from_dict)
