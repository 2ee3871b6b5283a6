r"""The steady-state certificate of a closed loop: frequency restored, economic dispatch reached.

After the event the closed loop $\dot y = F(y)$, $y = (\theta_d, \omega_g, z)$ (the swing
dynamics of [`simulate`][mftg_jax.frequency.simulate] with the controller's state), is
autonomous. Its equilibrium is computed by a root solve of $F$ started from the simulation's
end state: Gauss-Newton (optimistix) on $F(y) = 0$ with the angle of the first dynamic bus
held at its end value (the equilibria form a line: a common rotation of every angle changes
nothing) and minimum-norm least-squares steps (lineax, `well_posed=False`: the components of
$z$ that a controller keeps constant, such as the prices of non-controllable buses, are
left where they are). At that equilibrium $y^*$ the certificate checks

- the vector field vanishes, $\|F(y^*)\|_\infty$ (`vector_field_residual`);
- the frequency is restored, $\max_i |\omega_i^*|$ (`frequency_deviation`, rad/s);
- the KKT conditions of the economic dispatch of the post-event network hold for $u^*$ with
  $\lambda$ the mean marginal cost of the units strictly inside their bounds (or, when every
  unit is at a bound, the lowest valid multiplier)
  ([`kkt_certificate`][mftg_jax.frequency.kkt_certificate]): `kkt_residual` (relative: the
  balance over $s = 1 + \sum_i|\underline u_i| + |\bar u_i|$, the complementarity over
  $s\Lambda$), the absolute `balance_residual` (p.u.) and `complementarity_residual`, and
  `marginal_cost_spread`;
- $u^*$ equals the dispatch of [`economic_dispatch`][mftg_jax.frequency.economic_dispatch]
  computed directly (`dispatch_error`, p.u.).

The same figures at the simulated end state (`end_*`) and its distance to $y^*$ say how close
the finite-horizon simulation came.
"""

import equinox as eqx
import jax
from jax.flatten_util import ravel_pytree
import jax.numpy as jnp
from jaxtyping import Array, Float
import lineax as lx
import optimistix as optx

from ._algebraic import bus_groups, equilibrium, kron_reduce
from ._controller import AbstractController
from ._dynamics import _outputs, simulate, Trajectory
from ._economic import DispatchProblem, economic_dispatch, kkt_certificate
from ._events import Event
from ._network import Network


def implied_price(problem: DispatchProblem, u: Float[Array, " n"]) -> Float[Array, ""]:
    r"""The multiplier implied by a dispatch: the mean $J_i'(u_i)$ over the units strictly
    inside their bounds; with none, the largest $J_i'(\bar u_i)$ of the units at their upper
    bound (the lowest valid multiplier)."""
    lo, hi = problem.u_min, problem.u_max
    margin = 1e-9 * (1.0 + jnp.abs(hi - lo))
    free = (u > lo + margin) & (u < hi - margin)
    mc = problem.marginal_cost(u)
    mean = jnp.sum(jnp.where(free, mc, 0.0)) / jnp.maximum(jnp.sum(free), 1)
    top = (hi > lo) & (u >= hi - margin)
    fallback = jnp.max(jnp.where(top, problem.marginal_cost(hi), -jnp.inf))
    fallback = jnp.where(jnp.isfinite(fallback), fallback, jnp.min(problem.marginal_cost(lo)))
    return jnp.where(jnp.any(free), mean, fallback)


class SteadyStateCertificate(eqx.Module):
    r"""The steady-state certificate of a closed loop (module docstring).

    **Fields:** at the root-solved equilibrium: `vector_field_residual`,
    `frequency_deviation` (rad/s), `kkt_residual` (relative, see
    [`KKTCertificate`][mftg_jax.frequency.KKTCertificate]), `balance_residual` (p.u.) and
    `complementarity_residual` (absolute), `marginal_cost_spread`, `duality_gap`,
    `dispatch_error` (p.u.), `dispatch` $u^*$, `price` $\lambda$, `dispatch_cost`
    $\sum_i J_i(u_i^*)$, `optimal_dispatch` (the direct solution), `converged`, `state`
    $y^* = (\theta_d^*, \omega_g^*, z^*)$, `angles` $\theta^*$ (every bus, the passive ones
    solved from $\theta_d^*$, rad) and `frequencies` $\omega^*$ (every bus, rad/s); at the
    simulated end state: `end_frequency_deviation`, `end_kkt_residual`,
    `end_dispatch_error`, `end_distance` ($\|y_{end} - y^*\|_\infty$).
    """

    vector_field_residual: Float[Array, ""]
    frequency_deviation: Float[Array, ""]
    kkt_residual: Float[Array, ""]
    balance_residual: Float[Array, ""]
    complementarity_residual: Float[Array, ""]
    marginal_cost_spread: Float[Array, ""]
    duality_gap: Float[Array, ""]
    dispatch_error: Float[Array, ""]
    dispatch: Float[Array, " n"]
    price: Float[Array, ""]
    dispatch_cost: Float[Array, ""]
    optimal_dispatch: Float[Array, " n"]
    converged: Array
    state: tuple
    angles: Float[Array, " n"]
    frequencies: Float[Array, " n"]
    end_frequency_deviation: Float[Array, ""]
    end_kkt_residual: Float[Array, ""]
    end_dispatch_error: Float[Array, ""]
    end_distance: Float[Array, ""]


