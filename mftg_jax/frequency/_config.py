r"""TOML configuration of a frequency-control study: case, costs, controller, event, horizon,
load scenarios.

The format (every table but the case is optional; values shown are the defaults)::

    case = "wscc9"            # "wscc9", "ieee14", "ieee39" or a MATPOWER .m file (a path
                              # relative to this file) with mpc.gendyn = [bus, H, xd1]
    model = "nonlinear"       # or "linear" (Kron-reduced, linearised at the initial state)
    f0 = 60.0                 # nominal frequency (Hz)
    generator_damping = 2.0   # D^pu per generator (p.u. power per p.u. frequency)
    load_damping = 0.0        # > 0: loads are frequency-responsive, D_i = d P_di / omega_s

    [costs]                   # J_i(u) = a_i/2 u^2 + b_i u per generator (order of mpc.gen)
    a = 1.0                   # a number or one per generator, > 0 for dai/broadcast/population
    b = 0.0

    [controller]
    kind = "dai"              # droop | dai | broadcast | population | lq
    droop = 0.2               # primary droop d_i (p.u. per rad/s); the gain of kind = "droop"
    time_constant = 1.0       # dai, broadcast: k (the price moves by omega/k per second)
    revision_rate = 5.0       # population: gamma
    mass_gain = 2.0           # population: kappa (per rad)
    dynamics = "smith"        # population: "smith" or "replicator"

    [event]
    kind = "load_step"        # load_step | generator_trip | line_trip | none
    bus = 5                   # load_step: the case's bus number (mpc.bus, column 1)
    delta = 0.5               # load_step: the load increase (p.u. on baseMVA)
    generator = 1             # generator_trip: the generator (1-based row of mpc.gen)
    line = 1                  # line_trip: the line (1-based in-service row of mpc.branch)
    time = 1.0                # s

    [simulation]
    t1 = 30.0                 # horizon (s)
    n_save = 301              # save times, evenly spaced on [0, t1]
    rtol = 1e-6               # the step-size controller's tolerances
    atol = 1e-8

    [metrics]
    rocof_window = 0.5        # s
    settling_band = 0.01      # Hz

    [loads]                   # Monte Carlo over load scenarios (n_scenarios = 0: none)
    n_scenarios = 0
    std = 0.02                # independent load-step deviation at every load bus (p.u.)
    common_std = 0.02         # a common (system-wide) deviation added at every load bus
    seed = 0

The system starts at the synchronous equilibrium of the pre-event economic dispatch (every
unit, the one to be tripped included). From the trip on, the tripped generator's control
bounds are zero ([`generator_trip`][mftg_jax.frequency.generator_trip]), so that the dispatch
after the trip is over the units still connected; a post-event demand outside the units'
combined bounds is rejected (`event.delta` or `event.generator`).
"""

import os

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._toml import array, ConfigError, integer, load, number, table, unknown
from ._cases import case_path, CASES, generator_buses, load_case, read_matpower
from ._controller import AbstractController, Droop
from ._events import Event, generator_trip, line_trip, load_step
from ._lq import lq_controller
from ._network import Network
from ._population import complete_communication, PopulationDispatch
from ._secondary import DistributedAveragingIntegral, GatherBroadcast, ring_communication

CONTROLLERS = ("droop", "dai", "broadcast", "population", "lq")
"""The controller kinds of `[controller] kind` (and of `mftg frequency --controller`)."""
EVENTS = ("load_step", "generator_trip", "line_trip", "none")
_TOP = {"case", "model", "f0", "generator_damping", "load_damping", "costs", "controller",
        "event", "simulation", "metrics", "loads"}  # fmt: skip
_CONTROLLER = {"kind", "droop", "time_constant", "revision_rate", "mass_gain", "dynamics"}
_EVENT = {"kind", "bus", "delta", "generator", "line", "time"}
_SIMULATION = {"t1", "n_save", "rtol", "atol"}
_METRICS = {"rocof_window", "settling_band"}
_LOADS = {"n_scenarios", "std", "common_std", "seed"}


class FrequencyConfig(eqx.Module):
    r"""A frequency-control study read from TOML (module docstring).

    **Fields:** `network` (costs applied), `event`, `case` (its name or path),
    `controller_kind` and `gains` (a dict of the `[controller]` values), `model`, `t1`,
    `n_save`, `rtol`, `atol`, `rocof_window`, `settling_band`, `n_scenarios`, `load_std`,
    `load_common_std`, `seed`, `event_label`.
    """

    network: Network
    event: Event
    case: str = eqx.field(static=True)
    controller_kind: str = eqx.field(static=True)
    gains: tuple = eqx.field(static=True)
    model: str = eqx.field(static=True, default="nonlinear")
    t1: float = eqx.field(static=True, default=30.0)
    n_save: int = eqx.field(static=True, default=301)
    rtol: float = eqx.field(static=True, default=1e-6)
    atol: float = eqx.field(static=True, default=1e-8)
    rocof_window: float = eqx.field(static=True, default=0.5)
    settling_band: float = eqx.field(static=True, default=0.01)
    n_scenarios: int = eqx.field(static=True, default=0)
    load_std: float = eqx.field(static=True, default=0.02)
    load_common_std: float = eqx.field(static=True, default=0.02)
    seed: int = eqx.field(static=True, default=0)
    event_label: str = eqx.field(static=True, default="none")

    @property
    def ts(self):
        """The save times."""
        return jnp.linspace(0.0, self.t1, self.n_save)

    def controller(self, kind: str | None = None) -> AbstractController:
        """The controller of `kind` (default the configured one) with the configured gains."""
        return build_controller(self.network, kind or self.controller_kind, dict(self.gains))


