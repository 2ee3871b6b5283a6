r"""Distributed population dynamics as a distributed economic dispatch coupled to the frequency
(Barreiro-Gomez, Dörfler, Tembine, "Distributed and robust population games with applications
to optimal frequency control in power systems", ACC 2018; the distributed dynamics of
Barreiro-Gomez, Obando, Quijano, *IEEE TCST* 2017).

**What is implemented.** The strategies of one population are the controllable units; the
*share* of unit $i$ is $x_i \ge 0$, its output above its lower bound, so that the unit injects
$$u_i = \operatorname{clip}(\underline u_i + x_i - d_i\omega_i,\ \underline u_i, \bar u_i).$$
The fitness of strategy $i$ is minus its marginal cost at the share,
$f_i(x) = -J_i'(\underline u_i + x_i) = -(a_i(\underline u_i + x_i) + b_i)$ (the cost
extended quadratically past $\bar u_i$, see below). Shares move by the *distributed* Smith
dynamics over a communication graph $A$ (revisions only between neighbours), and the mass
of the population, the power to be supplied, is found from the frequency:
$$\dot x_i = \gamma\sum_j A_{ij}\big(x_j[f_i - f_j]_+ - x_i[f_j - f_i]_+\big)
 - \kappa\,x_i\,\omega_i$$
(`dynamics="smith"`), or the distributed replicator dynamics
$\dot x_i = \gamma\, x_i\sum_j A_{ij}x_j(f_i - f_j) - \kappa x_i\omega_i$ (`"replicator"`).
The revision terms are zero-sum (they conserve $\sum_i x_i$); the mass term scales every
share by the local frequency, and keeps $x \ge 0$.

**Steady-state property.** At an equilibrium the frequencies are synchronous and
$\sum_i \dot x_i = -\kappa\omega^*\sum_i x_i = 0$, so $\omega^* = 0$ (for a population of
positive mass); the swing equations then give $\sum_i (P_i + u_i) = 0$. At a rest point of
the distributed Smith dynamics every edge $(i, j)$ of $A$ with $x_i + x_j > 0$ joins units of
equal fitness. On a **complete** graph (the default of
[`complete_communication`][mftg_jax.frequency.complete_communication]) this makes the rest
point a Nash equilibrium of the population game: every unit with $x_i > 0$ has the same
fitness $-\lambda$ and the others have $f_i \le -\lambda$. So the supported units have
$\underline u_i + x_i = (\lambda - b_i)/a_i$ and deliver
$\operatorname{clip}((\lambda - b_i)/a_i, \underline u_i, \bar u_i)$, the unsupported ones
$\underline u_i$ with $J_i'(\underline u_i) \ge \lambda$: exactly the KKT point of the economic
dispatch, upper bounds included (a unit whose share exceeds $\bar u_i - \underline u_i$
delivers $\bar u_i$ with $J_i'(\bar u_i) \le \lambda$). On a connected but not complete graph
the same holds for an *interior* rest point ($x_i > 0$ at every unit); a unit with $x_i = 0$
can separate its neighbours (on the path 1-2-3 with $x_2 = 0$ and $f_2 < f_1, f_3$ no share
crosses unit 2 and $f_1 \ne f_3$ persists), so a rest point on a sparse graph need not be the
dispatch. The replicator dynamics have the same interior rest points but also spurious ones
with extinct strategies ($x_i = 0$ at a unit that should produce), so the Smith dynamics are
the default.
"""

from typing import Literal

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree
import numpy as np

from .._validation import check_field, is_concrete
from ._controller import AbstractController
from ._economic import DispatchProblem, economic_dispatch
from ._network import Network
from ._secondary import _connected_over, check_strictly_convex


def _asarray(x) -> Array:
    return jnp.asarray(x, dtype=float)


def complete_communication(network: Network) -> np.ndarray:
    r"""The complete communication graph over the controllable buses: $A_{ij} = 1$ for
    controllable $i \ne j$, 0 otherwise (`(n, n)`); the graph on which every rest point of
    the distributed Smith dynamics is the economic dispatch (module docstring)."""
    c = np.asarray(network.controllable)
    A = (c[:, None] & c[None, :]).astype(float)
    np.fill_diagonal(A, 0.0)
    return A


