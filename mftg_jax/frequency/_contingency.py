r"""N-1 contingencies under `jax.vmap` and a smooth frequency nadir for gradients.

Every line trip of a network is an [`Event`][mftg_jax.frequency.Event] of one shape, so the
trips stack into one batched event and one vmapped [`simulate`][mftg_jax.frequency.simulate]
runs them all in one compiled call. Trips that island the network (a bus left without a path
to the rest, e.g. a generator's step-up transformer) have no synchronous solution of the
same network and are skipped (listed in `skipped`).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np

from ._dynamics import coi_frequency, simulate, Trajectory
from ._events import Event, line_trip
from ._network import islands, Network


class Contingencies(eqx.Module):
    """The stacked line-trip events of a network.

    **Fields:** `events` (an [`Event`][mftg_jax.frequency.Event] with a leading batch axis),
    `lines` (the tripped line of each member), `skipped` (the lines whose trip islands the
    network).
    """

    events: Event
    lines: tuple[int, ...] = eqx.field(static=True)
    skipped: tuple[int, ...] = eqx.field(static=True)


def line_contingencies(network: Network, time=0.0) -> Contingencies:
    """All N-1 line trips of `network` at `time` that keep it connected."""
    lines, skipped = [], []
    for ell in range(len(network.line_B)):
        (skipped if islands(network, [ell]) else lines).append(ell)
    events = [line_trip(network, ell, time) for ell in lines]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *events)
    return Contingencies(stacked, tuple(lines), tuple(skipped))


def simulate_contingencies(
    network: Network, controller, contingencies: Contingencies, **kwargs
) -> Trajectory:
    """[`simulate`][mftg_jax.frequency.simulate] vmapped over the contingencies' events (one
    compiled call, by default with the unrolled Newton that batches well); `kwargs` as for
    `simulate`. Returns a batched trajectory."""
    kwargs.setdefault("newton", "unrolled")
    return jax.vmap(lambda ev: simulate(network, controller, ev, **kwargs))(contingencies.events)


def coi_nadir(traj: Trajectory, network: Network, temperature=None) -> Float[Array, ""]:
    r"""The nadir of the centre-of-inertia frequency deviation (Hz), $\min_k f_{coi}(t_k)$.

    With a `temperature` $\tau > 0$ (Hz) the smooth nadir
    $-\tau\log\sum_k e^{-f_{coi}(t_k)/\tau} + \tau\log K$ (a soft minimum over the $K$ save
    times; it tends to the minimum as $\tau \to 0$ and is differentiable everywhere).
    """
    f = coi_frequency(traj, network) / (2 * np.pi)
    if temperature is None:
        return jnp.min(f, axis=-1)
    K = f.shape[-1]
    return -temperature * (jax.nn.logsumexp(-f / temperature, axis=-1) - jnp.log(K))
