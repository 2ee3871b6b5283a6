r"""The price game's ensemble statistics, from the shared engine's driver.

[`simulate`][mftg_jax.price.simulate] runs the ensemble of
[`simulate_paths`][mftg_jax.price.simulate_paths] in batches on the shared driver (devices,
streaming statistics, progress) and names the statistics in the price game's terms.
"""

from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jax.sharding import Mesh
from jaxtyping import PRNGKeyArray
import numpy as np

from .._simulation._driver import run_ensemble, RunInfo
from .._simulation._spec import EnsembleSpec
from .._simulation._statistics import Moments
from .._validation import check_instance
from ._game import PriceGame
from ._initial import InitialLaw
from ._simulation import PriceEnsemble, resolve_policy


class EnsembleResult(eqx.Module):
    r"""Statistics of a simulated ensemble (returned by [`simulate`][]); numpy arrays.

    `S` save times, `n` producers, `Q` quantile levels, `M` scenarios.

    - `times (S,)`; `quantile_levels (Q,)`.
    - `p_mean, p_var, p_stderr (S,)`, `p_quantiles (Q, S)`: the price over all paths.
    - `phat (M, S)`: each scenario's conditional mean price; `scenario_mean_p (M, S)`: the
      mean of $p$ over each scenario's paths (tends to `phat` as paths grow).
    - `phat_mean, phat_var, phat_stderr (S,)`, `phat_quantiles (Q, S)`: $\hat p$ over scenarios.
    - `u_mean, u_stderr (S, n)`, `u_quantiles (Q, S, n)`: the controls $u_i(t, p, \hat p)$.
    - `revenue_mean, revenue_stderr (n,)`, `revenue_quantiles (Q, n)`: realised discounted
      revenue, terminal term included (compare with `RiccatiSolution.revenue()`);
      `cost_mean, cost_stderr (n,)`, `cost_quantiles (Q, n)`: realised undiscounted cost
      $\int (c_i u_i + \tfrac{r_i}2 u_i^2 + \tfrac{\bar r_i}2 \hat u_i^2)\,dt$.
    - `running_revenue_mean, running_revenue_stderr (S, n)`, `running_revenue_quantiles
      (Q, S, n)` (with `revenue_series=True`, else `None`): the realised discounted running
      revenue from $t_0$ to each save time (no terminal term).
    - `paths_p (F, S)`, `paths_u (F, S, n)`: the first `F = n_full_paths` paths of scenario 0.
    - `run`: the [`RunInfo`][mftg_jax.RunInfo]: `n_paths, n_common, n_steps, batch_size,
      n_devices`, `run_seconds`, `compile_seconds`, `path_steps_per_second` (run time only),
      `jump_overflow` (0 in any sane run).

    Standard errors: $\sqrt{\mathrm{var}/(MN)}$ when $M = 1$; otherwise the between-scenario
    standard error of the scenario means, which accounts for the common noise.

    Quantiles over paths come from the engine's streamed histograms (`spec.bins` bins per
    save time and quantity, edges from the first batch's range widened by half of it on
    each side): each is exact to within one bin width, $2(\max - \min)/\text{bins}$ of the
    first batch (0.4% of that range with the default 512 bins), on top of its Monte Carlo
    error. $\hat p$ quantiles are exact over the $M$ scenarios.
    """

    times: np.ndarray
    quantile_levels: np.ndarray
    p_mean: np.ndarray
    p_var: np.ndarray
    p_stderr: np.ndarray
    p_quantiles: np.ndarray
    phat: np.ndarray
    scenario_mean_p: np.ndarray
    phat_mean: np.ndarray
    phat_var: np.ndarray
    phat_stderr: np.ndarray
    phat_quantiles: np.ndarray
    u_mean: np.ndarray
    u_stderr: np.ndarray
    u_quantiles: np.ndarray
    revenue_mean: np.ndarray
    revenue_stderr: np.ndarray
    cost_mean: np.ndarray
    cost_stderr: np.ndarray
    paths_p: np.ndarray
    paths_u: np.ndarray
    run: RunInfo
    revenue_quantiles: np.ndarray
    cost_quantiles: np.ndarray
    running_revenue_mean: np.ndarray | None = None
    running_revenue_stderr: np.ndarray | None = None
    running_revenue_quantiles: np.ndarray | None = None

    def summary(self) -> dict[str, Any]:
        """The headline figures at $t_1$ as a JSON-ready dict."""
        return {
            "mean_p_t1": float(self.p_mean[-1]),
            "var_p_t1": float(self.p_var[-1]),
            "stderr_mean_p_t1": float(self.p_stderr[-1]),
            "mean_phat_t1": float(self.phat_mean[-1]),
            "mean_revenue": self.revenue_mean.tolist(),
            "stderr_revenue": self.revenue_stderr.tolist(),
            "mean_cost": self.cost_mean.tolist(),
            "stderr_cost": self.cost_stderr.tolist(),
            "quantile_levels": self.quantile_levels.tolist(),
            "revenue_quantiles": self.revenue_quantiles.T.tolist(),
            "cost_quantiles": self.cost_quantiles.T.tolist(),
            **self.run.as_dict(),
        }

    def to_pandas(self):
        """The quantile time series as a `pandas.DataFrame`, one row per save time.

        Columns: `time`; for each quantity `X` in `p`, `phat`, `u{i}` (producer $i = 1..n$)
        and, with `revenue_series=True`, `revenue{i}` (running revenue from $t_0$), the
        columns `X_mean` and `X_q{level}` (e.g. `p_q0.05`, `u1_q0.5`). `phat` quantiles are
        over the scenarios ($M = 1$: its one path).
        """
        import pandas as pd

        f64 = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
        cols = {"time": f64(self.times)}

        def add(name, mean, quantiles):
            cols[f"{name}_mean"] = f64(mean)
            for level, q in zip(self.quantile_levels, quantiles):
                cols[f"{name}_q{level:g}"] = f64(q)

        add("p", self.p_mean, self.p_quantiles)
        add("phat", self.phat_mean, self.phat_quantiles)
        n = self.u_mean.shape[1]
        for i in range(n):
            add(f"u{i + 1}", self.u_mean[:, i], self.u_quantiles[:, :, i])
        if self.running_revenue_mean is not None:
            for i in range(n):
                add(
                    f"revenue{i + 1}",
                    self.running_revenue_mean[:, i],
                    self.running_revenue_quantiles[:, :, i],
                )
        return pd.DataFrame(cols)


