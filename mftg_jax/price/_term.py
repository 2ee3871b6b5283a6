r"""The price ensemble's batched dynamics on the grid: state, affine controls and the diffrax
term whose `step` advances every scenario and path (the schemes of
[`simulate_paths`][mftg_jax.price.simulate_paths]: Euler-Maruyama, or the exponential step
exact in distribution for frozen coefficients), with the running revenues and costs.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._noise._levy_path import GridLevyPath, phi1
from .._simulation._stepper import AbstractEnsembleTerm
from ._game import PriceGame
from ._policy import FeedbackPolicy


class EnsembleState(eqx.Module):
    """The batched state: `phat (M,)`, `p (M, B)`, running revenue and cost `(n, M, B)`."""

    phat: Array
    p: Array
    revenue: Array
    cost: Array
    overflow: Array


class AffineControls(eqx.Module):
    r"""An affine feedback tabulated on times: $u_i = g_i(t)(p - \hat p) + k_i(t)\hat p - m_i(t)$.

    Built from a [`FeedbackPolicy`][] (or zero for no control) by [`affine_controls`][].
    """

    times: Array
    gain: Array
    k: Array
    m: Array

    def at(self, idx):
        return self.gain[idx], self.k[idx], self.m[idx]


def affine_controls(policy, times: Array, n: int, dtype) -> AffineControls | None:
    """Tabulate `policy` (a `FeedbackPolicy` or `None`) at `times`; other callables give None."""
    if policy is None:
        z = jnp.zeros((times.shape[0], n), dtype)
        return AffineControls(times, z, z, z)
    if isinstance(policy, FeedbackPolicy):

        def one(t):
            g = policy.deviation_gain(t)
            k, m = policy.riccati.gains(t)
            return g, k, m

        g, k, m = jax.vmap(one)(times.astype(policy.riccati.game.market.eta.dtype))
        return AffineControls(times, g.astype(dtype), k.astype(dtype), m.astype(dtype))
    return None


class PriceTerm(AbstractEnsembleTerm):
    """Drift, Brownian and jump parts of the ensemble's dynamics (module docstring).

    Revenues and costs are carried producer-first, `(n, M, B)`, so that each producer's
    running sum is one contiguous array.
    """

    game: PriceGame
    grid: Array
    table: AffineControls | None
    mid: AffineControls | None
    user_policy: Callable | None
    idio: GridLevyPath
    common: GridLevyPath
    track: bool = eqx.field(static=True)

    # -- helpers -----------------------------------------------------------------
    def _idx(self, t):
        return self.idio.step_index(t)

    def _coef(self, dtype):
        g = self.game
        c = lambda x: jnp.asarray(x).astype(dtype)
        return (
            c(g.market.eta),
            c(g.noise.sigma),
            c(g.noise.sigma_o),
            c(g.producers.c),
            c(g.producers.r),
            c(g.producers.rbar),
            c(g.producers.lam),
        )

    def controls(self, t, idx, p, phat):
        """$(u, \\hat u)$: shapes `p.shape + (n,)` and `phat.shape + (n,)`."""
        if self.table is not None:
            g, k, m = self.table.at(idx)
            uhat = k * phat[..., None] - m
            u = g * (p - phat[..., None])[..., None] + uhat[..., None, :]
            return u, uhat
        u = self.user_policy(t, p, phat[..., None])
        uhat = self.user_policy(t, phat, phat)
        return u.astype(p.dtype), uhat.astype(p.dtype)

    def running(self, t, idx, y: EnsembleState, weight=None):
        r"""Revenue and cost integrands at `(t, y)` (times `weight`), each `(n, M, B)`.

        For an affine policy $u_i = g_i x + \hat u_i$, $x = p - \hat p$, both are quadratics
        $A_i + B_i x + C_i x^2$ whose coefficients depend on the scenario only.
        """
        dtype = y.p.dtype
        _, _, _, c, r, rbar, lam = self._coef(dtype)
        disc = jnp.exp(-lam * (t - self.grid[0]).astype(dtype))
        w = jnp.ones((), dtype) if weight is None else jnp.asarray(weight, dtype)
        if self.table is None:
            u, uhat = self.controls(t, idx, y.p, y.phat)
            u = jnp.moveaxis(u, -1, 0)
            uh = jnp.moveaxis(uhat, -1, 0)[..., None]
            ci, ri, rbi, di = (z[:, None, None] for z in (c, r, rbar, disc))
            cost = ci * u + ri / 2 * u * u + rbi / 2 * uh * uh
            revenue = di * (y.phat[None, :, None] * u - cost)
            return w * revenue, w * cost
        g, k, m = self.table.at(idx)
        col = lambda z: z[:, None]  # noqa: E731
        uhat = col(k) * y.phat[None, :] - col(m)  # (n, M)
        h = y.phat[None, :] - col(c)
        rr = col(r + rbar) / 2
        a_rev = col(w * disc) * (h * uhat - rr * uhat * uhat)
        b_rev = col(w * disc * g) * (h - col(r) * uhat)
        c_rev = -w * disc * r * g * g / 2
        a_cost = w * (col(c) * uhat + rr * uhat * uhat)
        b_cost = col(w * g) * (col(c) + col(r) * uhat)
        c_cost = w * r * g * g / 2
        x = (y.p - y.phat[:, None])[None]
        e = lambda z: z[..., None]  # noqa: E731
        revenue = e(a_rev) + x * (e(b_rev) + e(e(c_rev)) * x)
        cost = e(a_cost) + x * (e(b_cost) + e(e(c_cost)) * x)
        return revenue, cost

    def drift(self, t, y: EnsembleState):
        dtype = y.p.dtype
        idx = self._idx(t)
        eta = self._coef(dtype)[0]
        a = self.game.market.a(t).astype(dtype)
        if self.table is not None:
            g, k, m = self.table.at(idx)
            sum_uhat = jnp.sum(k) * y.phat - jnp.sum(m)
            dphat = eta * (a - sum_uhat - y.phat)
            dp = dphat[:, None] - eta * (1 + jnp.sum(g)) * (y.p - y.phat[:, None])
        else:
            u, uhat = self.controls(t, idx, y.p, y.phat)
            dp = eta * (a - jnp.sum(u, -1) - y.p)
            dphat = eta * (a - jnp.sum(uhat, -1) - y.phat)
        if self.track:
            rev, cost = self.running(t, idx, y)
        else:
            rev, cost = y.revenue, y.cost
        return dphat, dp, rev, cost

    # -- diffrax term interface ---------------------------------------------------
    def vf(self, t, y, args):
        return self.drift(t, y)

    def contr(self, t0, t1, **kwargs):
        k = self._idx(t0)
        return t1 - t0, self.idio.noise(k), self.common.noise(k)

    def prod(self, vf, control):
        dphat, dp, rev, cost = vf
        dt, (b_idio, j_idio), (b_common, j_common) = control
        dtype = dp.dtype
        _, sigma, sigma_o = self._coef(dtype)[:3]
        dt = jnp.asarray(dt).astype(dtype)
        d_common = sigma_o * b_common
        if j_common is not None:
            d_common = j_common.add_to(d_common)
        phat = dphat * dt + d_common
        p = dp * dt + sigma * b_idio + d_common[..., None]
        if j_idio is not None:
            p = j_idio.add_to(p)
        if self.track:
            rev, cost = rev * dt, cost * dt
        else:
            rev, cost = jnp.zeros_like(rev), jnp.zeros_like(cost)
        return EnsembleState(phat, p, rev, cost, _overflow(j_idio, j_common, dtype))

    # -- the grid step -------------------------------------------------------------------
    def step(self, scheme, t0, t1, y: EnsembleState) -> EnsembleState:
        if scheme == "euler":
            return jax.tree.map(jnp.add, y, self.vf_prod(t0, y, None, self.contr(t0, t1)))
        return self.exponential_step(t0, t1, y)

    def exponential_step(self, t0, t1, y: EnsembleState) -> EnsembleState:
        dtype = y.p.dtype
        k = self._idx(t0)
        eta, sigma, sigma_o = self._coef(dtype)[:3]
        dt = (t1 - t0).astype(dtype)
        g, kk, m = self.mid.at(k)
        a = self.game.market.a((t0 + t1) / 2).astype(dtype)
        kappa_x = eta * (1 + jnp.sum(g))
        kappa_h = eta * (1 + jnp.sum(kk))
        b = eta * (a + jnp.sum(m))
        b_idio, j_idio = self.idio.noise(k, decay=kappa_x)
        b_common, j_common = self.common.noise(k, decay=kappa_h)
        phat1 = jnp.exp(-kappa_h * dt) * y.phat + b * dt * phi1(-kappa_h * dt) + sigma_o * b_common
        if j_common is not None:
            phat1 = j_common.add_to(phat1)
        # p1 = phat1 + e^{-kappa_x dt} (p - phat) + sigma dB + dJ, in one pass over the paths.
        p1 = phat1[..., None] + jnp.exp(-kappa_x * dt) * (y.p - y.phat[..., None]) + sigma * b_idio
        if j_idio is not None:
            p1 = j_idio.add_to(p1)
        rev, cost = y.revenue, y.cost
        if self.track:
            r0, c0 = self.running(t0, k, y, weight=dt)
            rev, cost = rev + r0, cost + c0
        over = y.overflow + _overflow(j_idio, j_common, dtype)
        return EnsembleState(phat1, p1, rev, cost, over)


def _overflow(j_idio, j_common, dtype):
    total = jnp.zeros((), dtype)
    for j in (j_idio, j_common):
        if j is not None:
            total = total + j.overflow.astype(dtype)
    return total