class PopulationDispatch(AbstractController):
    r"""Distributed population dynamics for optimal frequency control (module docstring).

    **Arguments:**

    - `communication`: the adjacency matrix $A$ (`(n, n)`, symmetric, $\ge 0$; connecting
      the controllable buses), e.g.
      [`complete_communication`][mftg_jax.frequency.complete_communication]`(network)` (on
      which every rest point is the dispatch; on a sparser graph only interior ones are).
    - `revision_rate`: $\gamma > 0$ (per second per price unit per p.u.).
    - `mass_gain`: $\kappa > 0$ (per rad): the relative share change per radian of
      accumulated frequency deviation.
    - `droop`: $d_i \ge 0$ (p.u. per rad/s), a primary droop on top of the shares.
    - `dynamics`: `"smith"` (default) or `"replicator"`.
    - `floor`: the initial share is at least `floor` $(\bar u_i - \underline u_i)$ (default
      $10^{-2}$), so that every strategy starts with positive mass.

    **State:** the shares $x_i$, starting at the economic dispatch of the network.
    """

    communication: Float[Array, "n n"] = eqx.field(converter=_asarray)
    revision_rate: Float[Array, ""] = eqx.field(converter=_asarray, default=1.0)
    mass_gain: Float[Array, ""] = eqx.field(converter=_asarray, default=1.0)
    droop: Float[Array, "..."] = eqx.field(converter=_asarray, default=0.0)
    dynamics: Literal["smith", "replicator"] = eqx.field(static=True, default="smith")
    floor: float = eqx.field(static=True, default=1e-2)

    def __check_init__(self):
        A = self.communication
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(
                f"PopulationDispatch.communication must be a square matrix, got {A.shape}"
            )
        check_field("PopulationDispatch.communication", A, ">= 0", lambda v: v >= 0)
        if is_concrete(A) and not np.allclose(np.asarray(A), np.asarray(A).T, rtol=0, atol=1e-14):
            raise ValueError("PopulationDispatch.communication must be symmetric")
        check_field("PopulationDispatch.revision_rate", self.revision_rate, "> 0", lambda v: v > 0)
        check_field("PopulationDispatch.mass_gain", self.mass_gain, "> 0", lambda v: v > 0)
        if self.droop.ndim > 1 or (self.droop.ndim == 1 and self.droop.shape[0] != A.shape[0]):
            raise ValueError(
                f"PopulationDispatch.droop must be a scalar or one per bus ({A.shape[0]}), got "
                f"shape {self.droop.shape}"
            )
        check_field("PopulationDispatch.droop", self.droop, ">= 0", lambda v: v >= 0)
        if self.dynamics not in ("smith", "replicator"):
            raise ValueError(
                f"PopulationDispatch.dynamics must be 'smith' or 'replicator', got "
                f"{self.dynamics!r}"
            )
        if not 0 <= self.floor < 1:
            raise ValueError(f"PopulationDispatch.floor must be in [0, 1), got {self.floor}")

    def fitness(self, x, network: Network) -> Float[Array, " n"]:
        r"""$f_i(x) = -J_i'(\underline u_i + x_i)$."""
        return -(network.cost_a * (network.u_min + x) + network.cost_b)

    def init(self, network: Network) -> PyTree:
        check_strictly_convex(network, "PopulationDispatch")
        if self.communication.shape != (network.n, network.n):
            raise ValueError(
                f"PopulationDispatch.communication must be (n, n) = ({network.n}, {network.n})"
            )
        if is_concrete(self.communication, network.u_min, network.u_max):
            nodes = np.flatnonzero(np.asarray(network.controllable))
            if not _connected_over(np.asarray(self.communication), nodes):
                raise ValueError(
                    "PopulationDispatch.communication must connect every controllable bus"
                )
        u = economic_dispatch(DispatchProblem.from_network(network)).dispatch
        w = network.u_max - network.u_min
        x = jnp.maximum(u - network.u_min, self.floor * w)
        return jnp.where(network.controllable, x, 0.0)

    def control(self, t, theta, omega, z, network: Network) -> Float[Array, " n"]:
        d = jnp.broadcast_to(self.droop, (network.n,))
        u = jnp.clip(network.u_min + z - d * omega, network.u_min, network.u_max)
        return jnp.where(network.controllable, u, 0.0)

    def rate(self, t, theta, omega, z, network: Network) -> PyTree:
        A = jnp.where(
            network.controllable[:, None] & network.controllable[None, :], self.communication, 0.0
        )
        f = self.fitness(z, network)
        df = f[:, None] - f[None, :]  # df[i, j] = f_i - f_j
        if self.dynamics == "smith":
            inflow = jnp.sum(A * z[None, :] * jnp.maximum(df, 0.0), axis=1)
            outflow = z * jnp.sum(A * jnp.maximum(-df, 0.0), axis=1)
            revision = inflow - outflow
        else:
            revision = z * jnp.sum(A * z[None, :] * df, axis=1)
        dz = self.revision_rate * revision - self.mass_gain * z * omega
        return jnp.where(network.controllable, dz, 0.0)
