r"""Disturbances: a change of the network's injections and line susceptances at a time.

An event at time $t_e$ replaces $P$ by $P + \Delta P$, $B_\ell$ by $s_\ell B_\ell$
($s_\ell \in \{0, 1\}$ opens a line) and the control bounds $\underline u_i, \bar u_i$ by
$c_i\underline u_i, c_i\bar u_i$ ($c_i = 0$ takes a tripped unit out of control). The
simulation switches the parameters by $t$ inside the vector field and puts $t_e$ in the
step-size controller's `jump_ts`, so that a step ends on the event and the solver restarts
there (diffrax's treatment of a discontinuity). A load step, a generator trip and a line trip
are events of this form.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np

from .._validation import check_field
from ._network import GENERATOR, islands, Network


def _float(x) -> Array:
    return jnp.asarray(x, dtype=float)


class Event(eqx.Module):
    r"""At time `time`: $P \to P + \Delta P$, $B_\ell \to s_\ell B_\ell$ and the control
    bounds $(\underline u_i, \bar u_i) \to c_i(\underline u_i, \bar u_i)$.

    **Arguments:**

    - `time`: $t_e \ge 0$ (s).
    - `delta_P`: $\Delta P$ (p.u.), shape `(n,)`.
    - `line_scale`: $s_\ell$ in $[0, 1]$, shape `(m,)` (0 opens line $\ell$).
    - `bound_scale`: $c_i$ in $[0, 1]$, shape `(n,)` (default ones; 0 removes bus $i$'s
      control from the event time on, e.g. a tripped generator).

    Build one with [`load_step`][mftg_jax.frequency.load_step],
    [`generator_trip`][mftg_jax.frequency.generator_trip] or
    [`line_trip`][mftg_jax.frequency.line_trip]; `Event.none(network)` is no event.
    """

    time: Float[Array, ""] = eqx.field(converter=_float)
    delta_P: Float[Array, " n"] = eqx.field(converter=_float)
    line_scale: Float[Array, " m"] = eqx.field(converter=_float)
    bound_scale: Float[Array, " n"] = eqx.field(default=None, converter=lambda x: x)

    def __post_init__(self):
        c = jnp.ones_like(self.delta_P) if self.bound_scale is None else _float(self.bound_scale)
        object.__setattr__(self, "bound_scale", c)

    def __check_init__(self):
        if self.delta_P.ndim != 1 or self.line_scale.ndim != 1:
            raise ValueError(
                f"Event.delta_P and Event.line_scale must be vectors, got shapes "
                f"{self.delta_P.shape} and {self.line_scale.shape}"
            )
        check_field("Event.time", self.time, ">= 0 (s)", lambda v: v >= 0)
        check_field("Event.delta_P", self.delta_P, "finite (p.u.)")
        check_field("Event.line_scale", self.line_scale, "in [0, 1]", lambda v: (v >= 0) & (v <= 1))
        if self.bound_scale.shape[-1:] != self.delta_P.shape[-1:]:
            raise ValueError(
                f"Event.bound_scale must have the shape of Event.delta_P "
                f"{self.delta_P.shape}, got {self.bound_scale.shape}"
            )
        check_field(
            "Event.bound_scale", self.bound_scale, "in [0, 1]", lambda v: (v >= 0) & (v <= 1)
        )

    @classmethod
    def none(cls, network: Network) -> "Event":
        """No event (the parameters never change)."""
        return cls(0.0, jnp.zeros(network.n), jnp.ones(len(network.line_B)))

    def after(self, network: Network) -> Network:
        """The network after the event (not re-validated: a trip may isolate a bus); a tripped
        unit's control bounds are zero."""
        c = self.bound_scale
        return eqx.tree_at(
            lambda n: (n.P, n.line_B, n.u_min, n.u_max),
            network,
            (network.P + self.delta_P, network.line_B * self.line_scale, network.u_min * c,
             network.u_max * c),
        )  # fmt: skip

    def at(self, t, network: Network) -> Network:
        """The network in force at time `t` (the event's after `time`)."""
        on = jnp.asarray(t) >= self.time
        s = jnp.where(on, self.line_scale, 1.0)
        c = jnp.where(on, self.bound_scale, 1.0)
        return eqx.tree_at(
            lambda n: (n.P, n.line_B, n.u_min, n.u_max),
            network,
            (network.P + jnp.where(on, self.delta_P, 0.0), network.line_B * s,
             network.u_min * c, network.u_max * c),
        )  # fmt: skip


def load_step(network: Network, bus: int, delta, time=0.0) -> Event:
    r"""A step of the load at `bus` by `delta` p.u. (a load increase lowers $P_{bus}$)."""
    _check_bus(network, bus)
    dP = jnp.zeros(network.n).at[bus].set(-_float(delta))
    return Event(time, dP, jnp.ones(len(network.line_B)))


def generator_trip(network: Network, bus: int, time=0.0) -> Event:
    """The trip of the generator at (internal) bus `bus`: its injection is lost, its lines
    open and its control bounds become zero (the rotor turns on alone, uncontrolled, and
    takes no further part)."""
    _check_bus(network, bus)
    if network.kind[bus] != GENERATOR:
        raise ValueError(f"generator_trip: bus {bus} is not a generator bus")
    dP = jnp.zeros(network.n).at[bus].set(-network.P[bus])
    touches = (np.asarray(network.line_from) == bus) | (np.asarray(network.line_to) == bus)
    bounds = jnp.ones(network.n).at[bus].set(0.0)
    return Event(time, dP, jnp.asarray(np.where(touches, 0.0, 1.0)), bounds)


def line_trip(network: Network, line: int, time=0.0) -> Event:
    """The trip of line `line` (it opens at `time`); it must not island the network."""
    m = len(network.line_B)
    if not 0 <= line < m:
        raise ValueError(f"line_trip: line must be in [0, {m - 1}], got {line}")
    if islands(network, [line]):
        raise ValueError(f"line_trip: opening line {line} islands the network")
    scale = np.ones(m)
    scale[line] = 0.0
    return Event(time, jnp.zeros(network.n), jnp.asarray(scale))


def _check_bus(network: Network, bus: int):
    if not 0 <= bus < network.n:
        raise ValueError(f"bus must be in [0, {network.n - 1}], got {bus}")
