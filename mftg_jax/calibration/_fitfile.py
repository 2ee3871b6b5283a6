r"""A fit folder: the fitted models as `fit.json` and the fitted game as `game.toml`.

`fit.json` holds what [`load_fit`][] needs to rebuild the fits without refitting: each
fit's [`Parametrisation`][] settings and coordinates $u$ (with the covariance, loss and
optimiser outcome), the AR(1), the data file (absolute path), column and layout, the
training and test windows, the time origin (hours are counted from the first training
hour: the seasonal phase) and the format version. `game.toml` is the fitted price game with
stationary terminal values (its mean price is periodic on the whole horizon), its time
origin at `start` ($t_0$ = hours from the time origin to `start`, so the seasonal intercept
continues), $t_1 = t_0 +$ `horizon`, and its initial state $(p_0, \hat p_0)$ the mean of
the filtered law at `start` ([`state_at`][]); a comment header states the data, the windows
and the structural defaults, which prices do not identify.
"""

import dataclasses
import inspect
import json
import os

import numpy as np

from ..price import game_to_toml, Market, PriceGame
from ._baselines import AR1
from ._calibrate import CalibrationResult
from ._data import load_prices, PriceSeries, Split
from ._parametrisation import Parametrisation
from ._price_model import StructuralDefaults
from ._state import as_time, state_at, StateAt

_HAS_EVALUATION = "evaluation" in {f.name for f in dataclasses.fields(CalibrationResult)}
FORMAT = "mftg-fit"
VERSION = 1
FIT_FILE = "fit.json"
GAME_FILE = "game.toml"


@dataclasses.dataclass(frozen=True)
class Fit:
    """A fit read back by [`load_fit`][].

    - `equilibrium`, `mrjd`: the [`CalibrationResult`][]s; `ar1`: the [`AR1`][].
    - `data`: `file` (absolute), `column`, `layout`, `repaired`, `dt_hours`, `time_origin`,
      `train` and `test` (`[first, last]` timestamps, `test` None without one).
    - `start`, `horizon`: the written game's origin (ISO timestamp) and length in hours.
    - `folder`: where it was read from.
    """

    equilibrium: CalibrationResult
    mrjd: CalibrationResult
    ar1: AR1
    data: dict
    start: str
    horizon: float
    folder: str = ""

    @property
    def origin(self) -> np.datetime64:
        """The time origin (t = 0 h): the first training timestamp."""
        return np.datetime64(self.data["time_origin"], "s")

    @property
    def train_end(self) -> np.datetime64:
        return np.datetime64(self.data["train"][1], "s")

    def series(self, path: str | None = None) -> PriceSeries:
        """The price series the fit was made on (or the same column of another file)."""
        if path is None and not os.path.isfile(self.data["file"]):
            raise ValueError(
                f"the fit's data file {self.data['file']!r} is not there any more; give the "
                "price file (--data FILE)"
            )
        return load_prices(
            path or self.data["file"],
            price_column=self.data["column"],
            repair=bool(self.data.get("repaired", False)),
        )

    def hours(self, when) -> float:
        """Hours from the time origin to `when`."""
        return float((as_time(when) - self.origin) / np.timedelta64(1, "s") / 3600.0)

    def game(self, state: StateAt, horizon: float | None = None) -> PriceGame:
        """The fitted game from `state` (its time and mean) over `horizon` hours."""
        return fitted_game(self.equilibrium, state, self.horizon if horizon is None else horizon)


def fitted_game(result: CalibrationResult, state: StateAt, horizon: float) -> PriceGame:
    """The fitted game with $t_0$ at `state.t`, $t_1 = t_0 +$ `horizon`, initial state the
    mean of `state`, and stationary terminal values (when the game has them)."""
    g = result.game()
    mk = g.market
    kw = dict(
        eta=mk.eta,
        a=mk.a,
        q=mk.q,
        t0=state.t,
        t1=state.t + float(horizon),
        p0=float(state.mean[0] + state.mean[1]),
        phat0=float(state.mean[0]),
    )
    if "terminal" in inspect.signature(Market).parameters:
        kw["terminal"] = "stationary"
    return PriceGame(Market(**kw), g.producers, g.noise)


