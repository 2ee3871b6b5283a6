r"""The passive buses' algebraic equations: Kron reduction (linear) and a Newton solve
(nonlinear), and the network's synchronous equilibrium.

Split the buses into dynamic ($d$: generator and frequency-responsive) and passive ($p$).

- Linear model, linearised at an operating point $\theta^\star$: the line weights are
  $\tilde B_\ell = B_\ell\cos(\theta^\star_{f_\ell} - \theta^\star_{t_\ell})$ with Laplacian
  $\tilde L$ and $P^e(\theta) = P^e(\theta^\star) + \tilde L(\theta - \theta^\star)$. The
  passive balance $0 = P_p - P^e_p$ is linear in $\theta_p$ and its elimination is the Kron
  reduction $L^{red} = \tilde L_{dd} - \tilde L_{dp}\tilde L_{pp}^{-1}\tilde L_{pd}$ (a
  Laplacian on the dynamic buses; Dorfler and Bullo, IEEE TCAS-I 60 (2013) 150).
- Nonlinear model: $0 = P_p - \sum_j B_{pj}\sin(\theta_p - \theta_j)$ is solved for
  $\theta_p$ by Newton's method (optimistix) at every evaluation of the vector field, started
  from the linear (small-angle) solution; gradients pass by the implicit function theorem
  (`optimistix.ImplicitAdjoint`, the default of `optimistix.root_find`). The unrolled
  variant ([`solve_passive_unrolled`][mftg_jax.frequency.solve_passive_unrolled], the default
  of [`simulate`][mftg_jax.frequency.simulate]) solves its Newton systems with
  `mftg_jax._linalg.small_solve` (no LAPACK call, safe under `jax.vmap`); the optimistix path
  factorises with lineax's LU, a LAPACK call, and is meant for unbatched use.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float
import numpy as np
import optimistix as optx

from .._linalg import small_solve
from ._network import GENERATOR, Network, PASSIVE


def bus_groups(network: Network) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The indices of the generator, dynamic (generator or responsive) and passive buses."""
    kind = np.asarray(network.kind)
    return (
        np.flatnonzero(kind == GENERATOR),
        np.flatnonzero(kind != PASSIVE),
        np.flatnonzero(kind == PASSIVE),
    )


def weighted_laplacian(network: Network, weights) -> Float[Array, "n n"]:
    r"""$E\,\mathrm{diag}(w)\,E^T$ for line weights $w$."""
    E = jnp.asarray(network.incidence())
    return (E * weights[None, :]) @ E.T


def linear_weights(network: Network, theta_star) -> Float[Array, " m"]:
    r"""The linearised line weights $B_\ell\cos(\theta^\star_{f_\ell} - \theta^\star_{t_\ell})$."""
    f = np.asarray(network.line_from, int)
    t = np.asarray(network.line_to, int)
    return network.line_B * jnp.cos(theta_star[f] - theta_star[t])


class KronReduction(eqx.Module):
    r"""The Kron-reduced linear network on the dynamic buses.

    $P^e_d = L^{red}\theta_d - c$ and $\theta_p = K\theta_d + k$, where for the linear model
    at $\theta^\star$ with $q = P^e(\theta^\star) - \tilde L\theta^\star$ (so that
    $P^e = \tilde L\theta + q$) and passive injections $P_p$:
    $K = -\tilde L_{pp}^{-1}\tilde L_{pd}$, $k = \tilde L_{pp}^{-1}(P_p - q_p)$,
    $L^{red} = \tilde L_{dd} + \tilde L_{dp}K$, $c = -q_d - \tilde L_{dp}k$.
    """

    L_red: Float[Array, "nd nd"]
    c: Float[Array, " nd"]
    K: Float[Array, "np nd"]
    k: Float[Array, " np"]


def kron_reduce(network: Network, theta_star=None) -> KronReduction:
    r"""Kron-reduce the linear model of `network` at `theta_star` (default $0$: the
    small-angle DC model $P^e = L\theta$).

    **Arguments:** `network`; `theta_star`: the operating point, shape `(n,)`.

    **Returns:** a [`KronReduction`][mftg_jax.frequency.KronReduction].
    """
    _, dyn, pas = bus_groups(network)
    if theta_star is None:
        theta_star = jnp.zeros(network.n)
    w = linear_weights(network, theta_star)
    L = weighted_laplacian(network, w)
    q = network.electrical_power(theta_star) - L @ theta_star
    Ldd, Ldp = L[dyn][:, dyn], L[dyn][:, pas]
    Lpd, Lpp = L[pas][:, dyn], L[pas][:, pas]
    if len(pas) == 0:
        return KronReduction(Ldd, -q[dyn], jnp.zeros((0, len(dyn))), jnp.zeros((0,)))
    K = -small_solve(Lpp, Lpd)
    k = small_solve(Lpp, network.P[pas] - q[pas])
    return KronReduction(Ldd + Ldp @ K, -q[dyn] - Ldp @ k, K, k)


