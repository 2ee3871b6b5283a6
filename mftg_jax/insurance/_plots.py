"""Figures of the optimal policy against time, regime and loading, and of terminal wealth."""

import jax.numpy as jnp
import numpy as np

from ._policy import AbstractPolicy
from ._rules import insurance_fraction
from ._solution import InsuranceSolution


def plot_policy(sol: InsuranceSolution, numerical: AbstractPolicy | None = None, n: int = 101):
    r"""Consumption rate $c_j(t)$, investment fractions $\pi_{jk}(t)$ (closed forms, and a
    numerical policy dashed) and the insurance rule against the loading $\theta$ for both
    conventions, with the model's regimes marked. **Returns:** the matplotlib figure."""
    import matplotlib.pyplot as plt

    m = sol.model
    ts = np.linspace(float(m.t0), float(m.t1), n)
    cf = sol.policy()
    fr = [cf.fractions(jnp.asarray(t)) for t in ts]
    c = np.stack([np.asarray(f[0]) for f in fr])
    pi = np.stack([np.asarray(f[1]) for f in fr])
    fig, ax = plt.subplots(1, 3, figsize=(14, 3.6))
    for j in range(m.m):
        ax[0].plot(ts, c[:, j], label=f"regime {j}")
        for k in range(m.d):
            ax[1].plot(ts, pi[:, j, k], label=f"regime {j}, asset {k}")
    if numerical is not None:
        nf = [numerical.fractions(jnp.asarray(t)) for t in ts]
        j = m.regime0
        ax[0].plot(ts, [float(f[0][j]) for f in nf], "k--", label=f"numerical, regime {j}")
        for k in range(m.d):
            ax[1].plot(ts, [float(f[1][j, k]) for f in nf], "k--", lw=0.8)
    ax[0].set(title="consumption rate $u^c/s$", xlabel="t")
    ax[1].set(title="investment fractions $u^I_k/s$", xlabel="t")
    th = np.linspace(-0.5, 3.0, 200)
    reg = m.regimes
    for j in range(m.m):
        l = float(reg.loss_fraction[j])
        for conv, ls in (("compensated", "-"), ("poisson", ":")):
            ax[2].plot(
                th, np.asarray(insurance_fraction(l, th, conv)), ls, label=f"l={l:g}, {conv}"
            )
        ax[2].plot([float(reg.loading[j])], [float(sol.insurance[j])], "ko", ms=4)
    ax[2].set(title=r"insurance $u^{ins}/s$ against $\theta$", xlabel=r"$\theta$")
    for a in ax:
        a.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_wealth(insured, uninsured, ruin_level: float | None = None):
    """Histograms of terminal wealth, insured against uninsured (arrays of samples).
    **Returns:** the matplotlib figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    a, b = np.asarray(insured), np.asarray(uninsured)
    lo, hi = np.quantile(np.concatenate([a, b]), [0.001, 0.999])
    bins = np.linspace(lo, hi, 60)
    ax.hist(a, bins, alpha=0.6, density=True, label="insured")
    ax.hist(b, bins, alpha=0.6, density=True, label="uninsured")
    if ruin_level is not None:
        ax.axvline(ruin_level, color="k", ls="--", lw=0.8, label="ruin level")
    ax.set(title="terminal wealth $s(t_1)$", xlabel="s")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