def _floats(x):
    """Arrays to lists with NaN as null (JSON has no NaN)."""
    if x is None:
        return None
    a = np.asarray(x, np.float64)
    if a.ndim == 0:
        return float(a) if np.isfinite(a) else None
    return [_floats(v) for v in a]


def _unfloats(x) -> np.ndarray | None:
    if x is None:
        return None

    def fix(v):
        return [fix(w) for w in v] if isinstance(v, list) else (np.nan if v is None else v)

    return np.asarray(fix(x), np.float64)


def _result_dict(r: CalibrationResult) -> dict:
    p = r.parametrisation
    return {
        "parametrisation": {
            "model": p.model,
            "harmonics": list(p.harmonics),
            "jumps": p.jumps,
            "mean": float(p.mean),
            "scale": float(p.scale),
            "dt": float(p.dt),
            "period": float(p.period),
            "p0": float(p.p0),
            "defaults": p.defaults.values(),
        },
        "names": list(p.names),
        "u": _floats(r.u),
        "loss": _floats(r.loss),
        "n_obs": int(r.n_obs),
        "converged": bool(r.converged),
        "reason": str(r.reason),
        "iterations": int(r.iterations),
        "seconds": float(r.seconds),
        "start_losses": _floats(list(r.start_losses)),
        "history": _floats(list(r.history)),
        "covariance": _floats(r.covariance),
        "hessian_singular": bool(r.hessian_singular),
        "evaluation": _plain(getattr(r, "evaluation", None)),
    }


