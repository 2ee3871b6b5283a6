r"""The vector-state LQ mean-field-type game with regime switching (docs/vector_lq.md).

State $x \in \mathbb R^d$, players $i = 1..n$ with controls $u_i \in \mathbb R^m$, regime
$s(t) \in \{0..K-1\}$ a Markov chain with generator $Q$. In regime $s$

$$dx = b\,dt + \sum_k\sigma_k\,dB_k + \sum_m\mu_m\,d\tilde N_m + \sum_k\sigma_{o,k}\,dB_{o,k}
       + \sum_m\mu_{o,m}\,d\tilde N_{o,m},$$

every coefficient $z \in \{b, \sigma_k, \mu_m, \sigma_{o,k}, \mu_{o,m}\}$ an affine map into
$\mathbb R^d$,

$$z = z_0 + Z_1x + \bar Z_1\hat x + \sum_j Z_{j2}u_j + \sum_j\bar Z_{j2}\hat u_j,$$

($b = c + Ax + \bar A\hat x + \sum_j B_ju_j + \bar B_j\hat u_j$), $\tilde N$ compensated
Poisson processes on finite mark sets and $\hat x = E[x\mid\mathcal F^{B_o,N_o,s}_t]$.
Player $i$ minimises $E\big[e^{-\Lambda_i(T)}h_i + \int e^{-\Lambda_i}\ell_i\,dt\big]$ with

$$\ell_i = \tfrac12(x^\top q_ix + \hat x^\top\bar q_i\hat x + u_i^\top r_iu_i
  + \hat u_i^\top\bar r_i\hat u_i) + x^\top\epsilon_{i1}u_i + \hat x^\top\bar\epsilon_{i1}\hat u_i
  + \epsilon_{i2}^\top u_i + \bar\epsilon_{i2}^\top\hat u_i + \epsilon_{i3}^\top x
  + \bar\epsilon_{i3}^\top\hat x,$$

$h_i = \tfrac12 x^\top q_{iT}x + \tfrac12\hat x^\top\bar q_{iT}\hat x + \epsilon_{i3T}^\top x
+ \bar\epsilon_{i3T}^\top\hat x$ and $\Lambda_i = \int\lambda_i(s(v))\,dv$. With $d = m = 1$ and
one Brownian motion per family this is the scalar game of [`LQGame`][mftg_jax.lq.LQGame]
(without its Fourier modulation and cost-measurement noise); [`vector_game_from_scalar`][]
converts one.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int
import numpy as np

from .._validation import check_field, is_concrete
from ._game import LQGame


def _float(x) -> Array:
    return jnp.asarray(x, dtype=float)


def _int(x) -> Array:
    if isinstance(x, jax.core.Tracer):
        return x
    return jnp.asarray(x, dtype=jnp.int32)


class VectorAffine(eqx.Module):
    r"""An affine coefficient $z_0 + Z_1x + \bar Z_1\hat x + \sum_j Z_{j2}u_j
    + \sum_j\bar Z_{j2}\hat u_j$ with values in $\mathbb R^d$, one per regime (and channel).

    **Arguments:** (leading axes `(K,)` for the drift, `(K, C)` for $C$ noise channels:
    Brownian motions or jump marks)

    - `const`: $z_0$, `(K, *C, d)`; `x`: $Z_1$ and `xhat`: $\bar Z_1$, `(K, *C, d, d)`.
    - `u`: $Z_{j2}$ and `uhat`: $\bar Z_{j2}$, `(K, *C, n, d, m)`.
    """

    const: Float[Array, "K *C d"] = eqx.field(converter=_float)
    x: Float[Array, "K *C d d"] = eqx.field(converter=_float)
    xhat: Float[Array, "K *C d d"] = eqx.field(converter=_float)
    u: Float[Array, "K *C n d m"] = eqx.field(converter=_float)
    uhat: Float[Array, "K *C n d m"] = eqx.field(converter=_float)


class VectorJumps(eqx.Module):
    r"""Compensated Poisson jumps on a finite mark set: mark $m$ arrives at rate $\nu_m \ge 0$
    and moves the state by `size` (a [`VectorAffine`][] with a mark axis).

    **Arguments:** `intensity` $\nu$, `(K, M)`; `size`, shapes `(K, M, d)` ... `(K, M, n, d, m)`.
    """

    intensity: Float[Array, "K M"] = eqx.field(converter=_float)
    size: VectorAffine


class VectorDynamics(eqx.Module):
    """The state equation's coefficients (module docstring).

    **Arguments:** `drift` $b$ (no channel axis); `diffusion` ($p$ idiosyncratic Brownian
    motions) and `common_diffusion` ($p_o$ common ones), [`VectorAffine`][]s with a channel
    axis; `jumps` and `common_jumps`, [`VectorJumps`][].
    """

    drift: VectorAffine
    diffusion: VectorAffine
    jumps: VectorJumps
    common_diffusion: VectorAffine
    common_jumps: VectorJumps


class VectorRunningCost(eqx.Module):
    r"""Per-regime, per-player running cost $\ell_i$ (module docstring).

    **Arguments:** `q`, `qbar` `(K, n, d, d)` symmetric; `r`, `rbar` `(K, n, m, m)` symmetric
    with $r \succ 0$ and $r + \bar r \succ 0$; `eps1`, `eps1bar` `(K, n, d, m)`; `eps2`,
    `eps2bar` `(K, n, m)`; `eps3`, `eps3bar` `(K, n, d)`; the discount rate `lam`
    $\lambda_i(s) \ge 0$, `(K, n)`.
    """

    q: Float[Array, "K n d d"] = eqx.field(converter=_float)
    qbar: Float[Array, "K n d d"] = eqx.field(converter=_float)
    r: Float[Array, "K n m m"] = eqx.field(converter=_float)
    rbar: Float[Array, "K n m m"] = eqx.field(converter=_float)
    eps1: Float[Array, "K n d m"] = eqx.field(converter=_float)
    eps1bar: Float[Array, "K n d m"] = eqx.field(converter=_float)
    eps2: Float[Array, "K n m"] = eqx.field(converter=_float)
    eps2bar: Float[Array, "K n m"] = eqx.field(converter=_float)
    eps3: Float[Array, "K n d"] = eqx.field(converter=_float)
    eps3bar: Float[Array, "K n d"] = eqx.field(converter=_float)
    lam: Float[Array, "K n"] = eqx.field(converter=_float)


class VectorTerminalCost(eqx.Module):
    r"""$h_i = \tfrac12x^\top q_Tx + \tfrac12\hat x^\top\bar q_T\hat x + \epsilon_{3T}^\top x
    + \bar\epsilon_{3T}^\top\hat x$: `q`, `qbar` `(K, n, d, d)` symmetric, `eps3`,
    `eps3bar` `(K, n, d)`."""

    q: Float[Array, "K n d d"] = eqx.field(converter=_float)
    qbar: Float[Array, "K n d d"] = eqx.field(converter=_float)
    eps3: Float[Array, "K n d"] = eqx.field(converter=_float)
    eps3bar: Float[Array, "K n d"] = eqx.field(converter=_float)


class VectorLQGame(eqx.Module):
    r"""A vector-state LQ mean-field-type game with regime switching (module docstring).

    **Arguments:**

    - `dynamics`: the [`VectorDynamics`][]; `cost`: the [`VectorRunningCost`][];
      `terminal`: the [`VectorTerminalCost`][].
    - `generator`: the regime generator $Q$, `(K, K)`, off-diagonal rates $\ge 0$, rows
      summing to zero.
    - `t0 < t1`: the horizon; `x0`, `xhat0`: initial state and conditional mean, `(d,)`;
      `regime0`: the initial regime.
    """

    dynamics: VectorDynamics
    cost: VectorRunningCost
    terminal: VectorTerminalCost
    generator: Float[Array, "K K"] = eqx.field(converter=_float)
    t0: Float[Array, ""] = eqx.field(converter=_float)
    t1: Float[Array, ""] = eqx.field(converter=_float)
    x0: Float[Array, " d"] = eqx.field(converter=_float)
    xhat0: Float[Array, " d"] = eqx.field(converter=_float)
    regime0: Int[Array, ""] = eqx.field(converter=_int, default=0)

    def __check_init__(self):
        _validate(self)

    @property
    def num_regimes(self) -> int:
        """Number of regimes $K$."""
        return self.cost.r.shape[-4]

    @property
    def n(self) -> int:
        """Number of players."""
        return self.cost.r.shape[-3]

    @property
    def d(self) -> int:
        """State dimension."""
        return self.dynamics.drift.const.shape[-1]

    @property
    def m(self) -> int:
        """Control dimension of each player."""
        return self.cost.r.shape[-1]


def _affine_shapes(name, K, C, n, d, m):
    lead = (K, *C)
    return {
        f"{name}.const": (*lead, d),
        f"{name}.x": (*lead, d, d),
        f"{name}.xhat": (*lead, d, d),
        f"{name}.u": (*lead, n, d, m),
        f"{name}.uhat": (*lead, n, d, m),
    }


def _leaves(game: VectorLQGame) -> dict[str, Array]:
    dyn = game.dynamics
    out = {}
    for name, aff in (
        ("drift", dyn.drift),
        ("diffusion", dyn.diffusion),
        ("common_diffusion", dyn.common_diffusion),
        ("jumps.size", dyn.jumps.size),
        ("common_jumps.size", dyn.common_jumps.size),
    ):
        for k in ("const", "x", "xhat", "u", "uhat"):
            out[f"{name}.{k}"] = getattr(aff, k)
    out["jumps.intensity"] = dyn.jumps.intensity
    out["common_jumps.intensity"] = dyn.common_jumps.intensity
    for k in ("q", "qbar", "r", "rbar", "eps1", "eps1bar", "eps2", "eps2bar", "eps3", "eps3bar"):
        out[f"cost.{k}"] = getattr(game.cost, k)
    out["cost.lam"] = game.cost.lam
    for k in ("q", "qbar", "eps3", "eps3bar"):
        out[f"terminal.{k}"] = getattr(game.terminal, k)
    return out


def _validate(game: VectorLQGame) -> None:
    if not is_concrete(jax.tree.leaves(game)):
        return
    r = game.cost.r
    if r.ndim != 4 or r.shape[-1] != r.shape[-2] or min(r.shape) < 1:
        raise ValueError(f"cost.r must have shape (K, n, m, m) with K, n, m >= 1, got {r.shape}")
    K, n, m = r.shape[0], r.shape[1], r.shape[2]
    c = game.dynamics.drift.const
    if c.ndim != 2 or c.shape[-1] < 1:
        raise ValueError(f"drift.const must have shape (K, d) with d >= 1, got {c.shape}")
    d = c.shape[-1]
    dyn = game.dynamics

    def channels(arr, name):
        if arr.ndim != 3:
            raise ValueError(f"{name} must have shape (K, C, d) (C channels), got {arr.shape}")
        return (arr.shape[1],)

    shapes = _affine_shapes("drift", K, (), n, d, m)
    for name, aff in (
        ("diffusion", dyn.diffusion),
        ("common_diffusion", dyn.common_diffusion),
        ("jumps.size", dyn.jumps.size),
        ("common_jumps.size", dyn.common_jumps.size),
    ):
        shapes |= _affine_shapes(name, K, channels(aff.const, f"{name}.const"), n, d, m)
    shapes["jumps.intensity"] = (K, dyn.jumps.size.const.shape[1])
    shapes["common_jumps.intensity"] = (K, dyn.common_jumps.size.const.shape[1])
    for k, s in (("q", (d, d)), ("qbar", (d, d)), ("r", (m, m)), ("rbar", (m, m))):
        shapes[f"cost.{k}"] = (K, n, *s)
    for k, s in (("eps1", (d, m)), ("eps1bar", (d, m)), ("eps2", (m,)), ("eps2bar", (m,))):
        shapes[f"cost.{k}"] = (K, n, *s)
    shapes["cost.eps3"] = shapes["cost.eps3bar"] = (K, n, d)
    shapes["cost.lam"] = (K, n)
    shapes["terminal.q"] = shapes["terminal.qbar"] = (K, n, d, d)
    shapes["terminal.eps3"] = shapes["terminal.eps3bar"] = (K, n, d)
    for name, leaf in _leaves(game).items():
        if leaf.shape != shapes[name]:
            raise ValueError(
                f"{name} must have shape {shapes[name]} (K={K} regimes, n={n} players, "
                f"d={d} states, m={m} controls), got {leaf.shape}"
            )
        check_field(name, leaf, "finite reals")
    for name in ("cost.q", "cost.qbar", "cost.r", "cost.rbar", "terminal.q", "terminal.qbar"):
        v = np.asarray(_leaves(game)[name], np.float64)
        asym = np.abs(v - np.swapaxes(v, -1, -2)).max()
        if asym > 1e-12 * max(1.0, np.abs(v).max()):
            raise ValueError(f"{name} must be symmetric matrices, asymmetry {asym:.3g}")
    rn = np.asarray(game.cost.r, np.float64)
    for name, mat in (("cost.r", rn), ("cost.rbar", rn + np.asarray(game.cost.rbar))):
        low = np.linalg.eigvalsh(mat).min(axis=-1)
        if np.any(low <= 0):
            s, i = np.argwhere(low <= 0)[0]
            what = "r" if name == "cost.r" else "r + rbar"
            raise ValueError(
                f"{name} must make {what} positive definite, got smallest eigenvalue "
                f"{low[s, i]:g} in regime {s}, player {i}"
            )
    check_field("cost.lam", game.cost.lam, ">= 0", lambda v: v >= 0)
    check_field("jumps.intensity", dyn.jumps.intensity, ">= 0", lambda v: v >= 0)
    check_field("common_jumps.intensity", dyn.common_jumps.intensity, ">= 0", lambda v: v >= 0)
    Q = np.asarray(game.generator, np.float64)
    if Q.shape != (K, K):
        raise ValueError(f"generator must have shape {(K, K)} (K={K} regimes), got {Q.shape}")
    check_field("generator", Q, "finite reals")
    off = Q - np.diag(np.diag(Q))
    if np.any(off < 0):
        raise ValueError("generator off-diagonal rates must be >= 0")
    if np.any(np.abs(Q.sum(axis=1)) > 1e-9 * max(1.0, np.abs(Q).max())):
        raise ValueError("generator rows must sum to 0 (diagonal = -sum of the row's rates)")
    for name in ("x0", "xhat0"):
        v = getattr(game, name)
        if v.shape != (d,):
            raise ValueError(f"{name} must have shape {(d,)}, got {v.shape}")
        check_field(name, v, "finite reals")
    check_field("t0", game.t0, "a finite real")
    check_field("t1", game.t1, "a finite real")
    if not float(game.t1) > float(game.t0):
        raise ValueError(f"t1 must be > t0, got t0={float(game.t0):g}, t1={float(game.t1):g}")
    if is_concrete(game.regime0) and not 0 <= int(game.regime0) < K:
        raise ValueError(f"regime0 must be in 0..{K - 1}, got {int(game.regime0)}")


def zero_vector_affine(K: int, n: int, d: int, m: int, channels: int | None = None):
    """An all-zero [`VectorAffine`][] (`channels=None`: a drift, no channel axis)."""
    lead = (K,) if channels is None else (K, channels)
    z = jnp.zeros
    return VectorAffine(
        z((*lead, d)), z((*lead, d, d)), z((*lead, d, d)), z((*lead, n, d, m)), z((*lead, n, d, m))
    )


def vector_dynamics(
    drift: VectorAffine,
    diffusion: VectorAffine | None = None,
    common_diffusion: VectorAffine | None = None,
    jumps: VectorJumps | None = None,
    common_jumps: VectorJumps | None = None,
) -> VectorDynamics:
    """[`VectorDynamics`][] with absent noise families filled by zero-channel ones."""
    K, d = drift.const.shape
    n, m = drift.u.shape[-3], drift.u.shape[-1]

    def none(c):
        return zero_vector_affine(K, n, d, m, c)

    return VectorDynamics(
        drift=drift,
        diffusion=none(0) if diffusion is None else diffusion,
        jumps=VectorJumps(jnp.zeros((K, 0)), none(0)) if jumps is None else jumps,
        common_diffusion=none(0) if common_diffusion is None else common_diffusion,
        common_jumps=(
            VectorJumps(jnp.zeros((K, 0)), none(0)) if common_jumps is None else common_jumps
        ),
    )


def vector_game_from_scalar(game: LQGame) -> VectorLQGame:
    """The scalar general game as a vector game with $d = m = 1$ (one Brownian motion per
    family). Its Fourier modulation must be absent; its cost-measurement noise is dropped
    (it has zero mean and changes no value)."""
    if game.cos is not None:
        raise ValueError("cos/sin: a game with Fourier-modulated coefficients has no vector form")
    co = game.coefficients
    dyn = co.dynamics

    def aff(a, brownian: bool):
        lead = (lambda v: v[:, None]) if brownian else (lambda v: v)
        return VectorAffine(
            lead(a.const)[..., None],
            lead(a.x)[..., None, None],
            lead(a.xhat)[..., None, None],
            lead(a.u)[..., None, None],
            lead(a.uhat)[..., None, None],
        )

    drift = VectorAffine(
        dyn.drift.const[..., None],
        dyn.drift.x[..., None, None],
        dyn.drift.xhat[..., None, None],
        dyn.drift.u[..., None, None],
        dyn.drift.uhat[..., None, None],
    )
    c = co.cost
    mat = lambda v: v[..., None, None]  # noqa: E731
    vec = lambda v: v[..., None]  # noqa: E731
    cost = VectorRunningCost(
        mat(c.q), mat(c.qbar), mat(c.r), mat(c.rbar), mat(c.eps1), mat(c.eps1bar),
        vec(c.eps2), vec(c.eps2bar), vec(c.eps3), vec(c.eps3bar), c.lam,
    )  # fmt: skip
    te = game.terminal
    terminal = VectorTerminalCost(mat(te.q), mat(te.qbar), vec(te.eps3), vec(te.eps3bar))
    return VectorLQGame(
        dynamics=VectorDynamics(
            drift=drift,
            diffusion=aff(dyn.diffusion, True),
            jumps=VectorJumps(dyn.jumps.intensity, aff(dyn.jumps.size, False)),
            common_diffusion=aff(dyn.common_diffusion, True),
            common_jumps=VectorJumps(dyn.common_jumps.intensity, aff(dyn.common_jumps.size, False)),
        ),
        cost=cost,
        terminal=terminal,
        generator=game.generator,
        t0=game.t0,
        t1=game.t1,
        x0=game.x0[None],
        xhat0=game.xhat0[None],
        regime0=game.regime0,
    )
