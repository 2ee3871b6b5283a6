r"""The swing dynamics of a network under a controller and an event, one jitted diffrax solve.

The state is $(\theta_d, \omega_g, z)$: the angles of the dynamic buses (rad), the frequency
deviations of the generator buses (rad/s) and the controller's state. With the parameters
$P(t), B(t)$ of the event in force and the passive angles $\theta_p$ from their algebraic
equations (Newton or Kron, [`solve_passive`][mftg_jax.frequency.solve_passive],
[`kron_reduce`][mftg_jax.frequency.kron_reduce]),

$$\dot\theta_g = \omega_g,\quad M_g\dot\omega_g = P_g + u_g - P^e_g(\theta) - D_g\omega_g,\quad
D_r\dot\theta_r = P_r + u_r - P^e_r(\theta),\quad \dot z = \rho(t, \theta, \omega, z),$$

$u = \kappa(t, \theta, \omega, z)$ the controller's injection (zero at passive buses). At a
frequency-responsive bus $\omega_r$ solves $D_r\omega_r = P_r - P^e_r + u_r(\omega_r)$: for
[`Droop`][mftg_jax.frequency.Droop] exactly, $\omega_r = (P_r - P^e_r)/(D_r + k_r)$ while
the bound is inactive and $(P_r - P^e_r + u_r)/D_r$ at a saturated bound; any other
controller must not act on responsive buses through $\omega$ (a droop term of a secondary
controller at a controllable responsive bus is rejected by `simulate`).
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree
import numpy as np

from .._validation import is_concrete
from ._algebraic import (
    bus_groups,
    equilibrium,
    kron_reduce,
    solve_passive,
    solve_passive_unrolled,
)
from ._controller import AbstractController, Droop, NoControl
from ._events import Event
from ._network import Network, RESPONSIVE

MODELS = ("nonlinear", "linear")
NEWTONS = ("optimistix", "unrolled")


class Trajectory(eqx.Module):
    r"""A simulated trajectory at the save times.

    **Fields:** `ts` `(T,)` (s); `theta` `(T, n)` angles at every bus (rad); `omega`
    `(T, n)` frequency deviations (rad/s; zero at passive buses); `u` `(T, n)` control
    injections (p.u.); `z` the controller's state at the save times; `f0` the nominal
    frequency (Hz).
    """

    ts: Float[Array, " T"]
    theta: Float[Array, "T n"]
    omega: Float[Array, "T n"]
    u: Float[Array, "T n"]
    z: PyTree
    f0: float = eqx.field(static=True)

    @property
    def frequency_hz(self) -> Float[Array, "T n"]:
        r"""The frequency deviations $\omega/2\pi$ (Hz)."""
        return self.omega / (2 * jnp.pi)


def _coi_weights(network: Network, event: Event | None = None, ts=None) -> Array:
    # Weights summing to one, (n,) or (T, n) with an event: M_i, a bus left without a closed
    # line (a tripped rotor) dropped from the event time on; without inertia the responsive
    # buses' D_i, and without those the dynamic buses' uniform average.
    dyn = jnp.asarray(np.asarray(network.kind) != 2, float)
    if event is None:
        keep = jnp.ones(network.n)
    else:
        E = jnp.asarray(np.abs(network.incidence()))
        connected = ((E @ (network.line_B * event.line_scale)) > 0).astype(float)
        on = jnp.asarray(ts)[:, None] >= event.time
        keep = jnp.where(on, connected[None, :], 1.0)
    M, D, dyn = (jnp.broadcast_to(x, keep.shape) for x in (network.M, network.D * dyn, dyn))
    w = M * keep
    w = jnp.where(jnp.sum(w, axis=-1, keepdims=True) > 0, w, D * keep)
    w = jnp.where(jnp.sum(w, axis=-1, keepdims=True) > 0, w, dyn)
    return w / jnp.sum(w, axis=-1, keepdims=True)


def coi_frequency(traj: Trajectory, network: Network, event: Event | None = None
                  ) -> Float[Array, " T"]:  # fmt: skip
    r"""The centre-of-inertia frequency deviation $\sum_g M_g\omega_g / \sum_g M_g$ (rad/s).

    With the (unbatched) `event` of the trajectory, a generator left without a closed line
    (a tripped unit's rotor) is left out of the sums from the event time on. Without inertia
    ($\sum M = 0$) the average is weighted by the frequency-responsive buses' $D_i$ (never
    NaN).
    """
    w = _coi_weights(network, event, traj.ts)
    return jnp.sum(traj.omega * jnp.broadcast_to(w, traj.omega.shape), axis=-1)


class _Field(eqx.Module):
    # The controller state travels flattened with a zero-size placeholder: diffrax's
    # Runge-Kutta buffers need every node of the state to hold an array.
    model: str = eqx.field(static=True)
    newton: str = eqx.field(static=True)
    rates: bool = eqx.field(static=True)
    z_tree: object = eqx.field(static=True)

    def __call__(self, t, y, args):
        theta_d, omega_g, z_leaves = y
        z = jax.tree.unflatten(self.z_tree, z_leaves[:-1])
        out = _outputs(t, (theta_d, omega_g, z), args, self.model, self.newton, self.rates)
        if not self.rates:
            theta, omega, u, _ = out
            return theta, omega, u, z_leaves
        dtheta_d, domega_g, dz = out
        return dtheta_d, domega_g, tuple(jax.tree.leaves(dz)) + (z_leaves[-1],)


def _state_maps(network):
    gen, dyn, pas = bus_groups(network)
    kind = np.asarray(network.kind)
    pos_g = np.searchsorted(dyn, gen)
    resp = np.flatnonzero(kind == RESPONSIVE)
    pos_r = np.searchsorted(dyn, resp)
    return gen, dyn, pas, resp, pos_g, pos_r


def _outputs(t, y, args, model, newton, with_rates):
    network, controller, event, lin, loads = args
    theta_d, omega_g, z = y
    gen, dyn, pas, resp, pos_g, pos_r = _state_maps(network)
    net = event.at(t, network)
    dP = loads.evaluate(t) if loads is not None else jnp.zeros(network.n)
    P = net.P + dP
    n = network.n
    theta = jnp.zeros(n).at[dyn].set(theta_d)
    if model == "linear":
        kr = jax.tree.map(lambda a, b: jnp.where(t >= event.time, b, a), *lin)
        theta = theta.at[pas].set(kr.K @ theta_d + kr.k)
        Pe_d = kr.L_red @ theta_d - kr.c
        Pe = jnp.zeros(n).at[dyn].set(Pe_d)
    else:
        solve = solve_passive if newton == "optimistix" else solve_passive_unrolled
        theta = theta.at[pas].set(solve(net, theta_d, P[pas]))
        Pe = net.electrical_power(theta)
    omega = jnp.zeros(n).at[gen].set(omega_g)
    Dr = jnp.where(network.D[resp] > 0, network.D[resp], 1.0)
    x = P[resp] - Pe[resp]
    # The responsive buses' algebraic equation D_r omega_r = x_r + u_r(omega_r). For droop,
    # u_r = clip(-k_r omega_r, lo, hi): D_r omega - u_r(omega) is increasing, so the root is
    # (x_r + u_r(x_r / (D_r + k_r))) / D_r (the unclipped root decides the active piece).
    # Other controllers do not feed omega_r back at responsive buses (checked in simulate).
    k_r = controller.gains(net)[resp] if isinstance(controller, Droop) else 0.0
    omega = omega.at[resp].set(x / (Dr + k_r))
    u = controller.control(t, theta, omega, z, net).at[pas].set(0.0)
    omega = omega.at[resp].set((x + u[resp]) / Dr)
    if not with_rates:
        return theta, omega, u, z
    Mg = network.M[gen]
    domega_g = (P[gen] + u[gen] - Pe[gen] - network.D[gen] * omega_g) / Mg
    dtheta_d = jnp.zeros(len(dyn)).at[pos_g].set(omega_g).at[pos_r].set(omega[resp])
    dz = controller.rate(t, theta, omega, z, net)
    return dtheta_d, domega_g, dz


@eqx.filter_jit
def _solve(network, controller, event, loads, theta0, omega0, ts, model, newton, solver,
           rtol, atol, dt0, max_steps):  # fmt: skip
    gen, dyn, pas = bus_groups(network)
    if theta0 is None:
        theta0 = equilibrium(network)
    if omega0 is None:
        omega0 = jnp.zeros(network.n)
    lin = None
    if model == "linear":
        lin = (kron_reduce(network, theta0), kron_reduce(event.after(network), theta0))
    args = (network, controller, event, lin, loads)
    if rtol is None:
        controller_steps = diffrax.ConstantStepSize()
    else:
        jump = jnp.reshape(event.time, (1,))
        controller_steps = diffrax.PIDController(rtol=rtol, atol=atol, jump_ts=jump)
    z_leaves, z_tree = jax.tree.flatten(controller.init(network))
    y0 = (theta0[dyn], omega0[gen], tuple(z_leaves) + (jnp.zeros(0),))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(_Field(model, newton, True, z_tree)),
        solver,
        t0=ts[0],
        t1=ts[-1],
        dt0=dt0,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(ts=ts, fn=_Field(model, newton, False, z_tree)),
        stepsize_controller=controller_steps,
        max_steps=max_steps,
        throw=False,
    )
    theta, omega, u, z_saved = sol.ys
    z = jax.tree.unflatten(z_tree, z_saved[:-1])
    return Trajectory(ts, theta, omega, u, z, network.f0), sol.result


def simulate(
    network: Network,
    controller: AbstractController | None = None,
    event: Event | None = None,
    *,
    ts,
    model: str = "nonlinear",
    newton: str = "unrolled",
    loads=None,
    theta0=None,
    omega0=None,
    solver: diffrax.AbstractSolver = diffrax.Tsit5(),
    rtol: float | None = 1e-8,
    atol: float = 1e-8,
    dt0: float = 1e-3,
    max_steps: int = 16384,
) -> Trajectory:
    r"""Simulate the swing dynamics of `network` under `controller` and `event`.

    One `eqx.filter_jit` program per network topology, model and controller type;
    `jax.vmap` over events (the same topology), networks' arrays or load scenarios.

    **Arguments:**

    - `network`: the [`Network`][mftg_jax.frequency.Network].
    - `controller`: an [`AbstractController`][mftg_jax.frequency.AbstractController]
      (default no control).
    - `event`: an [`Event`][mftg_jax.frequency.Event] (default none).
    - `ts`: the save times (s), increasing; the solve runs from `ts[0]` to `ts[-1]`.
    - `model`: `"nonlinear"` ($\sin$ coupling, Newton on the passive buses) or `"linear"`
      (linearised at `theta0`, Kron reduction).
    - `newton`: the nonlinear passive solve, `"unrolled"` (default: a fixed number of Newton
      steps solved by `mftg_jax._linalg.small_solve`, `jax.lax.custom_root`;
      [`solve_passive_unrolled`][mftg_jax.frequency.solve_passive_unrolled]), which batches
      under `jax.vmap` without LAPACK calls, or `"optimistix"` (`optimistix.Newton`, implicit
      adjoint, LU by LAPACK; [`solve_passive`][mftg_jax.frequency.solve_passive]) for
      unbatched use.
    - `loads`: `None`, or a Module with `evaluate(t)` giving a load deviation $\Delta P(t)$
      of shape `(n,)` added to $P$ (nonlinear model only).
    - `theta0`, `omega0`: the initial angles and frequency deviations, shape `(n,)`
      (default the synchronous [`equilibrium`][mftg_jax.frequency.equilibrium] and zero).
    - `solver`, `rtol`, `atol`, `dt0`, `max_steps`: the diffrax solver, the PID step-size
      controller's tolerances (with the event time in its `jump_ts`), the first step and
      the step limit. `rtol=None`: constant steps `dt0` (then put the event time on the
      step grid); under `jax.vmap` on a CPU this avoids running every member to the
      longest member's step count.

    **Returns:** a [`Trajectory`][mftg_jax.frequency.Trajectory]. A failed solve gives NaN
    values (it is not raised, so that a vmapped batch survives one bad member); see
    [`simulate_checked`][mftg_jax.frequency.simulate_checked].
    """
    traj, _ = _run(network, controller, event, ts=ts, model=model, newton=newton, loads=loads,
                   theta0=theta0,
                   omega0=omega0, solver=solver, rtol=rtol, atol=atol, dt0=dt0,
                   max_steps=max_steps)  # fmt: skip
    return traj


def simulate_checked(network: Network, controller=None, event=None, **kwargs) -> Trajectory:
    """[`simulate`][mftg_jax.frequency.simulate], raising `RuntimeError` when the solve fails
    (concrete inputs only)."""
    traj, result = _run(network, controller, event, **kwargs)
    if not bool(jnp.all(result == diffrax.RESULTS.successful)):
        raise RuntimeError(f"the swing simulation failed: {result}")
    return traj


def _run(network, controller, event, *, ts, model="nonlinear", newton="unrolled", loads=None,
         theta0=None,
         omega0=None, solver=diffrax.Tsit5(), rtol=1e-8, atol=1e-8, dt0=1e-3,
         max_steps=16384):  # fmt: skip
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if newton not in NEWTONS:
        raise ValueError(f"newton must be one of {NEWTONS}, got {newton!r}")
    if model == "linear" and loads is not None:
        raise ValueError("loads (stochastic load paths) need model='nonlinear'")
    if controller is None:
        controller = NoControl()
    _check_responsive_feedback(network, controller)
    if event is None:
        event = Event.none(network)
    ts = jnp.asarray(ts, dtype=float)
    if ts.ndim != 1 or ts.shape[0] < 2:
        raise ValueError(f"ts must be a vector of at least two save times, got {ts.shape}")
    if is_concrete(ts) and not np.all(np.diff(np.asarray(ts)) > 0):
        raise ValueError("ts must be strictly increasing")
    for name, value in (("theta0", theta0), ("omega0", omega0)):
        if value is not None and jnp.shape(value) != (network.n,):
            raise ValueError(f"{name} must have shape (n={network.n},), got {jnp.shape(value)}")
    return _solve(network, controller, event, loads, theta0, omega0, ts, model, newton,
                  solver, rtol, atol, dt0, max_steps)  # fmt: skip


def _check_responsive_feedback(network: Network, controller) -> None:
    """`ValueError` when a controller other than `Droop` has a droop term at a controllable
    frequency-responsive bus (its algebraic frequency would need a fixed point)."""
    d = getattr(controller, "droop", None)
    if isinstance(controller, Droop) or d is None:
        return
    if not is_concrete(d, network.u_min, network.u_max):
        return
    resp = np.asarray(network.kind) == RESPONSIVE
    acting = resp & np.asarray(network.controllable)
    if acting.any() and np.any(np.broadcast_to(np.asarray(d), (network.n,))[acting] != 0):
        raise ValueError(
            f"{type(controller).__name__}.droop must be 0 at controllable frequency-responsive "
            "buses (only Droop solves their algebraic frequency equation)"
        )
