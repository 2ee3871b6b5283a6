"""TOML configuration of a general LQ game: read, validate with field paths, write.

Every coefficient defaults to zero except `cost.r`, which must be given (> 0). The schema::

    t0 = 0.0
    t1 = 1.0
    x0 = 1.0
    xhat0 = 1.0            # optional, defaults to x0
    regime0 = 0            # optional initial regime, 0-based
    players = 2
    regimes = 2            # optional, default 1
    marks = 1              # idiosyncratic jump marks, default 0
    common_marks = 0       # common jump marks, default 0
    generator = [[-1.0, 1.0], [2.0, -2.0]]   # regime generator Q (required when regimes > 1)
    period = 1.0           # period of time-dependent coefficients (optional)

    [[regime]]             # one table per regime, in order
    [regime.drift]         # b = const + x*x + xhat*xhat + sum_j u_j*u_j + sum_j uhat_j*uhat_j
    const = 1.0
    x = -0.5
    u = [-0.5, -0.5]       # per player (a number means the same for every player)
    [regime.diffusion]     # sigma, same keys
    [regime.common_diffusion]   # sigma_o, same keys
    [regime.jumps]         # per mark: intensity = [..]; const/x/xhat = [..]; u/uhat = [[..]..]
    [regime.common_jumps]  # per common mark, same keys
    [regime.cost]          # q, qbar, r, rbar, eps1, eps1bar, eps2, eps2bar, eps3, eps3bar, lam
    [regime.terminal]      # q, qbar, eps3, eps3bar
    [regime.cost_noise]    # xi0, xi1, xi2, xi2bar; jump_xi0, jump_xi1, jump_xi2, jump_xi2bar

Values broadcast to their shape with NumPy rules: `(players,)` for per-player entries,
`(marks,)` and `(marks, players)` for jump entries. Any value may instead be a Fourier
table `{ mean = v, cos = [v1, v2, ...], sin = [w1, w2, ...] }` (each harmonic with the
value's shape) making it time dependent with period `period` (terminal costs excepted).
"""

import os
from typing import Any

import jax.numpy as jnp
import numpy as np

from .._toml import (
    array as _array,
    ConfigError,
    integer as _integer,
    load as _load,
    number as _number,
    unknown as _unknown,
)
from ._game import (
    Affine,
    Coefficients,
    CostNoise,
    Dynamics,
    Jumps,
    LQGame,
    RunningCost,
    TerminalCost,
)

_TOP = {
    "t0",
    "t1",
    "x0",
    "xhat0",
    "regime0",
    "players",
    "regimes",
    "marks",
    "common_marks",
    "generator",
    "period",
    "regime",
}
_AFFINE = ("const", "x", "xhat", "u", "uhat")
_COST = ("q", "qbar", "r", "rbar", "eps1", "eps1bar", "eps2", "eps2bar", "eps3", "eps3bar", "lam")
_TERMINAL = ("q", "qbar", "eps3", "eps3bar")
_NOISE = ("xi0", "xi1", "xi2", "xi2bar", "jump_xi0", "jump_xi1", "jump_xi2", "jump_xi2bar")
_SECTIONS = (
    "drift",
    "diffusion",
    "common_diffusion",
    "jumps",
    "common_jumps",
    "cost",
    "terminal",
    "cost_noise",
)


def _int(d: dict, key: str, default=..., lo: int = 0) -> int:
    return _integer(d, key, default=default, lo=lo)


def _real(d: dict, key: str, default=...) -> float:
    return _number(d, key, default=default)


def _value(value: Any, shape, where: str, H: int, allow_time: bool = True):
    """(mean, cos (H,...), sin (H,...)) of one entry."""
    zeros = np.zeros((H, *shape))
    if isinstance(value, dict):
        if not allow_time:
            raise ConfigError(f"{where} cannot be time dependent")
        _unknown(f"{where}.", value, {"mean", "cos", "sin"})
        mean = _array(value.get("mean", 0.0), shape, f"{where}.mean")
        out = [mean]
        for key in ("cos", "sin"):
            harm = value.get(key, [])
            if not isinstance(harm, list) or len(harm) > H:
                raise ConfigError(f"{where}.{key} must be a list of at most {H} harmonics")
            arr = zeros.copy()
            for h, v in enumerate(harm):
                arr[h] = _array(v, shape, f"{where}.{key}[{h}]")
            out.append(arr)
        return tuple(out)
    return _array(value, shape, where), zeros, zeros.copy()


