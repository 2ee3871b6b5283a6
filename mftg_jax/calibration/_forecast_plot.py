"""The fan chart of a forecast: quantile bands, medians of the baselines, realised prices."""

import numpy as np

from ._forecast import ForecastResult


def plot_forecast(result: ForecastResult, path: str | None = None, *, history=None):
    """A fan chart of `result`: the equilibrium forecast's central bands (the widest and the
    next pair of quantile levels) and median, the baselines' medians, and the realised prices
    where they exist.

    **Arguments:** `result`, a [`ForecastResult`][]; `path`, a PNG file to write (None: only
    return the figure); `history`, optional `(times, prices)` shown before the start.

    **Returns:** the matplotlib Figure.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    lv = result.quantile_levels
    q = result.quantiles["equilibrium"]
    t = result.times
    fig, ax = plt.subplots(figsize=(12, 4.5))
    if history is not None:
        ax.plot(history[0], history[1], color="0.4", lw=0.8, label="prices before the start")
    pairs = [(i, len(lv) - 1 - i) for i in range(len(lv) // 2)]
    for shade, (i, j) in zip((0.18, 0.35, 0.5, 0.6), pairs):
        ax.fill_between(
            t, q[i], q[j], color="tab:blue", alpha=shade, lw=0,
            label=f"equilibrium {lv[i]:g}-{lv[j]:g}",
        )  # fmt: skip
    mid = int(np.argmin(np.abs(lv - 0.5)))
    centre = "median" if abs(lv[mid] - 0.5) < 1e-12 else f"{lv[mid]:g} quantile"
    ax.plot(t, q[mid], color="tab:blue", lw=1.5, label=f"equilibrium {centre}")
    colors = {"seasonal_naive": "tab:green", "ar1": "tab:purple", "mrjd": "tab:orange",
              "sarima": "tab:brown"}  # fmt: skip
    for m, c in colors.items():
        if m in result.quantiles:
            ax.plot(t, result.quantiles[m][mid], color=c, lw=0.9, ls="--", label=f"{m} {centre}")
    if result.has_realised:
        ax.plot(t, result.realised, color="k", lw=1.0, label="realised")
    ax.set_xlabel("time")
    ax.set_ylabel("price")
    ax.set_title(f"Forecast from {result.start} ({len(t)} steps, {result.paths} paths)")
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return fig
