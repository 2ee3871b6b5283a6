r"""The linearised network as a vector-state LQ mean-field-type game, and its feedback as a
controller (docs/vector_lq.md, section 6).

Linearise the swing equations at the synchronous equilibrium $\theta^\star$ and Kron-reduce
the passive buses (`kron_reduce`):
$P^e_d \approx P^e_d(\theta^\star) + L^{red}(\theta_d - \theta^\star_d)$, and an injection
change $\Delta P$ reaches the dynamic buses as $G\Delta P$ with $G = [I\ |\ K^\top]$ (the
passive columns through the Kron map $K = -\tilde L_{pp}^{-1}\tilde L_{pd}$). The state
$x = (\theta_d - \theta^\star_d, \omega_g) \in \mathbb R^{n_d + n_g}$ obeys

$$\dot\theta_g = \omega_g,\quad M_g\dot\omega_g = u_g + (G\Delta P)_g - (L^{red}\delta\theta)_g
  - D_g\omega_g,\quad D_r\dot\theta_r = u_r + (G\Delta P)_r - (L^{red}\delta\theta)_r,$$

with the load disturbance $\Delta P\,dt = \sum_b\sigma_b e_b\,dB_b + \sigma_o\ell\,dB_o
+ \mu\ell\,d\tilde N_o$: idiosyncratic noise $\sigma_b = s|P_b|$ at every load bus $b$,
common (system-wide) noise and compensated common jumps (rate $\nu$) along the load profile
$\ell_b = -|P_b|$. The controllable generators are the players; player $i$ minimises

$$E\int_0^T\Big(\tfrac{a_i}{2}u_i^2 + b_iu_i + \tfrac{w_\omega}{2n_g}|\omega_g|^2
  + \tfrac{w_\theta}{2n_d}|\delta\theta_d|^2\Big)dt,$$

its own generation cost $J_i$ plus a shared weight on the frequency deviation and a small
one on the angles (which penalises the common-mode angle, the integral of the frequency:
the feedback has integral action and restores the frequency). The noise is additive and the
cost has no mean-field terms, so the deviation and conditional-mean Riccati equations
coincide, $K_i = \hat K_i$: the feedback $u_i = \hat K_ix + k_i$ needs only the observed
state. Over a horizon $T$ long against the network's time constants the gains at $t = 0$ are
stationary; [`LQController`][] applies them, clipped to the control bounds.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree
import numpy as np

from .._validation import check_field
from ..lq import (
    solve_vector,
    vector_dynamics,
    VectorAffine,
    VectorJumps,
    VectorLQGame,
    VectorRiccatiSolution,
    VectorRunningCost,
    VectorTerminalCost,
    zero_vector_affine,
)
from ._algebraic import bus_groups, equilibrium, kron_reduce
from ._controller import AbstractController
from ._network import Network


def _float(x) -> Array:
    return jnp.asarray(x, dtype=float)


class LQDesign(eqx.Module):
    r"""The weights and the disturbance model of the network's LQ game (module docstring).

    **Arguments:**

    - `frequency_weight`: $w_\omega > 0$ on $|\omega_g|^2/n_g$ ((p.u./(rad/s))$^2$ scale).
    - `angle_weight`: $w_\theta > 0$ on $|\delta\theta_d|^2/n_d$.
    - `load_noise`: $s \ge 0$, the idiosyncratic load noise per unit of load (1/$\sqrt{s}$).
    - `common_noise`: $\sigma_o \ge 0$, the system-wide load noise per unit of load.
    - `jump_rate`: $\nu \ge 0$ (1/s) and `jump_size`: $\mu$ (per unit of load), the common
      compensated load jumps.
    - `horizon`: $T > 0$ (s), long against the network's time constants.
    """

    frequency_weight: Float[Array, ""] = eqx.field(converter=_float, default=10.0)
    angle_weight: Float[Array, ""] = eqx.field(converter=_float, default=4.0)
    load_noise: Float[Array, ""] = eqx.field(converter=_float, default=0.01)
    common_noise: Float[Array, ""] = eqx.field(converter=_float, default=0.01)
    jump_rate: Float[Array, ""] = eqx.field(converter=_float, default=0.1)
    jump_size: Float[Array, ""] = eqx.field(converter=_float, default=0.05)
    horizon: Float[Array, ""] = eqx.field(converter=_float, default=30.0)

    def __check_init__(self):
        check_field("LQDesign.frequency_weight", self.frequency_weight, "> 0", lambda v: v > 0)
        check_field("LQDesign.angle_weight", self.angle_weight, "> 0", lambda v: v > 0)
        for name in ("load_noise", "common_noise", "jump_rate"):
            check_field(f"LQDesign.{name}", getattr(self, name), ">= 0", lambda v: v >= 0)
        check_field("LQDesign.jump_size", self.jump_size, "a finite real")
        check_field("LQDesign.horizon", self.horizon, "> 0 (s)", lambda v: v > 0)


class LinearNetwork(eqx.Module):
    """The linearised, Kron-reduced network in the game's coordinates (module docstring).

    `A (d, d)`, control loadings `B (d, n_players)`, the injection map `inject (d, n)` from
    a bus injection change to the state's rate, the operating point `theta_star (n,)`, and the
    bus indices of the state's angles `dyn`, frequencies `gen` and of the players `players`.
    """

    A: Float[Array, "d d"]
    B: Float[Array, "d p"]
    inject: Float[Array, "d n"]
    theta_star: Float[Array, " n"]
    dyn: tuple[int, ...] = eqx.field(static=True)
    gen: tuple[int, ...] = eqx.field(static=True)
    players: tuple[int, ...] = eqx.field(static=True)


def linearise(network: Network) -> LinearNetwork:
    """The [`LinearNetwork`][mftg_jax.frequency.LinearNetwork] of `network` at its
    synchronous equilibrium (`equilibrium`)."""
    gen, dyn, pas = bus_groups(network)
    theta_star = equilibrium(network)
    kr = kron_reduce(network, theta_star)
    nd, ng, n = len(dyn), len(gen), network.n
    gen_pos = np.searchsorted(dyn, gen)
    resp_pos = np.setdiff1d(np.arange(nd), gen_pos)
    # Rate of the state per unit of injection at each dynamic bus.
    per_dyn = np.zeros((nd + ng, nd))
    M, D = np.asarray(network.M), np.asarray(network.D)
    per_dyn[nd + np.arange(ng), gen_pos] = 1.0 / M[gen]
    per_dyn[resp_pos, resp_pos] = 1.0 / D[dyn[resp_pos]]
    per_dyn = jnp.asarray(per_dyn)
    G = jnp.zeros((nd, n)).at[:, dyn].set(jnp.eye(nd)).at[:, pas].set(kr.K.T)
    inject = per_dyn @ G
    A = jnp.zeros((nd + ng, nd + ng))
    A = A.at[gen_pos, nd + np.arange(ng)].set(1.0)
    A = A - per_dyn @ jnp.concatenate([kr.L_red, jnp.zeros((nd, ng))], axis=1)
    damp = jnp.zeros((nd, nd + ng)).at[gen_pos, nd + np.arange(ng)].set(network.D[gen])
    A = A - per_dyn @ damp
    players = np.flatnonzero(np.asarray(network.controllable))
    if np.any(np.isin(players, pas)):
        raise ValueError("network: a passive bus is controllable; only dynamic buses can be")
    if len(players) == 0:
        raise ValueError("network: no controllable bus (u_min < u_max), so no player")
    B = inject[:, players]
    ints = lambda a: tuple(int(i) for i in a)  # noqa: E731
    return LinearNetwork(A, B, inject, theta_star, ints(dyn), ints(gen), ints(players))


def network_game(network: Network, design: LQDesign = LQDesign()) -> VectorLQGame:
    """The linearised network as a [`VectorLQGame`][mftg_jax.lq.VectorLQGame] (one regime,
    one control per controllable generator; module docstring)."""
    lin = linearise(network)
    d, p = lin.A.shape[0], lin.B.shape[1]
    nd, ng = len(lin.dyn), len(lin.gen)
    a = network.cost_a[jnp.asarray(lin.players)]
    check_field("Network.cost_a (at the players)", a, "> 0 for an LQ player", lambda v: v > 0)
    b = network.cost_b[jnp.asarray(lin.players)]
    loads = np.flatnonzero(np.asarray(network.P) < 0)
    load = jnp.abs(jnp.minimum(network.P, 0.0))
    # Control loadings: player i's control moves the state by B[:, i].
    u = jnp.zeros((1, p, d, 1)).at[0, :, :, 0].set(lin.B.T)
    drift = VectorAffine(jnp.zeros((1, d)), lin.A[None], jnp.zeros((1, d, d)), u, jnp.zeros_like(u))
    idio = zero_vector_affine(1, p, d, 1, len(loads))
    idio = eqx.tree_at(
        lambda f: f.const,
        idio,
        (design.load_noise * lin.inject[:, loads] * load[loads][None, :]).T[None],
    )
    profile = -(lin.inject @ load)
    common = eqx.tree_at(
        lambda f: f.const,
        zero_vector_affine(1, p, d, 1, 1),
        (design.common_noise * profile)[None, None],
    )
    size = eqx.tree_at(
        lambda f: f.const,
        zero_vector_affine(1, p, d, 1, 1),
        (design.jump_size * profile)[None, None],
    )
    jumps = VectorJumps(jnp.reshape(design.jump_rate, (1, 1)), size)
    dyn = vector_dynamics(drift, idio, common, common_jumps=jumps)
    weights = jnp.concatenate(
        [jnp.full(nd, design.angle_weight / nd), jnp.full(ng, design.frequency_weight / ng)]
    )
    q = jnp.broadcast_to(jnp.diag(weights), (1, p, d, d))
    zd, zm = jnp.zeros((1, p, d, d)), jnp.zeros((1, p, 1, 1))
    cost = VectorRunningCost(
        q=q, qbar=zd, r=a.reshape(1, p, 1, 1), rbar=zm, eps1=jnp.zeros((1, p, d, 1)),
        eps1bar=jnp.zeros((1, p, d, 1)), eps2=b.reshape(1, p, 1), eps2bar=jnp.zeros((1, p, 1)),
        eps3=jnp.zeros((1, p, d)), eps3bar=jnp.zeros((1, p, d)), lam=jnp.zeros((1, p)),
    )  # fmt: skip
    terminal = VectorTerminalCost(zd, zd, jnp.zeros((1, p, d)), jnp.zeros((1, p, d)))
    zero = jnp.zeros(d)
    return VectorLQGame(dyn, cost, terminal, jnp.zeros((1, 1)), 0.0, design.horizon, zero, zero)


class LQController(AbstractController):
    r"""The LQ game's equilibrium feedback on the network,
    $u_i = \mathrm{clip}(\hat K_ix + k_i, \underline u_i, \bar u_i)$ with
    $x = (\theta_d - \theta^\star_d, \omega_g)$ (module docstring).

    **Arguments:** `gain` `(n, d)` and `intercept` `(n,)` per bus (zero rows at buses that are
    no players), `theta_star` `(n,)`, the state's bus indices `dyn` and `gen` (static).
    Build it with [`lq_controller`][mftg_jax.frequency.lq_controller].
    """

    gain: Float[Array, "n d"]
    intercept: Float[Array, " n"]
    theta_star: Float[Array, " n"]
    dyn: tuple[int, ...] = eqx.field(static=True)
    gen: tuple[int, ...] = eqx.field(static=True)

    def state(self, theta, omega) -> Float[Array, " d"]:
        """The game's state $x$ from the per-bus angles and frequency deviations."""
        dyn, gen = jnp.asarray(self.dyn), jnp.asarray(self.gen)
        return jnp.concatenate([theta[dyn] - self.theta_star[dyn], omega[gen]])

    def init(self, network: Network) -> PyTree:
        return ()

    def control(self, t, theta, omega, z, network: Network) -> Float[Array, " n"]:
        u = self.gain @ self.state(theta, omega) + self.intercept
        return jnp.clip(u, network.u_min, network.u_max)

    def rate(self, t, theta, omega, z, network: Network) -> PyTree:
        return ()


def lq_controller(
    network: Network, design: LQDesign = LQDesign(), *, max_steps: int = 16384
) -> tuple[LQController, VectorRiccatiSolution]:
    r"""Solve the network's LQ game and wrap its feedback at $t = 0$ as a controller.

    **Arguments:** `network`, `design` (an [`LQDesign`][mftg_jax.frequency.LQDesign]),
    `max_steps` of the Riccati solve.

    **Returns:** `(controller, solution)`: the [`LQController`][] and the game's
    [`VectorRiccatiSolution`][mftg_jax.lq.VectorRiccatiSolution] (for its certificate).
    """
    lin = linearise(network)
    sol = solve_vector(network_game(network, design), max_steps=max_steps)
    g = sol.gains(0.0)
    players = jnp.asarray(lin.players)
    gain = jnp.zeros((network.n, lin.A.shape[0])).at[players].set(g.mean[0, :, 0, :])
    intercept = jnp.zeros(network.n).at[players].set(g.intercept[0, :, 0])
    return LQController(gain, intercept, lin.theta_star, lin.dyn, lin.gen), sol