def _harmonics(d: dict) -> int:
    """The largest number of harmonics of any time-dependent entry."""
    H = 0

    def walk(x):
        nonlocal H
        if isinstance(x, dict):
            if "cos" in x or "sin" in x:
                for k in ("cos", "sin"):
                    if isinstance(x.get(k), list):
                        H = max(H, len(x[k]))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(d.get("regime", []))
    return H


def game_from_dict(d: dict) -> LQGame:
    """Build a [`LQGame`][] from a parsed TOML table (module docstring).

    **Raises:** `ConfigError` (a `ValueError`) naming the field.
    """
    _unknown("", d, _TOP)
    n = _int(d, "players", lo=1)
    K = _int(d, "regimes", 1, lo=1)
    M = _int(d, "marks", 0)
    Mo = _int(d, "common_marks", 0)
    H = _harmonics(d)
    regimes = d.get("regime", [{} for _ in range(K)])
    if not isinstance(regimes, list) or len(regimes) != K:
        got = len(regimes) if isinstance(regimes, list) else type(regimes).__name__
        raise ConfigError(f"[[regime]] must be given {K} times (regimes = {K}), got {got}")
    if "generator" in d:
        generator = _array(d["generator"], (K, K), "generator")
        if np.shape(d["generator"]) != (K, K):
            raise ConfigError(f"generator must be a {K} x {K} matrix, got {d['generator']!r}")
    elif K > 1:
        raise ConfigError(f"missing key generator (required with regimes = {K})")
    else:
        generator = np.zeros((1, 1))
    shapes = {
        "drift": ((), (n,)),
        "diffusion": ((), (n,)),
        "common_diffusion": ((), (n,)),
        "jumps": ((M,), (M, n)),
        "common_jumps": ((Mo,), (Mo, n)),
    }
    # parts[name] = list over regimes of (mean, cos, sin)
    parts: dict[str, list] = {}
    for s, reg in enumerate(regimes):
        if not isinstance(reg, dict):
            raise ConfigError(f"regime[{s}] must be a table")
        _unknown(f"regime[{s}].", reg, _SECTIONS)
        for sec, (scal, vec) in shapes.items():
            tab = reg.get(sec, {})
            keys = (*_AFFINE, "intensity") if sec.endswith("jumps") else _AFFINE
            _unknown(f"regime[{s}].{sec}.", tab, keys)
            for k in keys:
                shape = vec if k in ("u", "uhat") else scal
                parts.setdefault(f"{sec}.{k}", []).append(
                    _value(tab.get(k, 0.0), shape, f"regime[{s}].{sec}.{k}", H)
                )
        tab = reg.get("cost", {})
        _unknown(f"regime[{s}].cost.", tab, _COST)
        if "r" not in tab:
            raise ConfigError(f"missing key regime[{s}].cost.r (the control cost, > 0)")
        for k in _COST:
            parts.setdefault(f"cost.{k}", []).append(
                _value(tab.get(k, 0.0), (n,), f"regime[{s}].cost.{k}", H)
            )
        tab = reg.get("terminal", {})
        _unknown(f"regime[{s}].terminal.", tab, _TERMINAL)
        for k in _TERMINAL:
            parts.setdefault(f"terminal.{k}", []).append(
                _value(tab.get(k, 0.0), (n,), f"regime[{s}].terminal.{k}", 0, allow_time=False)
            )
        tab = reg.get("cost_noise", {})
        _unknown(f"regime[{s}].cost_noise.", tab, _NOISE)
        for k in _NOISE:
            shape = (Mo, n) if k.startswith("jump") else (n,)
            parts.setdefault(f"cost_noise.{k}", []).append(
                _value(tab.get(k, 0.0), shape, f"regime[{s}].cost_noise.{k}", H)
            )

    def build(idx: int, lead=()):
        def get(name):
            arr = np.stack([p[idx] for p in parts[name]], axis=len(lead))
            return jnp.asarray(arr)

        def aff(sec):
            return Affine(*(get(f"{sec}.{k}") for k in _AFFINE))

        dyn = Dynamics(
            drift=aff("drift"),
            diffusion=aff("diffusion"),
            jumps=Jumps(get("jumps.intensity"), aff("jumps")),
            common_diffusion=aff("common_diffusion"),
            common_jumps=Jumps(get("common_jumps.intensity"), aff("common_jumps")),
        )
        return Coefficients(
            dyn,
            RunningCost(*(get(f"cost.{k}") for k in _COST)),
            CostNoise(*(get(f"cost_noise.{k}") for k in _NOISE)),
        )

    base = build(0)
    cos = build(1, (H,)) if H else None
    sin = build(2, (H,)) if H else None
    terminal = TerminalCost(
        *(jnp.asarray(np.stack([p[0] for p in parts[f"terminal.{k}"]])) for k in _TERMINAL)
    )
    x0 = _real(d, "x0")
    try:
        return LQGame(
            coefficients=base,
            terminal=terminal,
            generator=jnp.asarray(generator),
            t0=_real(d, "t0", 0.0),
            t1=_real(d, "t1"),
            x0=x0,
            xhat0=_real(d, "xhat0", x0),
            regime0=_int(d, "regime0", 0),
            period=_real(d, "period", 1.0),
            cos=cos,
            sin=sin,
        )
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None


