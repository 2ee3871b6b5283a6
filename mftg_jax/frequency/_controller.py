r"""The controller interface of the swing dynamics and primary (droop) control.

A controller has a state $z$ (a PyTree, `()` when it has none) that integrates with the
network's state in one diffrax solve: the swing vector field adds the control injection
$u = \kappa(t, \theta, \omega, z)$ to the nominal injection $P$ and the controller's rate
$\dot z = \rho(t, \theta, \omega, z)$ to the state's derivative.
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._validation import check_field
from ._network import Network


class AbstractController(eqx.Module):
    r"""A feedback law $u = \kappa(t, \theta, \omega, z)$ with its own dynamics $\dot z = \rho$.

    `theta` and `omega` are per-bus arrays of shape `(n,)`: the angles (rad) at every bus
    (the passive buses' solved from their power balance) and the frequency deviations
    $\omega_i = \dot\theta_i$ (rad/s) at the dynamic buses, zero at passive buses.
    """

    @abc.abstractmethod
    def init(self, network: Network) -> PyTree:
        """The controller's initial state $z_0$ (`()` for a static feedback)."""

    @abc.abstractmethod
    def control(self, t, theta, omega, z, network: Network) -> Float[Array, " n"]:
        """The control injection $u_i$ (p.u.) per bus, zero at non-controllable buses."""

    @abc.abstractmethod
    def rate(self, t, theta, omega, z, network: Network) -> PyTree:
        r"""The controller's rate $\dot z$ (same structure as $z$)."""


class NoControl(AbstractController):
    """No control: $u = 0$ (the open-loop swing dynamics)."""

    def init(self, network: Network) -> PyTree:
        return ()

    def control(self, t, theta, omega, z, network: Network) -> Float[Array, " n"]:
        return jnp.zeros_like(network.P)

    def rate(self, t, theta, omega, z, network: Network) -> PyTree:
        return ()


class Droop(AbstractController):
    r"""Primary (proportional) frequency control, $u_i = \mathrm{clip}(-k_i\omega_i,
    \underline u_i, \bar u_i)$.

    With no bound active and a step $\Delta P$ of the total injection, the closed loop settles
    at the common frequency deviation $\omega^\star = \Delta P / \sum_i (k_i + D_i)$ (sum over
    the dynamic buses; rad/s), the classical droop offset (Kundur, *Power System Stability and
    Control*, section 11.1; Barreiro-Gomez, Dorfler, Tembine, ACC 2018, section II).

    **Arguments:**

    - `gain`: $k_i \ge 0$ (p.u. power per rad/s), a scalar or one per bus; only the
      controllable buses of the network (`u_min < u_max`) act.
    """

    gain: Float[Array, "..."] = eqx.field(converter=lambda x: jnp.asarray(x, dtype=float))

    def __check_init__(self):
        if self.gain.ndim > 1:
            raise ValueError(f"Droop.gain must be a scalar or one per bus, got {self.gain.shape}")
        check_field("Droop.gain", self.gain, ">= 0 (p.u. per rad/s)", lambda v: v >= 0)

    def gains(self, network: Network) -> Float[Array, " n"]:
        """The effective gain per bus: `gain` at controllable buses, 0 elsewhere."""
        if self.gain.ndim == 1 and self.gain.shape != (network.n,):
            raise ValueError(
                f"Droop.gain must be a scalar or one per bus (n={network.n}), got {self.gain.shape}"
            )
        k = jnp.broadcast_to(self.gain, (network.n,))
        return jnp.where(network.controllable, k, 0.0)

    def init(self, network: Network) -> PyTree:
        return ()

    def control(self, t, theta, omega, z, network: Network) -> Float[Array, " n"]:
        return jnp.clip(-self.gains(network) * omega, network.u_min, network.u_max)

    def rate(self, t, theta, omega, z, network: Network) -> PyTree:
        return ()
