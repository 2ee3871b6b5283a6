r"""Performance of a frequency trajectory: nadir, RoCoF, settling time and control cost.

All of them are computed on the centre-of-inertia (COI) frequency deviation
$$\Delta f(t) = \frac{1}{2\pi}\,\frac{\sum_i M_i\omega_i(t)}{\sum_i M_i}\quad\text{(Hz)}$$
over the generator buses (the frequency-responsive buses have no inertia; without any
generator, the damping-weighted mean over the dynamic buses), sampled on the trajectory's save
grid $t_0 < t_1 < \dots < t_K$:

- **nadir** $\Delta f(t^\dagger)$ at $t^\dagger = \arg\max_k |\Delta f(t_k)|$ (signed Hz:
  negative after a loss of generation or a load increase);
- **RoCoF** (rate of change of frequency) over a sliding window $W$ (default 0.5 s, the
  window of ENTSO-E's RoCoF withstand capability):
  $\max_t |\Delta f(t + W) - \Delta f(t)| / W$ (signed Hz/s), $\Delta f(t+W)$ linearly
  interpolated on the grid;
- **settling time**: the last grid time at which $|\Delta f(t_k) - \Delta f(t_K)| > \beta$
  (band $\beta$, default 10 mHz) measured from the event time $t_e$, i.e. the time after the
  event from which the frequency stays within $\pm\beta$ of its final value (0 when it never
  leaves the band);
- **control cost** $\int_{t_0}^{t_K} \sum_i J_i(u_i(t))\,dt$ by the trapezoidal rule.

Every metric is a jnp function of the arrays: `jax.vmap` over scenarios and `jax.grad` (away
from the argmax switches) work.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._network import Network


def coi_frequency_hz(network: Network, omega: Float[Array, "T n"]) -> Float[Array, " T"]:
    r"""$\Delta f(t)$ (Hz): the inertia-weighted mean of $\omega_i/2\pi$ (module docstring)."""
    w = jnp.where(jnp.sum(network.M) > 0, network.M, network.D)
    w = w / jnp.sum(w)
    return jnp.sum(omega * w[None, :], axis=-1) / (2 * jnp.pi)


def nadir(ts: Float[Array, " T"], df: Float[Array, " T"]) -> Float[Array, ""]:
    r"""The signed extreme deviation $\Delta f(t^\dagger)$, $t^\dagger = \arg\max|\Delta f|$."""
    return df[jnp.argmax(jnp.abs(df))]


def rocof(ts: Float[Array, " T"], df: Float[Array, " T"], window: float = 0.5) -> Float[Array, ""]:
    r"""The signed largest rate $(\Delta f(t + W) - \Delta f(t))/W$ over the grid times $t$
    with $t + W \le t_K$ (Hz/s)."""
    later = jnp.interp(ts + window, ts, df)
    rate = jnp.where(ts + window <= ts[-1], (later - df) / window, 0.0)
    return rate[jnp.argmax(jnp.abs(rate))]


def settling_time(
    ts: Float[Array, " T"], df: Float[Array, " T"], band: float = 0.01, t_event: float = 0.0
) -> Float[Array, ""]:
    r"""The time after `t_event` from which $|\Delta f - \Delta f(t_K)| \le \beta$ (s)."""
    out = jnp.abs(df - df[-1]) > band
    last = jnp.max(jnp.where(out, ts, -jnp.inf))
    return jnp.maximum(jnp.where(jnp.any(out), last, t_event) - t_event, 0.0)


def control_cost(network: Network, ts: Float[Array, " T"], u: Float[Array, "T n"]) -> Array:
    r"""$\int \sum_i \tfrac{a_i}2 u_i^2 + b_i u_i\,dt$ (trapezoidal rule on the grid)."""
    J = jnp.sum(0.5 * network.cost_a[None, :] * u * u + network.cost_b[None, :] * u, axis=-1)
    return jnp.sum(0.5 * (J[1:] + J[:-1]) * jnp.diff(ts))


class FrequencyMetrics(eqx.Module):
    r"""The performance figures of one trajectory (module docstring for the definitions).

    **Fields:** `nadir_hz`, `rocof_hz_per_s`, `settling_time_s`, `control_cost`,
    `final_deviation_hz` ($\Delta f(t_K)$).
    """

    nadir_hz: Float[Array, ""]
    rocof_hz_per_s: Float[Array, ""]
    settling_time_s: Float[Array, ""]
    control_cost: Float[Array, ""]
    final_deviation_hz: Float[Array, ""]


def frequency_metrics(
    network: Network,
    ts: Float[Array, " T"],
    omega: Float[Array, "T n"],
    u: Float[Array, "T n"],
    *,
    window: float = 0.5,
    band: float = 0.01,
    t_event: float = 0.0,
) -> FrequencyMetrics:
    r"""Nadir, RoCoF, settling time and control cost of a trajectory (module docstring).

    **Arguments:**

    - `network`: the [`Network`][mftg_jax.frequency.Network] (inertias and costs).
    - `ts`, `omega`, `u`: the save times, frequency deviations (rad/s, `(T, n)`) and controls.
    - `window`: the RoCoF window $W$ (s); `band`: the settling band $\beta$ (Hz);
      `t_event`: the time of the disturbance (s).

    **Returns:** [`FrequencyMetrics`][mftg_jax.frequency.FrequencyMetrics].
    """
    df = coi_frequency_hz(network, omega)
    return FrequencyMetrics(
        nadir(ts, df),
        rocof(ts, df, window),
        settling_time(ts, df, band, t_event),
        control_cost(network, ts, u),
        df[-1],
    )


class MonteCarloMetrics(eqx.Module):
    r"""Means and standard errors of the metrics over load scenarios.

    **Fields:** `mean` and `stderr` (each a
    [`FrequencyMetrics`][mftg_jax.frequency.FrequencyMetrics]), `samples` (the per-scenario
    metrics) and `n` (the number of scenarios).
    """

    mean: FrequencyMetrics
    stderr: FrequencyMetrics
    samples: FrequencyMetrics
    n: int = eqx.field(static=True)


def load_scenarios(network: Network, event, key, n: int, std: float, common_std: float):
    r"""`n` events: `event` plus a load step at every load bus ($P_i < 0$, or any non-generator
    bus without one) at the event's time, $\Delta L_i = \sigma\varepsilon_i + \sigma_c
    \varepsilon_0$ with independent standard normals (the common $\varepsilon_0$ is one
    system-wide draw per scenario).

    **Returns:** an `Event` whose arrays have a leading scenario axis (for `jax.vmap`).
    """
    kind = jnp.asarray(network.kind)
    loads = (network.P < 0) & (kind != 0)
    k1, k2 = jax.random.split(key)
    eps = jax.random.normal(k1, (n, network.n))
    common = jax.random.normal(k2, (n, 1))
    dL = std * eps + common_std * jnp.broadcast_to(common, (n, network.n))
    dP = jnp.where(loads[None, :], -dL, 0.0) + event.delta_P[None, :]
    stacked = eqx.tree_at(
        lambda e: (e.time, e.delta_P, e.line_scale),
        event,
        (
            jnp.broadcast_to(event.time, (n,)),
            dP,
            jnp.broadcast_to(event.line_scale, (n,) + event.line_scale.shape),
        ),
    )
    # Every array of the event gets the scenario axis (the control-bound scale of a trip too).
    scale = getattr(event, "bound_scale", None)
    if scale is None:
        return stacked
    return eqx.tree_at(
        lambda e: e.bound_scale, stacked, jnp.broadcast_to(scale, (n,) + scale.shape)
    )


def monte_carlo(
    network: Network,
    controller,
    events,
    ts,
    *,
    model: str = "nonlinear",
    rtol: float = 1e-6,
    atol: float = 1e-8,
    window: float = 0.5,
    band: float = 0.01,
) -> MonteCarloMetrics:
    r"""The metrics of `controller` over stacked load scenarios `events` (from
    [`load_scenarios`][mftg_jax.frequency.load_scenarios]), one vmapped simulation on the
    nonlinear (or linear) network from the pre-event equilibrium; mean and standard error
    $s/\sqrt n$ of each metric.

    **Returns:** [`MonteCarloMetrics`][mftg_jax.frequency.MonteCarloMetrics].
    """
    from ._dynamics import simulate
    from ._steady import initial_angles

    theta0 = initial_angles(network, controller)
    n = int(events.time.shape[0])

    def one(ev):
        tr = simulate(network, controller, ev, ts=ts, model=model, theta0=theta0, rtol=rtol,
                      atol=atol)  # fmt: skip
        return frequency_metrics(network, tr.ts, tr.omega, tr.u, window=window, band=band,
                                 t_event=ev.time)  # fmt: skip

    samples = jax.vmap(one)(events)
    mean = jax.tree.map(lambda v: jnp.mean(v, axis=0), samples)
    se = jax.tree.map(lambda v: jnp.std(v, axis=0, ddof=1) / jnp.sqrt(n), samples)
    return MonteCarloMetrics(mean, se, samples, n)