def simulate(
    game: PriceGame,
    key: PRNGKeyArray,
    spec: EnsembleSpec = EnsembleSpec(),
    *,
    policy: Any = "equilibrium",
    mesh: Mesh | None = None,
    progress: bool = False,
    checkpoint: str | bool | None = None,
    initial: InitialLaw | None = None,
    revenue_series: bool = False,
) -> EnsembleResult:
    r"""Simulate the price game's ensemble and return its statistics.

    $M$ = `spec.n_common` scenarios of common noise, each with $N$ = `spec.n_paths // M`
    idiosyncratic paths; the dynamics, schemes and policies are those of
    [`simulate_paths`][mftg_jax.price.simulate_paths]; batches, devices and streamed
    statistics are the shared driver's, so the result does not depend on `batch_size` or
    on the number of devices.

    **Arguments:**

    - `game`: a [`PriceGame`][mftg_jax.PriceGame].
    - `key`: a JAX PRNG key.
    - `spec`: an [`EnsembleSpec`][mftg_jax.EnsembleSpec] (default: $10^5$ paths, one
      scenario, 1000 steps, the exponential scheme, float32).
    - `policy`: `"equilibrium"` (solves the Riccati system once), a `FeedbackPolicy`, `None`
      or a callable (Euler only).
    - `mesh`: a `jax.sharding.Mesh` with one axis named `"paths"`; default: all devices.
    - `progress`: show a progress bar (per batch) with path-steps per second.
    - `checkpoint`: a file (or `True`: one in the temporary directory, named by a
      fingerprint of the run) where the merged statistics are saved after every batch; the
      same call after an interruption resumes there, with results bit for bit those of an
      uninterrupted run. Removed on completion.
    - `initial`: an [`InitialLaw`][mftg_jax.price.InitialLaw]: $\hat p_0$ drawn once per
      scenario and $p_0 - \hat p_0$ per path from its conditional law (counter-based keys:
      the result does not depend on the batch size); default: the game's `p0`, `phat0`.
    - `revenue_series`: also stream each producer's running revenue at the save times
      (`running_revenue_*` of the result, `revenue{i}` columns of `to_pandas()`).

    **Returns:** an [`EnsembleResult`][mftg_jax.price.EnsembleResult].
    """
    if initial is not None:
        check_instance("initial", initial, InitialLaw)
    model = PriceEnsemble(game, resolve_policy(game, policy), initial, revenue_series)
    st = run_ensemble(model, key, spec, mesh=mesh, progress=progress, checkpoint=checkpoint)
    levels = st.quantile_levels
    phat = np.asarray(st.per_scenario["phat"], dtype=np.float64)
    M = st.run.n_common
    phat_mom = Moments.of(jnp.asarray(phat), 0)
    phat_q = np.quantile(phat, levels, axis=0) if M > 1 else np.repeat(phat[:1], len(levels), 0)
    return EnsembleResult(
        times=np.asarray(st.per_scenario["times"][0], dtype=np.float64),
        quantile_levels=levels,
        p_mean=st.mean["p"],
        p_var=st.var["p"],
        p_stderr=st.stderr["p"],
        p_quantiles=st.quantiles["p"],
        phat=phat,
        scenario_mean_p=st.scenario_mean["p"],
        phat_mean=np.asarray(phat_mom.mean),
        phat_var=np.asarray(phat_mom.variance) if M > 1 else np.zeros(phat.shape[1]),
        phat_stderr=np.asarray(phat_mom.stderr) if M > 1 else np.zeros(phat.shape[1]),
        phat_quantiles=phat_q,
        u_mean=st.mean["u"],
        u_stderr=st.stderr["u"],
        u_quantiles=st.quantiles["u"],
        revenue_mean=st.mean["revenue"],
        revenue_stderr=st.stderr["revenue"],
        cost_mean=st.mean["cost"],
        cost_stderr=st.stderr["cost"],
        paths_p=st.full["p"],
        paths_u=st.full["u"],
        run=st.run,
        revenue_quantiles=st.quantiles["revenue"],
        cost_quantiles=st.quantiles["cost"],
        running_revenue_mean=st.mean.get("running_revenue"),
        running_revenue_stderr=st.stderr.get("running_revenue"),
        running_revenue_quantiles=st.quantiles.get("running_revenue"),
    )
