"""TOML configuration of a price game: read, validate with field paths, write.

The format (all keys of `[noise]` optional)::

    t0 = 0.0
    t1 = 1.5
    p0 = 50.0
    phat0 = 50.0          # optional, defaults to p0
    [market]
    eta = 0.5
    a = 1.0               # or a = { mean = 30.0, period = 24.0, cos = [2.0], sin = [1.0] }
    q = 1.0
    terminal = "penalty"  # optional: "penalty" (default) or "stationary"
    [producers]           # one entry per producer
    c = [1.0, 5.0, 10.0]
    r = [1.0, 2.0, 3.0]
    rbar = [1.0, 2.0, 3.0]
    lam = [0.1, 0.1, 0.1]
    [noise]
    sigma = 1.0
    sigma_o = 0.0
    [noise.jumps]         # idiosyncratic compound Poisson
    intensity = 2.0
    size = { dist = "normal", mean = 0.0, std = 0.5 }
    [noise.common_jumps]
    intensity = 0.0
    size = { dist = "normal", mean = 0.0, std = 1.0 }

Jump sizes: `{ dist = "normal", mean, std }`, `{ dist = "exponential", scale, sign = 1 }`
(sign -1 for downward jumps), `{ dist = "fixed", value }`.
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
from .._toml import (
    ConfigError,
    load as _load,
    number as _number,
    numbers as _numbers,
    table as _table,
    unknown as _unknown,
)
from ._game import DemandIntercept, Market, Noise, PriceGame, Producers, TERMINALS

_TOP = {"t0", "t1", "p0", "phat0", "market", "producers", "noise"}
_MARKET = {"eta", "a", "q", "terminal"}
_PRODUCERS = {"c", "r", "rbar", "lam"}
_NOISE = {"sigma", "sigma_o", "jumps", "common_jumps"}


def _intercept(v, where: str) -> DemandIntercept:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return DemandIntercept(mean=_number({"a": v}, "a", where))
    if not isinstance(v, dict):
        raise ConfigError(f"{where}a must be a number or a table {{mean, period, cos, sin}}")
    _unknown(f"{where}a.", v, {"mean", "period", "cos", "sin"})
    cos = _numbers(v, "cos", f"{where}a.") if "cos" in v else []
    sin = _numbers(v, "sin", f"{where}a.") if "sin" in v else []
    return DemandIntercept(
        mean=_number(v, "mean", f"{where}a."),
        period=_number(v, "period", f"{where}a.", 1.0),
        cos=cos,
        sin=sin,
    )


def _terminal(mk: dict) -> str:
    v = mk.get("terminal", "penalty")
    if not isinstance(v, str) or v not in TERMINALS:
        shown = repr(v) if isinstance(v, str) else f"a {type(v).__name__}"
        raise ConfigError(
            f"market.terminal must be one of {', '.join(map(repr, TERMINALS))}, got {shown}"
        )
    return v


def _jump_size(v, where: str) -> AbstractJumpSize:
    if not isinstance(v, dict) or "dist" not in v:
        raise ConfigError(f"{where}size must be a table with dist = normal|exponential|fixed")
    dist = v["dist"]
    w = f"{where}size."
    if dist == "normal":
        _unknown(f"{where}size.", v, {"dist", "mean", "std"})
        return NormalJumps(_number(v, "mean", w, 0.0), _number(v, "std", w))
    if dist == "exponential":
        _unknown(f"{where}size.", v, {"dist", "scale", "sign"})
        return ExponentialJumps(_number(v, "scale", w), _number(v, "sign", w, 1.0))
    if dist == "fixed":
        _unknown(f"{where}size.", v, {"dist", "value"})
        return FixedJumps(_number(v, "value", w))
    raise ConfigError(f"{w}dist must be one of normal, exponential, fixed; got {dist!r}")


def _jumps(d: dict, key: str) -> CompoundPoisson:
    if key not in d:
        return no_jumps()
    where = f"noise.{key}."
    v = _table(d, key, "noise.")
    _unknown(f"noise.{key}.", v, {"intensity", "size"})
    try:
        intensity = _number(v, "intensity", where)
        size = _jump_size(v["size"], where) if "size" in v else FixedJumps(0.0)
        return CompoundPoisson(intensity, size)
    except ConfigError:
        raise
    except ValueError as e:
        # The noise models name their fields `jumps.*`; here the table is known.
        msg = str(e)
        raise ConfigError(where + msg.removeprefix("jumps.")) from None


def game_from_dict(d: dict) -> PriceGame:
    """Build a [`PriceGame`][] from a parsed TOML document (format in the module docstring).

    **Raises:** [`ConfigError`][] naming the offending field.
    """
    try:
        _unknown("", d, _TOP)
        mk = _table(d, "market", "")
        _unknown("market.", mk, _MARKET)
        pr = _table(d, "producers", "")
        _unknown("producers.", pr, _PRODUCERS)
        nz = _table(d, "noise", "", required=False)
        _unknown("noise.", nz, _NOISE)
        if "a" not in mk:
            raise ConfigError("missing market.a")
        market = Market(
            eta=_number(mk, "eta", "market."),
            a=_intercept(mk["a"], "market."),
            q=_number(mk, "q", "market.", 1.0),
            t0=_number(d, "t0", "", 0.0),
            t1=_number(d, "t1", ""),
            p0=_number(d, "p0", ""),
            phat0=_number(d, "phat0", "", None),
            terminal=_terminal(mk),
        )
        producers = Producers(**{k: _numbers(pr, k, "producers.") for k in _PRODUCERS})
        noise = Noise(
            sigma=_number(nz, "sigma", "noise.", 0.0),
            sigma_o=_number(nz, "sigma_o", "noise.", 0.0),
            jumps=_jumps(nz, "jumps"),
            common_jumps=_jumps(nz, "common_jumps"),
        )
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return PriceGame(market, producers, noise)


def load_game(path: str | os.PathLike) -> PriceGame:
    """Read a TOML price-game configuration (format in the module docstring).

    **Raises:** [`ConfigError`][mftg_jax.ConfigError] naming the file and the offending field.
    """
    return _load(path, game_from_dict)


def _fmt(x) -> str:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 0:
        return repr(float(a))
    return "[" + ", ".join(repr(float(v)) for v in a) + "]"


def _size_toml(size: AbstractJumpSize) -> str:
    if isinstance(size, NormalJumps):
        return f'{{ dist = "normal", mean = {_fmt(size.loc)}, std = {_fmt(size.std)} }}'
    if isinstance(size, ExponentialJumps):
        return (
            f'{{ dist = "exponential", scale = {_fmt(size.scale)}, sign = {float(size.sign)!r} }}'
        )
    if isinstance(size, FixedJumps):
        return f'{{ dist = "fixed", value = {_fmt(size.value)} }}'
    raise TypeError(f"cannot write jump size {type(size).__name__} to TOML")


def game_to_toml(game: PriceGame, header: str | None = None) -> str:
    """The TOML text of `game`; [`load_game`][] reads it back to the same game.

    **Arguments:**

    - `game`: a [`PriceGame`][].
    - `header`: an optional comment written first, each of its lines prefixed `# `.
    """
    mk, pr, nz = game.market, game.producers, game.noise
    a = mk.a
    if a.is_constant:
        a_text = _fmt(a.mean)
    else:
        a_text = (
            f"{{ mean = {_fmt(a.mean)}, period = {_fmt(a.period)}, "
            f"cos = {_fmt(a.cos)}, sin = {_fmt(a.sin)} }}"
        )
    head = [] if header is None else [("# " + x).rstrip() for x in header.splitlines()] + [""]
    lines = [
        *head,
        f"t0 = {_fmt(mk.t0)}",
        f"t1 = {_fmt(mk.t1)}",
        f"p0 = {_fmt(mk.p0)}",
        f"phat0 = {_fmt(mk.phat0)}",
        "",
        "[market]",
        f"eta = {_fmt(mk.eta)}",
        f"a = {a_text}",
        f"q = {_fmt(mk.q)}",
        f'terminal = "{mk.terminal}"',
        "",
        "[producers]",
        *(f"{k} = {_fmt(getattr(pr, k))}" for k in ("c", "r", "rbar", "lam")),
        "",
        "[noise]",
        f"sigma = {_fmt(nz.sigma)}",
        f"sigma_o = {_fmt(nz.sigma_o)}",
    ]
    for key in ("jumps", "common_jumps"):
        j = getattr(nz, key)
        lines += [
            "",
            f"[noise.{key}]",
            f"intensity = {_fmt(j.intensity)}",
            f"size = {_size_toml(j.size)}",
        ]
    return "\n".join(lines) + "\n"