def build_controller(network: Network, kind: str, gains: dict) -> AbstractController:
    """A controller of `kind` (`droop`, `dai`, `broadcast`, `population`, `lq`) for
    `network` with the `[controller]` `gains` (module docstring; missing ones default)."""
    droop = gains.get("droop", 0.2)
    if kind == "droop":
        return Droop(droop)
    if kind == "dai":
        return DistributedAveragingIntegral(
            ring_communication(network), gains.get("time_constant", 1.0), droop
        )
    if kind == "broadcast":
        return GatherBroadcast(gains.get("time_constant", 1.0), droop)
    if kind == "population":
        return PopulationDispatch(
            complete_communication(network),
            gains.get("revision_rate", 5.0),
            gains.get("mass_gain", 2.0),
            droop,
            dynamics=gains.get("dynamics", "smith"),
        )
    if kind == "lq":
        return lq_controller(network)[0]
    raise ConfigError(f"controller.kind must be one of {', '.join(CONTROLLERS)}, got {kind!r}")


def _per_generator(t: dict, key: str, ng: int, default: float) -> np.ndarray:
    return array(t.get(key, default), (ng,), f"costs.{key}")


def _event(d: dict, network: Network, mpc: dict, n_bus: int):
    e = table(d, "event", required=False)
    unknown("event.", e, _EVENT)
    kind = e.get("kind", "load_step" if e else "none")
    if kind not in EVENTS:
        raise ConfigError(f"event.kind must be one of {', '.join(EVENTS)}, got {kind!r}")
    time = number(e, "time", "event.", 1.0)
    if time < 0:
        raise ConfigError(f"event.time must be >= 0 (s), got {time:g}")
    if kind == "none":
        return Event.none(network), "none", None
    if kind == "load_step":
        numbers = [int(b) for b in mpc["bus"][:, 0]]
        bus = integer(e, "bus", "event.", numbers[-1], lo=1)
        if bus not in numbers:
            raise ConfigError(f"event.bus must be a bus number of the case ({numbers}), got {bus}")
        delta = number(e, "delta", "event.", 0.5)
        label = f"load step of {delta:g} p.u. at bus {bus}, t = {time:g} s"
        return load_step(network, numbers.index(bus), delta, time), label, None
    if kind == "generator_trip":
        gens = generator_buses(network)
        g = integer(e, "generator", "event.", 1, lo=1)
        if g > len(gens):
            raise ConfigError(f"event.generator must be in [1, {len(gens)}], got {g}")
        label = f"trip of generator {g}, t = {time:g} s"
        return generator_trip(network, int(gens[g - 1]), time), label, int(gens[g - 1])
    m = len(network.line_B)
    line = integer(e, "line", "event.", 1, lo=1)
    if line > m:
        raise ConfigError(f"event.line must be in [1, {m}], got {line}")
    label = f"trip of line {line}, t = {time:g} s"
    return line_trip(network, line - 1, time), label, None


def _check_feasible(network: Network, event: Event, e) -> None:
    """`ConfigError` naming the event unless the post-event dispatch is feasible."""
    after = event.after(network)
    c = np.asarray(after.controllable)
    lo = float(np.sum(np.asarray(after.u_min)[c]))
    hi = float(np.sum(np.asarray(after.u_max)[c]))
    r = -float(np.sum(np.asarray(after.P)))
    if lo - 1e-9 <= r <= hi + 1e-9:
        return
    kind = e.get("kind", "load_step") if isinstance(e, dict) else "event"
    field = {"load_step": "event.delta", "generator_trip": "event.generator"}.get(kind, "event")
    raise ConfigError(
        f"{field} makes the post-event dispatch infeasible: the units cover [{lo:g}, {hi:g}] "
        f"p.u., the post-event demand is {r:g} p.u."
    )