def load_game(path: str | os.PathLike) -> LQGame:
    """Read a general game from a TOML file (schema in the module docstring).

    **Raises:** [`ConfigError`][mftg_jax.ConfigError] naming the file and the field.
    """
    return _load(path, game_from_dict)


def _fmt(x: np.ndarray) -> str:
    if x.ndim == 0:
        return repr(float(x))
    return "[" + ", ".join(_fmt(v) for v in x) + "]"


def _compact(x: np.ndarray) -> np.ndarray:
    """The smallest array that broadcasts back to `x` (a constant list becomes a number)."""
    for ax in range(x.ndim):
        if x.shape[ax] > 1 and np.all(x == x.take([0], axis=ax)):
            x = x.take([0], axis=ax)
    return x.reshape(()) if x.size == 1 else x


def game_to_toml(game: LQGame) -> str:
    """Write a [`LQGame`][] as TOML (only non-zero coefficients are written)."""
    K, n = game.num_regimes, game.n
    co = game.coefficients
    M = co.dynamics.jumps.intensity.shape[-1]
    Mo = co.dynamics.common_jumps.intensity.shape[-1]
    lines = [
        f"t0 = {float(game.t0)!r}",
        f"t1 = {float(game.t1)!r}",
        f"x0 = {float(game.x0)!r}",
        f"xhat0 = {float(game.xhat0)!r}",
        f"regime0 = {int(game.regime0)}",
        f"players = {n}",
        f"regimes = {K}",
        f"marks = {M}",
        f"common_marks = {Mo}",
        f"generator = {_fmt(np.asarray(game.generator))}",
        f"period = {float(game.period)!r}",
    ]

    def leaves(tree):
        dyn = tree.dynamics
        out = {}
        for sec in ("drift", "diffusion", "common_diffusion"):
            for k in _AFFINE:
                out[(sec, k)] = getattr(getattr(dyn, sec), k)
        for sec in ("jumps", "common_jumps"):
            out[(sec, "intensity")] = getattr(dyn, sec).intensity
            for k in _AFFINE:
                out[(sec, k)] = getattr(getattr(dyn, sec).size, k)
        for k in _COST:
            out[("cost", k)] = getattr(tree.cost, k)
        for k in _NOISE:
            out[("cost_noise", k)] = getattr(tree.cost_noise, k)
        return {key: np.asarray(v) for key, v in out.items()}

    base = leaves(co)
    cos = leaves(game.cos) if game.cos is not None else None
    sin = leaves(game.sin) if game.sin is not None else None
    for key in _TERMINAL:
        base[("terminal", key)] = np.asarray(getattr(game.terminal, key))
    for s in range(K):
        lines += ["", "[[regime]]"]
        for sec in _SECTIONS:
            entries = []
            for (sec_, k), v in base.items():
                if sec_ != sec:
                    continue
                mean = v[s]
                c = cos[(sec, k)][:, s] if cos is not None and (sec, k) in cos else None
                sn = sin[(sec, k)][:, s] if sin is not None and (sec, k) in sin else None
                timed = c is not None and (np.any(c != 0) or np.any(sn != 0))
                if not timed and not np.any(mean != 0):
                    continue
                if timed:
                    entries.append(
                        f"{k} = {{ mean = {_fmt(_compact(mean))}, "
                        f"cos = {_fmt(c)}, "
                        f"sin = {_fmt(sn)} }}"
                    )
                else:
                    entries.append(f"{k} = {_fmt(_compact(mean))}")
            if entries:
                lines += [f"[regime.{sec}]", *entries]
    return "\n".join(lines) + "\n"