def _passive_residual(theta_p, args):
    network, theta_d, P_p = args
    _, dyn, pas = bus_groups(network)
    theta = jnp.zeros(network.n).at[dyn].set(theta_d).at[pas].set(theta_p)
    return P_p - network.electrical_power(theta)[pas]


def solve_passive(
    network: Network, theta_d, P_p=None, *, rtol: float = 1e-11, atol: float = 1e-11
) -> Float[Array, " np"]:
    r"""The passive angles $\theta_p$ with $0 = P_p - \sum_j B_{pj}\sin(\theta_p - \theta_j)$,
    given the dynamic angles $\theta_d$ (Newton, optimistix, started from the small-angle
    solution; implicit differentiation).

    **Arguments:** `network`; `theta_d`: shape `(nd,)`; `P_p`: the passive injections
    (default `network.P` at the passive buses).

    **Returns:** $\theta_p$, shape `(np,)`.
    """
    _, _, pas = bus_groups(network)
    if len(pas) == 0:
        return jnp.zeros((0,))
    if P_p is None:
        P_p = network.P[pas]
    kr = kron_reduce(eqx.tree_at(lambda n: n.P, network, network.P.at[pas].set(P_p)))
    guess = kr.K @ theta_d + kr.k
    sol = optx.root_find(
        _passive_residual,
        optx.Newton(rtol=rtol, atol=atol),
        guess,
        args=(network, theta_d, P_p),
        max_steps=50,
        throw=False,
    )
    return sol.value


def _balance_residual(theta_rest, network):
    theta = jnp.concatenate([jnp.zeros(1), theta_rest])
    return (network.P - network.electrical_power(theta))[1:]


def equilibrium(network: Network, *, rtol: float = 1e-12, atol: float = 1e-12) -> Array:
    r"""The synchronous equilibrium angles: $P_i = \sum_j B_{ij}\sin(\theta_i - \theta_j)$ at
    every bus, $\omega = 0$, with $\theta_0 = 0$ (needs $\sum_i P_i = 0$). Newton (optimistix)
    from the DC solution $L\theta = P$.

    **Returns:** $\theta^\star$, shape `(n,)` (rad).
    """
    L = network.laplacian()
    guess = small_solve(L[1:, 1:], network.P[1:])
    sol = optx.root_find(
        _balance_residual,
        optx.Newton(rtol=rtol, atol=atol),
        guess,
        args=network,
        max_steps=50,
        throw=False,
    )
    return jnp.concatenate([jnp.zeros(1), sol.value])


def _passive_jacobian(network: Network, theta):
    _, _, pas = bus_groups(network)
    Lc = weighted_laplacian(network, linear_weights(network, theta))
    return Lc[pas][:, pas]


def solve_passive_unrolled(network: Network, theta_d, P_p=None, *, guess=None,
                           iterations: int = 6) -> Float[Array, " np"]:  # fmt: skip
    r"""[`solve_passive`][mftg_jax.frequency.solve_passive] by a fixed number of Newton steps
    $\theta_p \leftarrow \theta_p + \tilde L_{pp}(\theta)^{-1}(P_p - P^e_p(\theta))$ (the
    Jacobian is the cosine-weighted Laplacian), differentiated implicitly by
    `jax.lax.custom_root`. Without an inner `while` loop it batches well under `jax.vmap`,
    where optimistix's loop nested in diffrax's is slow.
    """
    _, dyn, pas = bus_groups(network)
    if len(pas) == 0:
        return jnp.zeros((0,))
    if P_p is None:
        P_p = network.P[pas]
    if guess is None:
        kr = kron_reduce(eqx.tree_at(lambda n: n.P, network, network.P.at[pas].set(P_p)))
        guess = kr.K @ theta_d + kr.k

    def full(theta_p):
        return jnp.zeros(network.n).at[dyn].set(theta_d).at[pas].set(theta_p)

    def residual(theta_p):
        return _passive_residual(theta_p, (network, theta_d, P_p))

    def newton(f, x):
        for _ in range(iterations):
            x = x + small_solve(_passive_jacobian(network, full(x)), f(x))
        return x

    def tangent_solve(g, y):
        # g is linear: its matrix does not depend on y, and the explicit inverse keeps the
        # solve linear in y (transposable for reverse mode).
        J = jax.jacfwd(g)(jnp.zeros_like(y))
        return small_solve(J, jnp.eye(y.shape[0], dtype=J.dtype)) @ y

    return jax.lax.custom_root(residual, guess, newton, tangent_solve)