def config_from_dict(d: dict, base_dir: str = ".") -> FrequencyConfig:
    """Build a [`FrequencyConfig`][mftg_jax.frequency.FrequencyConfig] from parsed TOML
    (module docstring); a bad key or value raises [`mftg_jax.ConfigError`][] naming it."""
    unknown("", d, _TOP)
    case = d.get("case", "wscc9")
    if not isinstance(case, str):
        raise ConfigError(f"case must be a string, got {case!r}")
    if case not in CASES:
        case = os.path.join(base_dir, case)
        if not os.path.isfile(case):
            raise ConfigError(
                f"case must be one of {', '.join(CASES)} or a MATPOWER file, got {d['case']!r}"
            )
    model = d.get("model", "nonlinear")
    if model not in ("nonlinear", "linear"):
        raise ConfigError(f"model must be 'nonlinear' or 'linear', got {model!r}")
    f0 = number(d, "f0", "", 60.0)
    if f0 <= 0:
        raise ConfigError(f"f0 must be > 0 (Hz), got {f0:g}")
    gd = number(d, "generator_damping", "", 2.0)
    ld = number(d, "load_damping", "", 0.0)
    for key, v in (("generator_damping", gd), ("load_damping", ld)):
        if v < 0:
            raise ConfigError(f"{key} must be >= 0, got {v:g}")
    network = load_case(case, generator_damping=gd, load_damping=ld, f0=f0)
    mpc = read_matpower(case_path(case))
    gens = generator_buses(network)
    c = table(d, "costs", required=False)
    unknown("costs.", c, {"a", "b"})
    a, b = _per_generator(c, "a", len(gens), 1.0), _per_generator(c, "b", len(gens), 0.0)
    if np.any(a < 0):
        raise ConfigError(f"costs.a must be >= 0, got {a.tolist()}")
    network = eqx.tree_at(
        lambda n: (n.cost_a, n.cost_b),
        network,
        (network.cost_a.at[gens].set(a), network.cost_b.at[gens].set(b)),
    )
    # A generator trip zeroes the tripped unit's control bounds from the event on (Event.after).
    event, label, _ = _event(d, network, mpc, len(mpc["bus"]))
    _check_feasible(network, event, d.get("event", {}))
    ct = table(d, "controller", required=False)
    unknown("controller.", ct, _CONTROLLER)
    kind = ct.get("kind", "dai")
    if kind not in CONTROLLERS:
        raise ConfigError(f"controller.kind must be one of {', '.join(CONTROLLERS)}, got {kind!r}")
    gains = {}
    for key in ("droop", "time_constant", "revision_rate", "mass_gain"):
        if key in ct:
            gains[key] = number(ct, key, "controller.")
            if gains[key] < 0 or (key != "droop" and gains[key] == 0):
                bound = ">= 0" if key == "droop" else "> 0"
                raise ConfigError(f"controller.{key} must be {bound}, got {gains[key]:g}")
    if "dynamics" in ct:
        if ct["dynamics"] not in ("smith", "replicator"):
            raise ConfigError(
                f"controller.dynamics must be 'smith' or 'replicator', got {ct['dynamics']!r}"
            )
        gains["dynamics"] = ct["dynamics"]
    s = table(d, "simulation", required=False)
    unknown("simulation.", s, _SIMULATION)
    t1 = number(s, "t1", "simulation.", 30.0)
    if not event.time < t1 <= 3600:
        raise ConfigError(f"simulation.t1 must be in (event.time, 3600] s, got {t1:g}")
    n_save = integer(s, "n_save", "simulation.", 301, lo=3)
    rtol, atol = number(s, "rtol", "simulation.", 1e-6), number(s, "atol", "simulation.", 1e-8)
    for key, v in (("rtol", rtol), ("atol", atol)):
        if not 0 < v < 1:
            raise ConfigError(f"simulation.{key} must be in (0, 1), got {v:g}")
    m = table(d, "metrics", required=False)
    unknown("metrics.", m, _METRICS)
    window = number(m, "rocof_window", "metrics.", 0.5)
    band = number(m, "settling_band", "metrics.", 0.01)
    if not 0 < window < t1 or band <= 0:
        raise ConfigError("metrics.rocof_window must be in (0, t1) and metrics.settling_band > 0")
    ld_t = table(d, "loads", required=False)
    unknown("loads.", ld_t, _LOADS)
    n_sc = integer(ld_t, "n_scenarios", "loads.", 0)
    std, cstd = number(ld_t, "std", "loads.", 0.02), number(ld_t, "common_std", "loads.", 0.02)
    if std < 0 or cstd < 0:
        raise ConfigError("loads.std and loads.common_std must be >= 0")
    seed = integer(ld_t, "seed", "loads.", 0)
    return FrequencyConfig(
        network, event, str(d.get("case", "wscc9")), kind, tuple(sorted(gains.items())),
        model, t1, n_save, rtol, atol, window, band, n_sc, std, cstd, seed, label,
    )  # fmt: skip


def load_config(path) -> FrequencyConfig:
    """Read a [`FrequencyConfig`][mftg_jax.frequency.FrequencyConfig] from a TOML file
    (module docstring); a bad file raises [`mftg_jax.ConfigError`][] naming the key."""
    base = os.path.dirname(os.path.abspath(path))
    return load(path, lambda d: config_from_dict(d, base))


def case_config(case: str) -> FrequencyConfig:
    """The default study of a shipped case (a load step at its last bus, DAI control)."""
    if case not in CASES:
        raise ConfigError(f"case must be one of {', '.join(CASES)} or a TOML file, got {case!r}")
    return config_from_dict({"case": case, "event": {"kind": "load_step"}})
