r"""Figures of the slides' scenarios: Scenario 1's tracking, panels (a)-(f) of Scenarios 2 and 3,
and the stationary feedback price against the one-shot Cournot price.

Figures are `matplotlib.figure.Figure` objects built without `pyplot` (so nothing depends on
an interactive backend; `fig.savefig` renders with Agg). The slides give no units: time is in
the model's time unit, prices in money per unit of output, outputs in units of output, costs
in money per unit time.
"""

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
import numpy as np

from ._runs import EquilibriumRun, MonteCarloRun, UncontrolledRun

_TIME = "time t [model time unit]"
_PRICE = "price [money / unit output]"
_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _colour(i: int) -> str:
    return _COLOURS[i % len(_COLOURS)]


def plot_scenario_1(run: UncontrolledRun) -> Figure:
    r"""Scenario 1: the uncontrolled price $p(t)$ for each speed $s$, against $a - D(t)$.

    **Arguments:** `run`, from [`run_scenario_1`][].

    **Returns:** a `Figure` with the full horizon (left) and a zoom on the last period (right).
    """
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    last = run.times >= run.times[-1] - 0.2
    for ax, sel, title in (
        (axes[0], slice(None), "price from p(0) = 170"),
        (axes[1], last, "last period of the demand (zoom)"),
    ):
        ax.plot(run.times[sel], run.target[sel], "k--", lw=1.5, label="a - D(t) (target)")
        for i, s in enumerate(run.speeds):
            ax.plot(run.times[sel], run.price[i, sel], color=_colour(i), label=f"p(t), s = {s:g}")
        ax.set_xlabel(_TIME)
        ax.set_ylabel(_PRICE)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right")
    fig.suptitle(
        "Scenario 1: uncontrolled price, dp = s (a - D(t) - p) dt, D(t) = 30 + 20 sin(10 pi t)"
    )
    return fig


def plot_equilibrium(
    run: EquilibriumRun,
    title: str,
    monte_carlo: MonteCarloRun | None = None,
    compare: EquilibriumRun | None = None,
    compare_label: str = "misprint",
) -> Figure:
    r"""Panels (a)-(f) of the slides for one scenario.

    (a) $p(t)$ and $E[p(t)]$, (b) $u_i^*(t)$, (c)-(e) $\alpha_i, \beta_i, \gamma_i$, (f) the
    running cost $C_i(u_i(t))$.

    **Arguments:**

    - `run`: the exact equilibrium, from [`equilibrium_run`][].
    - `title`: the figure title.
    - `monte_carlo`: a Monte Carlo run: adds one sample path and, in (a), the 5-95% band and
      the Monte Carlo mean of $p$.
    - `compare`: a second candidate (e.g. the slides' misprint), drawn dashed.
    - `compare_label`: its legend label.

    **Returns:** a `Figure`.
    """
    fig = Figure(figsize=(14, 8), layout="constrained")
    ax = fig.subplots(2, 3).ravel()
    n = run.controls.shape[1]
    t = run.times
    mc = monte_carlo

    a = ax[0]
    if mc is not None:
        a.fill_between(
            mc.times, *mc.price_band, color="tab:blue", alpha=0.2, label="5-95% of paths"
        )
        a.plot(mc.times, mc.sample_price, color="tab:blue", lw=0.8, label="p(t), one path")
        a.plot(
            mc.times, mc.price_mean, color="tab:orange", lw=1, ls=":",
            label=f"mean of {mc.n_paths} paths",
        )  # fmt: skip
    else:
        a.plot(t, run.price, color="tab:blue", lw=2.5, label="p(t)")
    a.plot(t, run.price, color="k", lw=1, ls="--", label="E[p(t)] (exact)")
    if compare is not None:
        a.plot(t, compare.price, color="tab:red", lw=1, ls="-.", label=f"E[p(t)], {compare_label}")
    a.set_ylabel(_PRICE)
    a.set_title("(a) price p(t) and E[p(t)]")
    a.legend()

    panels = (
        (ax[1], run.controls, "output u [unit output / time]", "(b) controls u_i*(t)", "u"),
        (ax[2], run.alpha, "alpha_i(t)", "(c) alpha_i(t)", "alpha"),
        (ax[3], run.beta, "beta_i(t)", "(d) beta_i(t)", "beta"),
        (ax[4], run.gamma, "gamma_i(t)", "(e) gamma_i(t)", "gamma"),
        (ax[5], run.cost_rate, "C_i(u_i(t)) [money / time]", "(f) costs C_i(u_i(t))", "C"),
    )
    for axis, values, ylabel, panel_title, name in panels:
        for i in range(n):
            label = f"E[{name}_{i + 1}]" if mc is not None and name in ("u", "C") else None
            axis.plot(t, values[:, i], color=_colour(i), lw=2, label=label or f"producer {i + 1}")
            if compare is not None:
                other = getattr(compare, _FIELDS[name])
                axis.plot(t, other[:, i], color=_colour(i), lw=1, ls="--")
        axis.set_ylabel(ylabel)
        axis.set_title(panel_title)
    if mc is not None:
        for i in range(n):
            ax[1].plot(mc.times, mc.sample_controls[:, i], color=_colour(i), lw=0.6, alpha=0.7)
            ax[5].plot(mc.times, mc.sample_cost_rate[:, i], color=_colour(i), lw=0.6, alpha=0.7)
        ax[1].plot([], [], color="grey", lw=0.6, label="one path")
        ax[5].plot([], [], color="grey", lw=0.6, label="one path")
    if compare is not None:
        ax[4].plot([], [], color="grey", lw=1, ls="--", label=compare_label)
        ax[5].plot([], [], color="grey", lw=1, ls="--", label=compare_label)
    for axis in ax:
        axis.set_xlabel(_TIME)
        axis.grid(alpha=0.3)
    for axis in ax[1:]:
        axis.legend(fontsize="small")
    fig.suptitle(title)
    return fig


_FIELDS = {
    "u": "controls",
    "alpha": "alpha",
    "beta": "beta",
    "gamma": "gamma",
    "C": "cost_rate",
}


def plot_stationary_comparison(
    numbers: Sequence[int], stationary: np.ndarray, cournot: np.ndarray, title: str
) -> Figure:
    r"""The stationary feedback price $\bar p$ and the Cournot price $p^C$ against $n$.

    **Arguments:**

    - `numbers`: the numbers of producers $n$.
    - `stationary`, `cournot`: the two prices for each $n$.
    - `title`: the figure title (the parameters held fixed).

    **Returns:** a `Figure`.
    """
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(numbers, stationary, "o-", label="stationary feedback price p̄")
    ax.plot(numbers, cournot, "s--", label="one-shot Cournot price p^C")
    ax.set_xscale("log")
    ax.set_xlabel("number of producers n")
    ax.set_ylabel(_PRICE)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Save `fig` as PNG (Agg), creating the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path