def _plain(x):
    """A report's plain values as JSON (arrays to lists, non-finite numbers to null)."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if x is None or isinstance(x, str | bool):
        return x
    a = np.asarray(x)
    if a.dtype.kind in "iu":
        return a.tolist()
    if a.dtype.kind == "f":
        return _floats(a)
    return str(x)


def _result_from(d: dict, where: str) -> CalibrationResult:
    p = dict(d["parametrisation"])
    defaults = StructuralDefaults(**p.pop("defaults"))
    param = Parametrisation(
        model=p["model"],
        harmonics=tuple(int(h) for h in p["harmonics"]),
        jumps=p["jumps"],
        mean=p["mean"],
        scale=p["scale"],
        dt=float(p["dt"]),
        period=float(p["period"]),
        defaults=defaults,
        p0=p["p0"],
    )
    u = _unfloats(d["u"])
    if u is None or u.shape != (param.size,) or not np.all(np.isfinite(u)):
        raise ValueError(f"{where}: u must hold {param.size} finite coordinates")
    return CalibrationResult(
        parametrisation=param,
        u=u,
        loss=float(np.nan if d["loss"] is None else d["loss"]),
        n_obs=int(d["n_obs"]),
        converged=bool(d["converged"]),
        reason=str(d["reason"]),
        iterations=int(d["iterations"]),
        seconds=float(d["seconds"]),
        start_losses=tuple(_unfloats(d["start_losses"]).tolist()),
        history=tuple(_unfloats(d["history"]).tolist()) if d["history"] else (),
        covariance=_unfloats(d["covariance"]),
        hessian_singular=bool(d["hessian_singular"]),
        **({"evaluation": d.get("evaluation")} if _HAS_EVALUATION else {}),
    )


def default_start(split: Split) -> np.datetime64:
    """The first hour after training: the default origin of the written game."""
    return split.train.times[-1] + split.train.step


def game_header(data: dict, state: StateAt, horizon: float, defaults: dict) -> str:
    """The comment header of `game.toml` (without the `# ` prefixes)."""
    test = data["test"]
    lines = [
        f"Fitted to {data['file']} ({data['column']}, {data['layout']} layout).",
        f"Training {data['train'][0]} to {data['train'][1]}"
        + (f"; test {test[0]} to {test[1]}." if test else "; no test period."),
        f"Time unit: hours; t = 0 is {data['time_origin']} (the seasonal phase).",
        f"t0 = {state.t:g} h is {state.time}; t1 = t0 + {float(horizon):g} h.",
        f"p0, phat0: the filtered mean at t0 (last price used {state.last_observed},",
        f"  {state.steps} prediction step(s)); sd of phat0 {np.sqrt(state.cov[0, 0]):.4g}, "
        f"of p0 - phat0 {np.sqrt(state.cov[1, 1]):.4g}.",
        "Terminal values: the stationary Riccati values (no horizon effect).",
        "Structural defaults, fixed, not identified by prices:",
        *(f"  {k} = {defaults[k]!r}" for k in ("n", "lam", "c", "r_share", "q")),
    ]
    return "\n".join(lines)


def _toml(game: PriceGame, header: str) -> str:
    if "header" in inspect.signature(game_to_toml).parameters:
        return game_to_toml(game, header=header)
    return "".join(f"# {line}\n" for line in header.splitlines()) + game_to_toml(game)


def write_fit_folder(
    folder: str,
    report: dict,
    fits: dict,
    split: Split,
    *,
    start=None,
    horizon: float | None = None,
    series: PriceSeries | None = None,
) -> StateAt:
    """Write `fit.json` and `game.toml` (module docstring) into `folder` (created if needed).

    **Arguments:**

    - `folder`: the output folder.
    - `report`, `fits`: what [`calibration_report`][] returned for `split`.
    - `split`: the [`Split`][] that was fitted.
    - `start`: the written game's origin (a date on the data's grid after the first training
      hour; default: the first hour after training). Its state is filtered from the prices
      of `series` before it, and predicted past their end.
    - `horizon`: $t_1 - t_0$ in hours (default: the fit's `StructuralDefaults.horizon`).
    - `series`: the whole price series the split was cut from (default: `split.span`, the
      training and test periods only).

    **Returns:** the [`StateAt`][] written as the game's initial state.
    """
    eq = fits["equilibrium"]
    horizon = float(eq.parametrisation.defaults.horizon if horizon is None else horizon)
    if not horizon > 0:
        raise ValueError(f"horizon must be > 0 hours, got {horizon}")
    start = default_start(split) if start is None else as_time(start)
    origin = split.train.times[0]
    state = state_at(eq.price_model(), split.span if series is None else series, origin, start)
    d = report["data"]
    data = {
        "file": os.path.abspath(d["file"]) if d["file"] else "",
        "column": d["column"],
        "layout": d["layout"],
        "repaired": bool(d.get("repairs")),
        "dt_hours": float(d["dt_hours"]),
        "time_origin": str(origin),
        "train": [str(split.train.times[0]), str(split.train.times[-1])],
        "test": None
        if split.test is None
        else [str(split.test.times[0]), str(split.test.times[-1])],
    }
    ar1 = fits["ar1"]
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "data": data,
        "start": str(state.time),
        "horizon": horizon,
        "initial_state": {"mean": _floats(state.mean), "cov": _floats(state.cov)},
        "equilibrium": _result_dict(eq),
        "mrjd": _result_dict(fits["mrjd"]),
        "ar1": {"c": ar1.c, "phi": ar1.phi, "s": ar1.s},
    }
    game = fitted_game(eq, state, horizon)
    header = game_header(data, state, horizon, eq.parametrisation.defaults.values())
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, FIT_FILE), "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
    with open(os.path.join(folder, GAME_FILE), "w") as f:
        f.write(_toml(game, header))
    return state


def load_fit(folder: str) -> Fit:
    """Read a fit folder written by [`write_fit_folder`][] (`mftg calibrate --out`).

    **Raises:** `ValueError` naming the folder when it holds no readable `fit.json` of this
    format and version.
    """
    path = os.path.join(folder, FIT_FILE)
    if not os.path.isdir(folder):
        raise ValueError(f"{folder} is not a fit folder (not a folder)")
    if not os.path.isfile(path):
        raise ValueError(
            f"{folder} is not a fit folder: no {FIT_FILE} (write one with "
            "`mftg calibrate DATA --out DIR`)"
        )
    try:
        with open(path) as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable fit file ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a fit file (format is not {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise ValueError(f"{path}: fit format version {doc.get('version')!r}, expected {VERSION}")
    try:
        eq = _result_from(doc["equilibrium"], f"{path}: equilibrium")
        mrjd = _result_from(doc["mrjd"], f"{path}: mrjd")
        a = doc["ar1"]
        ar1 = AR1(float(a["c"]), float(a["phi"]), float(a["s"]))
        return Fit(
            eq,
            mrjd,
            ar1,
            dict(doc["data"]),
            str(doc["start"]),
            float(doc["horizon"]),
            os.path.abspath(folder),
        )
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: missing or malformed entry {e}") from None
