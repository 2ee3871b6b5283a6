r"""Unconstrained coordinates of the identified quantities, and the map to a price game.

**Identification.** Observed at stationarity, the equilibrium price of the price game is a
seasonal mean plus two Ornstein-Uhlenbeck factors (`LinearPriceModel`). Its law, hence the
likelihood of any price series, depends on the game only through

- $\kappa_i = \eta$ and $\kappa_c = \eta(1 + K)$, $K = \sum_j k_j$ (per hour);
- the mean price $\bar p = (a + M)/(1+K)$ and its seasonal harmonics $Z_h = T(\omega_h)A_h$;
- $\sigma_o$, $\sigma$ and the jump laws.

So $\eta$, $K$, $\bar p$, $Z$, the volatilities and jumps are identified; the cost
parameters $(c_i, r_i, \bar r_i, \lambda_i)$ and $n$ are not, beyond $K$ and $a + M$:
they are fixed by [`StructuralDefaults`][] and the fitted game is the one game with those
defaults that reproduces the identified quantities. Which factor is common is not a choice:
the faster one ($\kappa_c > \kappa_i$ as $K > 0$).

The coordinates are unconstrained reals, smooth bijections of the identified quantities
(logs of $\kappa_i = \eta$, of $\kappa_c - \kappa_i = \eta K$ and of the volatilities, a
softmax for the per-step jump probabilities, prices scaled by the training mean and standard
deviation), which makes the problem well scaled.

**Every coordinate is a game with a stationary equilibrium.** The logs give $\eta > 0$ and
$K > 0$; `total_cost_curvature` then gives the identical producers' $R > 0$ for every such
pair, and the stationary Riccati values exist and are unique for every $\eta > 0$, $R > 0$,
$\lambda \ge 0$ (`mftg_jax/price/_stationary.py`, solved without loss of accuracy for
$R$ down to $10^{-9}$ and $K$ up to $10^8$). So no constraint is needed: the fit cannot leave
the region where the equilibrium it reads the likelihood from exists.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array
import numpy as np

from .._validation import check_field
from ..price import PriceGame
from ._price_model import (
    COMMON,
    game_from_identified,
    LinearPriceModel,
    price_model_from_game,
    StructuralDefaults,
)

MODELS = ("equilibrium", "mrjd")


def _float(x) -> Array:
    return jnp.asarray(x, dtype=float)


JUMPS = ("common", "idiosyncratic", "both", "none")


def seasonal_harmonics(harmonics: int, period: float = 168.0) -> tuple[int, ...]:
    """Multiples of the weekly base frequency: weekly $1..K$ and daily $1..K$ ($7k$)."""
    if not (isinstance(harmonics, int) and harmonics >= 0):
        raise ValueError(f"harmonics must be an integer >= 0, got {harmonics!r}")
    daily = int(round(period / 24.0))
    return tuple(
        sorted(set(range(1, harmonics + 1)) | {daily * k for k in range(1, harmonics + 1)})
    )


class Parametrisation(eqx.Module):
    """Coordinates $u \\in \\mathbb R^d$ of a price model (module docstring).

    **Arguments:**

    - `model`: `"equilibrium"` (the price game, two factors) or `"mrjd"` (a reduced-form
      one-factor mean-reverting jump diffusion with the same seasonal terms).
    - `harmonics`: the seasonal harmonics, multiples of `period` hours.
    - `jumps`: which factor jumps (`"common"`, `"idiosyncratic"`, `"both"`, `"none"`); for
      `"mrjd"` anything but `"none"` means the one factor jumps.
    - `mean`, `scale`: the training prices' mean and standard deviation (price scaling;
      arrays, so that new data reuse the compiled programs).
    - `dt`: the observation step in hours.
    - `defaults`: the unidentified game parameters ([`StructuralDefaults`][]).
    - `p0`: the first training price (initial price of the written game).
    """

    model: str = eqx.field(static=True)
    harmonics: tuple[int, ...] = eqx.field(static=True)
    jumps: str = eqx.field(static=True)
    mean: Array = eqx.field(converter=_float)
    scale: Array = eqx.field(converter=_float)
    dt: float = eqx.field(static=True, default=1.0)
    period: float = eqx.field(static=True, default=168.0)
    # Its model values are traced leaves: other defaults reuse the compiled programs.
    defaults: StructuralDefaults = StructuralDefaults()
    p0: Array = eqx.field(converter=_float, default=0.0)

    def __check_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.jumps not in JUMPS:
            raise ValueError(f"jumps must be one of {JUMPS}, got {self.jumps!r}")
        check_field("scale", self.scale, "> 0", lambda v: v > 0)
        check_field("mean", self.mean, "a finite real")

    @property
    def factors(self) -> int:
        return 2 if self.model == "equilibrium" else 1

    @property
    def jump_channels(self) -> tuple[int, ...]:
        if self.jumps == "none":
            return ()
        if self.factors == 1:
            return (0,)
        return {"common": (0,), "idiosyncratic": (1,), "both": (0, 1)}[self.jumps]

    @property
    def names(self) -> tuple[str, ...]:
        h = self.harmonics
        rates = ("log_eta", "log_eta_K") if self.factors == 2 else ("log_kappa",)
        vols = ("log_sigma_o", "log_sigma") if self.factors == 2 else ("log_sigma",)
        jumps = []
        for c in self.jump_channels:
            tag = ("common", "idio")[c] if self.factors == 2 else "jump"
            tag = tag if self.factors == 2 else ""
            pre = f"{tag}_" if tag else ""
            jumps += [f"logit_{pre}jump_prob", f"{pre}jump_loc", f"log_{pre}jump_std"]
        return (
            rates
            + ("level",)
            + tuple(f"cos_{k}" for k in h)
            + tuple(f"sin_{k}" for k in h)
            + vols
            + tuple(jumps)
        )

    @property
    def size(self) -> int:
        return len(self.names)

    def _split(self, u):
        nr = self.factors
        H = len(self.harmonics)
        i = 0
        rates = u[i : i + nr]
        i += nr
        level = u[i]
        i += 1
        cos, sin = u[i : i + H], u[i + H : i + 2 * H]
        i += 2 * H
        vols = u[i : i + nr]
        i += nr
        jumps = u[i:].reshape(len(self.jump_channels), 3)
        return rates, level, cos, sin, vols, jumps

    def identified(self, u) -> dict:
        """The identified quantities (natural units, per hour) at coordinates `u`."""
        rates, level, cos, sin, vols, jumps = self._split(u)
        s = self.scale
        out = {"level": self.mean + s * level, "cos": s * cos, "sin": s * sin}
        if self.factors == 2:
            # (log eta, log eta K) = (log kappa_i, log(kappa_c - kappa_i)): nearly orthogonal
            # directions of the likelihood, where (log eta, log K) would be a narrow valley.
            eta = jnp.exp(rates[0])
            K = jnp.exp(rates[1] - rates[0])
            out |= {"eta": eta, "K": K, "sigma_o": s * jnp.exp(vols[0])}
            out |= {"sigma": s * jnp.exp(vols[1])}
        else:
            out |= {"kappa": jnp.exp(rates[0]), "sigma": s * jnp.exp(vols[0])}
        nc = len(self.jump_channels)
        if nc:
            logits = jnp.concatenate([jnp.zeros((1,), u.dtype), jumps[:, 0]])
            probs = jax.nn.softmax(logits)[1:]
        for j, c in enumerate(self.jump_channels):
            tag = ("common", "idio")[c] if self.factors == 2 else ""
            pre = f"{tag}_" if tag else ""
            out[f"{pre}jump_intensity"] = probs[j] / self.dt
            out[f"{pre}jump_mean"] = s * jumps[j, 1]
            out[f"{pre}jump_std"] = s * jnp.exp(jumps[j, 2])
        return out

    def _jump_arrays(self, u):
        ident = self.identified(u)
        dtype = u.dtype
        prob, loc, std = jnp.zeros(2, dtype), jnp.zeros(2, dtype), jnp.ones(2, dtype)
        for c in self.jump_channels:
            tag = ("common", "idio")[c] if self.factors == 2 else ""
            pre = f"{tag}_" if tag else ""
            prob = prob.at[c].set(ident[f"{pre}jump_intensity"] * self.dt)
            loc = loc.at[c].set(ident[f"{pre}jump_mean"])
            std = std.at[c].set(ident[f"{pre}jump_std"])
        return prob, loc, std

    def game(self, u) -> PriceGame:
        """The price game with [`StructuralDefaults`][] that has these identified values."""
        if self.factors != 2:
            raise ValueError("the reduced-form mrjd model is not a price game")
        ident = self.identified(u)
        prob, loc, std = self._jump_arrays(u)
        return game_from_identified(
            ident["eta"],
            ident["K"],
            ident["level"],
            ident["cos"],
            ident["sin"],
            jnp.stack([ident["sigma_o"], ident["sigma"]]),
            ((prob[0], loc[0], std[0]), (prob[1], loc[1], std[1])),
            self.defaults,
            harmonics=self.harmonics,
            period=self.period,
            dt=self.dt,
            p0=self.p0,
        )

    def price_model(self, u) -> LinearPriceModel:
        """The two-factor model of the prices at `u`: through the game's stationary Riccati
        values for `"equilibrium"`, directly for `"mrjd"`."""
        if self.factors == 2:
            full = price_model_from_game(self.game(u), self.dt, period=self.period)
            # The game's intercept carries every harmonic up to the largest; keep ours.
            idx = np.asarray(self.harmonics, dtype=int) - 1
            return LinearPriceModel(
                level=full.level,
                cos=full.cos[idx],
                sin=full.sin[idx],
                kappa=full.kappa,
                sigma=full.sigma,
                jump_prob=full.jump_prob,
                jump_loc=full.jump_loc,
                jump_std=full.jump_std,
                period=self.period,
                harmonics=self.harmonics,
            )
        ident = self.identified(u)
        prob, loc, std = self._jump_arrays(u)
        dtype = u.dtype
        return LinearPriceModel(
            level=ident["level"],
            cos=ident["cos"],
            sin=ident["sin"],
            # The second factor is switched off (zero noise, no jumps); its rate is inert.
            kappa=jnp.stack([ident["kappa"], jnp.ones((), dtype)]),
            sigma=jnp.stack([ident["sigma"], jnp.zeros((), dtype)]),
            jump_prob=prob,
            jump_loc=loc,
            jump_std=std,
            period=self.period,
            harmonics=self.harmonics,
        )

    def implied(self, u) -> dict:
        """`stationary_price`, `mean_reversion_common`, `mean_reversion_idio` (per hour; None
        for one factor), `jump_intensity` (per hour, all channels), `stationary_variance`
        (of the price around its seasonal mean, price unit squared)."""
        m = self.price_model(u)
        var = m.stationary_variance(self.dt)
        out = {
            "stationary_price": m.level,
            "mean_reversion_common": m.kappa[COMMON],
            "jump_intensity": jnp.sum(m.jump_prob) / self.dt,
            "stationary_variance": var[0] + (var[1] if self.factors == 2 else 0.0),
        }
        if self.factors == 2:
            out["mean_reversion_idio"] = m.kappa[1]
        return out

    def initial(self, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Starting coordinates from simple statistics of the training prices."""
        y = np.asarray(y, np.float64)
        t = np.asarray(t, np.float64)
        w = 2 * np.pi * np.asarray(self.harmonics, np.float64) / self.period
        X = np.concatenate(
            [np.ones((t.size, 1)), np.cos(np.outer(t, w)), np.sin(np.outer(t, w))], 1
        )
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        r = y - X @ coef
        v = max(float(np.var(r)), 1e-12)

        def acf(lag):
            lag = max(1, int(round(lag / self.dt)))
            return float(np.corrcoef(r[:-lag], r[lag:])[0, 1]) if r.size > lag + 2 else 0.5

        s = float(self.scale)
        H = len(self.harmonics)
        k_fast = -np.log(np.clip(acf(self.dt), 0.3, 0.995)) / self.dt
        k_slow = -np.log(np.clip(acf(24.0), 0.05, 0.995)) / 24.0
        if self.factors == 2:
            eta = min(k_slow, k_fast / 3)
            K = max(k_fast / eta - 1, 0.5)
            rates = [np.log(eta), np.log(eta * K)]
            kap = np.array([eta * (1 + K), eta])
            vols = list(0.5 * np.log(v / 2 * 2 * kap) - np.log(s))
        else:
            rates = [np.log(k_fast)]
            vols = [0.5 * np.log(v * 2 * k_fast) - np.log(s)]
        d = np.diff(r)
        jumps = []
        for _ in self.jump_channels:
            jumps += [np.log(0.02), 0.0, np.log(3 * max(np.std(d), 1e-6) / s)]
        u = (
            rates
            + [(coef[0] - float(self.mean)) / s]
            + list(coef[1 : 1 + H] / s)
            + list(coef[1 + H :] / s)
            + vols
            + jumps
        )
        return np.asarray(u, np.float64)