def _end_state(network: Network, traj: Trajectory):
    gen, dyn, _ = bus_groups(network)
    z = jax.tree.map(lambda v: v[-1], traj.z)
    return (traj.theta[-1][dyn], traj.omega[-1][gen], z)


@eqx.filter_jit
def steady_state(
    network: Network,
    controller: AbstractController,
    event: Event,
    traj: Trajectory,
    *,
    model: str = "nonlinear",
    newton: str = "optimistix",
    rtol: float = 1e-13,
    atol: float = 1e-13,
    max_steps: int = 64,
) -> SteadyStateCertificate:
    r"""Root-solve the closed loop's equilibrium from the end of `traj` and certify it
    (module docstring).

    **Arguments:**

    - `network`, `controller`, `event`: what was simulated (deterministic loads only).
    - `traj`: the [`Trajectory`][mftg_jax.frequency.Trajectory] from
      [`simulate`][mftg_jax.frequency.simulate]; its end state starts the root solve.
    - `model`: `"nonlinear"` or `"linear"`, as simulated.
    - `newton`: the passive buses' solver in the vector field, `"optimistix"` (default) or
      `"unrolled"` (a fixed number of Newton steps, see
      [`solve_passive_unrolled`][mftg_jax.frequency.solve_passive_unrolled]).
    - `rtol`, `atol`, `max_steps`: of the Gauss-Newton solve.

    **Returns:** a [`SteadyStateCertificate`][mftg_jax.frequency.SteadyStateCertificate].
    """
    t = jnp.maximum(traj.ts[-1], event.time + 1.0)
    lin = None
    if model == "linear":
        theta0 = traj.theta[0]
        lin = (kron_reduce(network, theta0), kron_reduce(event.after(network), theta0))
    args = (network, controller, event, lin, None)
    y_end = _end_state(network, traj)
    flat_end, unravel = ravel_pytree(y_end)
    anchor = flat_end[0]

    def residual(rest, _):
        y = unravel(jnp.concatenate([anchor[None], rest]))
        return ravel_pytree(_outputs(t, y, args, model, newton, True))[0]

    sol = optx.least_squares(
        residual,
        optx.GaussNewton(rtol=rtol, atol=atol, linear_solver=lx.AutoLinearSolver(well_posed=False)),
        flat_end[1:],
        max_steps=max_steps,
        throw=False,
    )
    y_star = unravel(jnp.concatenate([anchor[None], sol.value]))
    F = residual(sol.value, None)
    theta, omega, u, _ = _outputs(t, y_star, args, model, newton, False)
    problem = DispatchProblem.from_network(event.after(network))
    optimum = economic_dispatch(problem)

    def certify(u):
        lam = implied_price(problem, u)
        return lam, kkt_certificate(problem, u, lam)

    lam, cert = certify(u)
    _, end_cert = certify(traj.u[-1])
    return SteadyStateCertificate(
        vector_field_residual=jnp.max(jnp.abs(F)),
        frequency_deviation=jnp.max(jnp.abs(omega)),
        kkt_residual=cert.kkt_residual,
        balance_residual=cert.absolute_balance,
        complementarity_residual=cert.absolute_complementarity,
        marginal_cost_spread=cert.marginal_cost_spread,
        duality_gap=cert.duality_gap,
        dispatch_error=jnp.max(jnp.abs(u - optimum.dispatch)),
        dispatch=u,
        price=lam,
        dispatch_cost=problem.cost(u),
        optimal_dispatch=optimum.dispatch,
        converged=sol.result == optx.RESULTS.successful,
        state=y_star,
        angles=theta,
        frequencies=omega,
        end_frequency_deviation=jnp.max(jnp.abs(traj.omega[-1])),
        end_kkt_residual=end_cert.kkt_residual,
        end_dispatch_error=jnp.max(jnp.abs(traj.u[-1] - optimum.dispatch)),
        end_distance=jnp.max(jnp.abs(sol.value - flat_end[1:])),
    )


def initial_angles(network: Network, controller: AbstractController) -> Float[Array, " n"]:
    r"""The synchronous equilibrium angles of the pre-event network with the controller's
    initial injection $u_0 = \kappa(0, \theta^\star, 0, z_0)$ (for the secondary controllers
    the economic dispatch): $P_i + u_{0,i} = \sum_j B_{ij}\sin(\theta_i - \theta_j)$, with
    $\theta^\star$ the uncontrolled equilibrium (exact for injections that do not depend on
    the angles; one fixed-point step for a state feedback such as the LQ controller)."""
    z0 = controller.init(network)
    zeros = jnp.zeros(network.n)
    u0 = controller.control(0.0, equilibrium(network), zeros, z0, network)
    return equilibrium(eqx.tree_at(lambda n: n.P, network, network.P + u0))


def closed_loop(
    network: Network,
    controller: AbstractController,
    event: Event,
    ts,
    *,
    model: str = "nonlinear",
    rtol: float = 1e-6,
    atol: float = 1e-8,
) -> tuple[Trajectory, SteadyStateCertificate]:
    r"""Simulate from the pre-event equilibrium
    ([`initial_angles`][mftg_jax.frequency.initial_angles]) and certify the steady state
    ([`steady_state`][mftg_jax.frequency.steady_state]).

    **Returns:** `(trajectory, certificate)`.
    """
    theta0 = initial_angles(network, controller)
    traj = simulate(
        network, controller, event, ts=ts, model=model, theta0=theta0, rtol=rtol, atol=atol
    )
    return traj, steady_state(network, controller, event, traj, model=model)
