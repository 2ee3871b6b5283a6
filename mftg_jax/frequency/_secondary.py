r"""Secondary frequency control that reaches the economic dispatch: distributed averaging
integral (DAI) control and centralised gather-and-broadcast control.

Both act through the units' best response to a price. Unit $i$ with price $\lambda$ injects
$$u_i = \operatorname{clip}\big(\rho_i(\lambda) - d_i\omega_i,\ \underline u_i, \bar u_i\big),
\qquad \rho_i(\lambda) = \arg\min_{\underline u_i \le u \le \bar u_i} J_i(u) - \lambda u
= \operatorname{clip}\big((\lambda - b_i)/a_i, \underline u_i, \bar u_i\big),$$
a primary droop $d_i \ge 0$ on top of the secondary set point $\rho_i(\lambda)$ (bounds by
saturation of the total). At an equilibrium $\omega = 0$, so the droop term vanishes and
$u_i = \rho_i(\lambda)$ satisfies the KKT conditions of the dispatch exactly whenever the price
is common and the balance $\sum_i (P_i + u_i) = 0$ holds.

- **DAI** (Simpson-Porco, Dörfler, Bullo, *IEEE TAC* 2013/2015; Dörfler, Simpson-Porco,
  Bullo, *IEEE TCNS* 2016, "Breaking the hierarchy"), written on the marginal costs: each
  controllable bus keeps its own price $\lambda_i$,
  $$k_i\dot\lambda_i = -\omega_i - \textstyle\sum_j A_{ij}(\lambda_i - \lambda_j),$$
  over a communication graph $A$ (symmetric, connected over the controllable buses). At an
  equilibrium the sum over $i$ gives $\sum_i \omega_i = 0$; the frequencies are synchronous,
  so $\omega^* = 0$, then $L_A\lambda = 0$ gives a common $\lambda$, and the balance of the
  swing equations at $\omega = 0$ gives $\sum_i (P_i + u_i) = 0$: the economic dispatch.
- **Gather-and-broadcast** (Dörfler, Grammatico, *Automatica* 2017): one price for all,
  integrating the weighted average frequency, $k\dot\lambda = -\sum_i w_i\omega_i/\sum_i w_i$;
  at an equilibrium $\omega^* = 0$, the price is common by construction.

Both need strictly convex costs ($a_i > 0$) at the controllable buses, so that $\rho_i$ is
continuous (checked when the network is concrete).
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree
import numpy as np

from .._validation import check_field, is_concrete
from ._controller import AbstractController
from ._economic import DispatchProblem, economic_dispatch
from ._network import GENERATOR, Network, RESPONSIVE


def _asarray(x) -> Array:
    return jnp.asarray(x, dtype=float)


def best_response(network: Network, lam) -> Float[Array, " n"]:
    r"""$\rho_i(\lambda_i) = \operatorname{clip}((\lambda_i - b_i)/a_i, \underline u_i,
    \bar u_i)$: the injection that minimises $J_i(u) - \lambda_i u$ on the bounds (zero at
    non-controllable buses; `lam` a scalar or one per bus)."""
    lam = jnp.broadcast_to(jnp.asarray(lam), (network.n,))
    a = jnp.where(network.cost_a > 0, network.cost_a, 1.0)
    return jnp.clip((lam - network.cost_b) / a, network.u_min, network.u_max)


def check_strictly_convex(network: Network, who: str) -> None:
    """`ValueError` unless $a_i > 0$ at every controllable bus (concrete networks)."""
    if not is_concrete(network.cost_a, network.u_min, network.u_max):
        return
    ctrl = np.asarray(network.controllable)
    if not ctrl.any():
        raise ValueError(f"{who} needs a controllable bus (Network.u_min < Network.u_max)")
    if np.any(np.asarray(network.cost_a)[ctrl] <= 0):
        raise ValueError(f"{who} needs Network.cost_a > 0 at every controllable bus")


def dispatch_price(network: Network) -> Array:
    r"""The price $\lambda^*$ of the economic dispatch of `network` (the controllers' initial
    price: they start at the optimal dispatch of the pre-event network)."""
    return economic_dispatch(DispatchProblem.from_network(network)).price


def ring_communication(network: Network) -> np.ndarray:
    r"""A ring communication graph over the controllable buses in index order (a single edge
    for two, none for one): the adjacency matrix $A$ (`(n, n)`, unit weights)."""
    idx = np.flatnonzero(np.asarray(network.controllable))
    A = np.zeros((network.n, network.n))
    k = len(idx)
    if k >= 2:
        for j in range(k if k > 2 else 1):
            a, b = idx[j], idx[(j + 1) % k]
            A[a, b] = A[b, a] = 1.0
    return A


def _connected_over(A: np.ndarray, nodes: np.ndarray) -> bool:
    if len(nodes) <= 1:
        return True
    seen, stack = {int(nodes[0])}, [int(nodes[0])]
    while stack:
        i = stack.pop()
        for j in np.flatnonzero(A[i] > 0):
            if int(j) not in seen:
                seen.add(int(j))
                stack.append(int(j))
    return set(int(v) for v in nodes) <= seen


class DistributedAveragingIntegral(AbstractController):
    r"""Distributed averaging integral control on the marginal costs (module docstring):
    $k_i\dot\lambda_i = -\omega_i - \sum_j A_{ij}(\lambda_i - \lambda_j)$,
    $u_i = \operatorname{clip}(\rho_i(\lambda_i) - d_i\omega_i, \underline u_i, \bar u_i)$.

    **Arguments:**

    - `communication`: the adjacency matrix $A$ (`(n, n)`, symmetric, $\ge 0$, zero diagonal;
      its graph restricted to the controllable buses must connect them), e.g.
      [`ring_communication`][mftg_jax.frequency.ring_communication]`(network)`.
    - `time_constant`: $k_i > 0$ (the integral gain is $1/k_i$: the price moves by
      $\omega_i/k_i$ per second), a scalar or one per bus.
    - `droop`: $d_i \ge 0$ (p.u. per rad/s), a scalar or one per bus.

    Only the edges between controllable buses act: $A$ is masked to
    $A_{ij}\,c_i c_j$ with $c_i = 1$ at the controllable buses of the current network (after a
    generator trip, the tripped unit leaves the graph), so no price is pinned to the frozen
    price of a non-controllable bus.

    **State:** $\lambda$ per bus (constant at non-controllable buses), starting at the
    economic-dispatch price of the network.
    """

    communication: Float[Array, "n n"] = eqx.field(converter=_asarray)
    time_constant: Float[Array, "..."] = eqx.field(converter=_asarray, default=1.0)
    droop: Float[Array, "..."] = eqx.field(converter=_asarray, default=0.0)

    def __check_init__(self):
        A = self.communication
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"DAI.communication must be a square matrix, got shape {A.shape}")
        check_field("DAI.communication", A, ">= 0", lambda v: v >= 0)
        if is_concrete(A):
            a = np.asarray(A)
            if not np.allclose(a, a.T, rtol=0, atol=1e-14) or np.any(np.diag(a) != 0):
                raise ValueError("DAI.communication must be symmetric with a zero diagonal")
        for name in ("time_constant", "droop"):
            v = getattr(self, name)
            if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != A.shape[0]):
                raise ValueError(
                    f"DAI.{name} must be a scalar or one per bus ({A.shape[0]}), got shape "
                    f"{v.shape}"
                )
        check_field("DAI.time_constant", self.time_constant, "> 0", lambda v: v > 0)
        check_field("DAI.droop", self.droop, ">= 0 (p.u. per rad/s)", lambda v: v >= 0)

    def _check(self, network: Network) -> None:
        check_strictly_convex(network, "DAI")
        if self.communication.shape != (network.n, network.n):
            raise ValueError(
                f"DAI.communication must be (n, n) = ({network.n}, {network.n}), got "
                f"{self.communication.shape}"
            )
        if is_concrete(self.communication, network.u_min, network.u_max):
            c = np.asarray(network.controllable)
            A = np.asarray(self.communication) * (c[:, None] & c[None, :])
            if not _connected_over(A, np.flatnonzero(c)):
                raise ValueError(
                    "DAI.communication must connect every controllable bus through edges "
                    "between controllable buses"
                )

    def laplacian(self, network: Network | None = None) -> Float[Array, "n n"]:
        r"""$L_A = \operatorname{diag}(A\mathbf 1) - A$, with $A$ masked to the edges between
        the controllable buses of `network` when given."""
        A = self.communication
        if network is not None:
            c = network.controllable
            A = jnp.where(c[:, None] & c[None, :], A, 0.0)
        return jnp.diag(jnp.sum(A, axis=1)) - A

    def init(self, network: Network) -> PyTree:
        self._check(network)
        return jnp.broadcast_to(dispatch_price(network), (network.n,))

    def control(self, t, theta, omega, z, network: Network) -> Float[Array, " n"]:
        d = jnp.broadcast_to(self.droop, (network.n,))
        u = jnp.clip(best_response(network, z) - d * omega, network.u_min, network.u_max)
        return jnp.where(network.controllable, u, 0.0)

    def rate(self, t, theta, omega, z, network: Network) -> PyTree:
        k = jnp.broadcast_to(self.time_constant, (network.n,))
        dz = (-omega - self.laplacian(network) @ z) / k
        return jnp.where(network.controllable, dz, 0.0)


class GatherBroadcast(AbstractController):
    r"""Centralised gather-and-broadcast integral control (module docstring): one price,
    $k\dot\lambda = -\bar\omega$, $\bar\omega = \sum_i w_i\omega_i / \sum_i w_i$, broadcast to
    every unit, $u_i = \operatorname{clip}(\rho_i(\lambda) - d_i\omega_i, \underline u_i,
    \bar u_i)$.

    **Arguments:**

    - `time_constant`: $k > 0$ (the integral gain is $1/k$).
    - `droop`: $d_i \ge 0$ (p.u. per rad/s), a scalar or one per bus.
    - `weights`: $w_i \ge 0$ of the gathered frequency, one per bus and not all zero, or
      `None` for $w_i = M_i$ at the generator buses and $w_i = D_i$ at the
      frequency-responsive buses (0 at passive buses): the centre-of-inertia frequency,
      extended by the damping of the inertia-free buses.

    **State:** the scalar price $\lambda$, starting at the economic-dispatch price.
    """

    time_constant: Float[Array, ""] = eqx.field(converter=_asarray, default=1.0)
    droop: Float[Array, "..."] = eqx.field(converter=_asarray, default=0.0)
    weights: Float[Array, " n"] | None = eqx.field(
        default=None, converter=lambda x: None if x is None else _asarray(x)
    )

    def __check_init__(self):
        check_field("GatherBroadcast.time_constant", self.time_constant, "> 0", lambda v: v > 0)
        if self.droop.ndim > 1:
            raise ValueError("GatherBroadcast.droop must be a scalar or one per bus")
        check_field("GatherBroadcast.droop", self.droop, ">= 0 (p.u. per rad/s)", lambda v: v >= 0)
        if self.weights is not None:
            if self.weights.ndim != 1:
                raise ValueError(
                    f"GatherBroadcast.weights must be one per bus, got shape {self.weights.shape}"
                )
            check_field("GatherBroadcast.weights", self.weights, ">= 0", lambda v: v >= 0)
            if is_concrete(self.weights) and not np.sum(np.asarray(self.weights)) > 0:
                raise ValueError("GatherBroadcast.weights must not be all zero")

    def gather_weights(self, network: Network) -> Float[Array, " n"]:
        """The weights $w_i$ normalised to sum to one."""
        if self.weights is None:
            kind = jnp.asarray(network.kind)
            w = jnp.where(
                kind == GENERATOR, network.M, jnp.where(kind == RESPONSIVE, network.D, 0.0)
            )
        else:
            w = jnp.asarray(self.weights, float)
        return w / jnp.sum(w)

    def init(self, network: Network) -> PyTree:
        check_strictly_convex(network, "GatherBroadcast")
        if self.weights is not None and self.weights.shape != (network.n,):
            raise ValueError(
                f"GatherBroadcast.weights must be one per bus ({network.n}), got shape "
                f"{self.weights.shape}"
            )
        if self.weights is None and is_concrete(network.M, network.D):
            kind = np.asarray(network.kind)
            w = np.where(kind == GENERATOR, np.asarray(network.M), 0.0)
            w = w + np.where(kind == RESPONSIVE, np.asarray(network.D), 0.0)
            if not np.sum(w) > 0:
                raise ValueError(
                    "GatherBroadcast needs a generator with Network.M > 0 or a responsive bus "
                    "with Network.D > 0 (or explicit weights)"
                )
        return dispatch_price(network)

    def control(self, t, theta, omega, z, network: Network) -> Float[Array, " n"]:
        d = jnp.broadcast_to(self.droop, (network.n,))
        u = jnp.clip(best_response(network, z) - d * omega, network.u_min, network.u_max)
        return jnp.where(network.controllable, u, 0.0)

    def rate(self, t, theta, omega, z, network: Network) -> PyTree:
        return -jnp.sum(self.gather_weights(network) * omega) / self.time_constant
