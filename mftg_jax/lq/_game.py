r"""The general LQ mean-field-type game with regime switching (slides, equations (1)-(2)).

Scalar state $x$, players $i = 1..n$, regime $s(t) \in \{0..K-1\}$ a Markov chain with
generator $Q = (q_{ss'})$. In regime $s$

$$dx = b\,dt + \sigma\,dB + \sum_m \mu_m\,d\tilde N_m + \sigma_o\,dB_o
       + \sum_m \mu_{o,m}\,d\tilde N_{o,m}$$

with every coefficient $z \in \{b, \sigma, \mu_m, \sigma_o, \mu_{o,m}\}$ affine,

$$z = z_0 + z_1 x + \bar z_1 \hat x + \sum_j z_{j2} u_j + \sum_j \bar z_{j2} \hat u_j,$$

$\tilde N_m$ ($\tilde N_{o,m}$) compensated Poisson processes of intensity $\nu_m$
($\nu_{o,m}$) for the marks $m$ of a finite mark set, and
$\hat x = E[x \mid \mathcal F^{B_o, N_o, s}_t]$. Player $i$ minimises the expected value of

$$\begin{aligned}L_i = {}&\tfrac12 q_{iT} x_T^2 + \tfrac12\bar q_{iT}\hat x_T^2 + \epsilon_{i3T}x_T
   + \bar\epsilon_{i3T}\hat x_T \\
 &+ \int e^{-\Lambda_i}\big(\tfrac12(q_i x^2 + \bar q_i\hat x^2 + r_i u_i^2 + \bar r_i\hat u_i^2)
   + \epsilon_{i1}xu_i + \bar\epsilon_{i1}\hat x\hat u_i + \epsilon_{i2}u_i
   + \bar\epsilon_{i2}\hat u_i + \epsilon_{i3}x + \bar\epsilon_{i3}\hat x\big)dt \\
 &+ \int e^{-\Lambda_i}\big(\xi_{i0} + \xi_{i1}\hat x + \tfrac12\xi_{i2}x^2
   + \tfrac12\bar\xi_{i2}\hat x^2\big)\,dB_o + \sum_m \int e^{-\Lambda_i}(\dots)_m\,
   d\tilde N_{o,m}\end{aligned}$$

with discount $\Lambda_i(t) = \int_{t_0}^t \lambda_i(s(v))\,dv$ (terminal terms discounted
too). All running coefficients may depend on the regime and on time through a Fourier series
$z(t) = z + \sum_h z^{\cos}_h\cos(2\pi h t/T) + z^{\sin}_h\sin(2\pi h t/T)$.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int
import numpy as np

from .._validation import check_field, check_instance, is_concrete, type_problem


def _int(x) -> Array:
    if isinstance(x, jax.core.Tracer):
        return x
    return jnp.asarray(x, dtype=jnp.int32)


def _float(x) -> Array:
    problem = type_problem(x)
    if problem is not None:
        raise ValueError(f"a general-game coefficient must be a number or an array, got {problem}")
    return jnp.asarray(x, dtype=float)


class Affine(eqx.Module):
    r"""An affine coefficient $z_0 + z_1x + \bar z_1\hat x + \sum_j z_{j2}u_j
    + \sum_j\bar z_{j2}\hat u_j$ (slides, equation (1)), one per regime (and per mark).

    **Arguments:** (leading axes `(K,)` or `(K, M)` for $M$ jump marks)

    - `const`: $z_0$; `x`: $z_1$; `xhat`: $\bar z_1$, each of shape `(K, *marks)`.
    - `u`: $z_{j2}$; `uhat`: $\bar z_{j2}$, each of shape `(K, *marks, n)`.
    """

    const: Float[Array, " K *M"] = eqx.field(converter=_float)
    x: Float[Array, " K *M"] = eqx.field(converter=_float)
    xhat: Float[Array, " K *M"] = eqx.field(converter=_float)
    u: Float[Array, " K *M n"] = eqx.field(converter=_float)
    uhat: Float[Array, " K *M n"] = eqx.field(converter=_float)


class Jumps(eqx.Module):
    r"""Compensated Poisson jumps on a finite mark set: mark $m$ arrives at rate $\nu_m \ge 0$
    and moves the state by the affine amount `size` (an [`Affine`][] with a mark axis).

    **Arguments:**

    - `intensity`: $\nu_m$, shape `(K, M)`.
    - `size`: the jump amplitudes $\mu(\theta_m)$, shapes `(K, M)` and `(K, M, n)`.
    """

    intensity: Float[Array, " K M"] = eqx.field(converter=_float)
    size: Affine


class Dynamics(eqx.Module):
    """The state equation's coefficients (slides, equation (1)).

    **Arguments:**

    - `drift`: $b$; `diffusion`: $\\sigma$; `common_diffusion`: $\\sigma_o$ ([`Affine`][]).
    - `jumps`: idiosyncratic $\\mu$; `common_jumps`: common $\\mu_o$ ([`Jumps`][]).
    """

    drift: Affine
    diffusion: Affine
    jumps: Jumps
    common_diffusion: Affine
    common_jumps: Jumps


_RUNNING = ("q", "qbar", "r", "rbar", "eps1", "eps1bar", "eps2", "eps2bar", "eps3", "eps3bar")


class RunningCost(eqx.Module):
    r"""Per-regime, per-player running cost of equation (2), each of shape `(K, n)`.

    $\tfrac12(q x^2 + \bar q\hat x^2 + r u_i^2 + \bar r\hat u_i^2) + \epsilon_1 x u_i
    + \bar\epsilon_1\hat x\hat u_i + \epsilon_2 u_i + \bar\epsilon_2\hat u_i + \epsilon_3 x
    + \bar\epsilon_3\hat x$, discounted at rate `lam` $\lambda_i(s) \ge 0$.
    """

    q: Float[Array, " K n"] = eqx.field(converter=_float)
    qbar: Float[Array, " K n"] = eqx.field(converter=_float)
    r: Float[Array, " K n"] = eqx.field(converter=_float)
    rbar: Float[Array, " K n"] = eqx.field(converter=_float)
    eps1: Float[Array, " K n"] = eqx.field(converter=_float)
    eps1bar: Float[Array, " K n"] = eqx.field(converter=_float)
    eps2: Float[Array, " K n"] = eqx.field(converter=_float)
    eps2bar: Float[Array, " K n"] = eqx.field(converter=_float)
    eps3: Float[Array, " K n"] = eqx.field(converter=_float)
    eps3bar: Float[Array, " K n"] = eqx.field(converter=_float)
    lam: Float[Array, " K n"] = eqx.field(converter=_float)


class CostNoise(eqx.Module):
    r"""The noisy cost-measurement terms of equation (2) (martingale increments).

    $(\xi_{0} + \xi_{1}\hat x + \tfrac12\xi_{2}x^2 + \tfrac12\bar\xi_{2}\hat x^2)\,dB_o$ and
    the same with the `jump_*` coefficients per common mark against $d\tilde N_{o,m}$.

    **Arguments:** `xi0, xi1, xi2, xi2bar` of shape `(K, n)`; `jump_xi0, jump_xi1,
    jump_xi2, jump_xi2bar` of shape `(K, M_o, n)`.
    """

    xi0: Float[Array, " K n"] = eqx.field(converter=_float)
    xi1: Float[Array, " K n"] = eqx.field(converter=_float)
    xi2: Float[Array, " K n"] = eqx.field(converter=_float)
    xi2bar: Float[Array, " K n"] = eqx.field(converter=_float)
    jump_xi0: Float[Array, " K Mo n"] = eqx.field(converter=_float)
    jump_xi1: Float[Array, " K Mo n"] = eqx.field(converter=_float)
    jump_xi2: Float[Array, " K Mo n"] = eqx.field(converter=_float)
    jump_xi2bar: Float[Array, " K Mo n"] = eqx.field(converter=_float)


class TerminalCost(eqx.Module):
    r"""$\tfrac12 q_T x_T^2 + \tfrac12\bar q_T\hat x_T^2 + \epsilon_{3T}x_T
    + \bar\epsilon_{3T}\hat x_T$ per regime and player, each of shape `(K, n)`."""

    q: Float[Array, " K n"] = eqx.field(converter=_float)
    qbar: Float[Array, " K n"] = eqx.field(converter=_float)
    eps3: Float[Array, " K n"] = eqx.field(converter=_float)
    eps3bar: Float[Array, " K n"] = eqx.field(converter=_float)


class Coefficients(eqx.Module):
    """Everything that may vary in time: the dynamics, the running cost and the cost noise."""

    dynamics: Dynamics
    cost: RunningCost
    cost_noise: CostNoise


class LQGame(eqx.Module):
    r"""A general LQ mean-field-type game with regime switching (module docstring).

    **Arguments:**

    - `coefficients`: the time-constant part of the running [`Coefficients`][].
    - `terminal`: the [`TerminalCost`][].
    - `generator`: the regime generator $Q$, shape `(K, K)`: off-diagonal rates $\ge 0$,
      rows summing to zero.
    - `t0`, `t1`: the horizon; `x0`, `xhat0`: initial state and conditional mean (the value
      formula uses $E[(x_0-\hat x_0)^2] = (x_0-\hat x_0)^2$); `regime0`: initial regime.
    - `period`, `cos`, `sin`: optional Fourier modulation of the coefficients: `cos` and
      `sin` are [`Coefficients`][] with a leading harmonic axis `(H, ...)`.
    """

    coefficients: Coefficients
    terminal: TerminalCost
    generator: Float[Array, " K K"] = eqx.field(converter=_float)
    t0: Float[Array, ""] = eqx.field(converter=_float)
    t1: Float[Array, ""] = eqx.field(converter=_float)
    x0: Float[Array, ""] = eqx.field(converter=_float)
    xhat0: Float[Array, ""] = eqx.field(converter=_float)
    regime0: Int[Array, ""] = eqx.field(converter=_int, default=0)
    period: Float[Array, ""] = eqx.field(converter=_float, default=1.0)
    cos: Coefficients | None = None
    sin: Coefficients | None = None

    def __check_init__(self):
        _validate(self)

    @property
    def n(self) -> int:
        """Number of players."""
        return self.coefficients.cost.r.shape[-1]

    @property
    def num_regimes(self) -> int:
        """Number of regimes $K$."""
        return self.generator.shape[-1]

    @property
    def harmonics(self) -> int:
        """Number of Fourier harmonics $H$ of the time-dependent coefficients."""
        return 0 if self.cos is None else self.cos.cost.r.shape[-3]

    def at(self, t) -> Coefficients:
        """The running coefficients at time `t`."""
        if self.cos is None:
            return self.coefficients
        h = jnp.arange(1, self.cos.cost.r.shape[-3] + 1, dtype=self.period.dtype)
        w = 2 * jnp.pi * h * t / self.period
        cw, sw = jnp.cos(w), jnp.sin(w)
        return jax.tree.map(
            lambda m, c, s: m + jnp.tensordot(cw, c, axes=1) + jnp.tensordot(sw, s, axes=1),
            self.coefficients,
            self.cos,
            self.sin,
        )


def _leaf_names(tree: Coefficients) -> list[tuple[str, Array]]:
    out = []
    dyn = tree.dynamics
    for fam in ("drift", "diffusion", "common_diffusion"):
        aff = getattr(dyn, fam)
        out += [(f"{fam}.{k}", getattr(aff, k)) for k in ("const", "x", "xhat", "u", "uhat")]
    for fam in ("jumps", "common_jumps"):
        jmp = getattr(dyn, fam)
        out.append((f"{fam}.intensity", jmp.intensity))
        out += [(f"{fam}.{k}", getattr(jmp.size, k)) for k in ("const", "x", "xhat", "u", "uhat")]
    out += [(f"cost.{k}", getattr(tree.cost, k)) for k in (*_RUNNING, "lam")]
    out += [
        (f"cost_noise.{k}", getattr(tree.cost_noise, k))
        for k in ("xi0", "xi1", "xi2", "xi2bar", "jump_xi0", "jump_xi1", "jump_xi2", "jump_xi2bar")
    ]
    return out


def _expected_shapes(K: int, n: int, M: int, Mo: int) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for fam, marks in (
        ("drift", ()),
        ("diffusion", ()),
        ("common_diffusion", ()),
        ("jumps", (M,)),
        ("common_jumps", (Mo,)),
    ):
        for k in ("const", "x", "xhat"):
            shapes[f"{fam}.{k}"] = (K, *marks)
        for k in ("u", "uhat"):
            shapes[f"{fam}.{k}"] = (K, *marks, n)
    shapes["jumps.intensity"] = (K, M)
    shapes["common_jumps.intensity"] = (K, Mo)
    for k in (*_RUNNING, "lam"):
        shapes[f"cost.{k}"] = (K, n)
    for k in ("xi0", "xi1", "xi2", "xi2bar"):
        shapes[f"cost_noise.{k}"] = (K, n)
        shapes[f"cost_noise.jump_{k}"] = (K, Mo, n)
    return shapes


def _lower_bound(game: LQGame, *names: str) -> np.ndarray:
    """Lower bound over time of the sum of the named coefficients (base - sum |harmonics|)."""
    base = sum(np.asarray(dict(_leaf_names(game.coefficients))[k], np.float64) for k in names)
    if game.cos is None:
        return base
    for tree in (game.cos, game.sin):
        leaves = dict(_leaf_names(tree))
        harm = sum(np.asarray(leaves[k], np.float64) for k in names)
        base = base - np.sum(np.abs(harm), axis=0)
    return base


def _validate(game: LQGame) -> None:
    check_instance("LQGame(coefficients=...)", game.coefficients, Coefficients)
    check_instance("LQGame(terminal=...)", game.terminal, TerminalCost)
    co = game.coefficients
    if not is_concrete(jax.tree.leaves(game)):
        return
    Q = game.generator
    if Q.ndim != 2 or Q.shape[0] != Q.shape[1] or Q.shape[0] < 1:
        raise ValueError(f"generator must be a square (K, K) matrix with K >= 1, got {Q.shape}")
    K = Q.shape[0]
    r = co.cost.r
    if r.ndim != 2 or r.shape[-1] < 1:
        raise ValueError(f"cost.r must have shape (K, n) with n >= 1 players, got {r.shape}")
    n = r.shape[-1]
    M = co.dynamics.jumps.intensity.shape[-1] if co.dynamics.jumps.intensity.ndim == 2 else -1
    Mo = (
        co.dynamics.common_jumps.intensity.shape[-1]
        if co.dynamics.common_jumps.intensity.ndim == 2
        else -1
    )
    shapes = _expected_shapes(K, n, M, Mo)
    for name, leaf in _leaf_names(co):
        if leaf.shape != shapes[name]:
            raise ValueError(
                f"{name} must have shape {shapes[name]} (K={K} regimes, n={n} players, "
                f"{M} jump marks, {Mo} common jump marks), got {leaf.shape}"
            )
        check_field(name, leaf, "finite reals")
    for name, leaf in (
        ("terminal." + k, getattr(game.terminal, k)) for k in ("q", "qbar", "eps3", "eps3bar")
    ):
        if leaf.shape != (K, n):
            raise ValueError(f"{name} must have shape {(K, n)}, got {leaf.shape}")
        check_field(name, leaf, "finite reals")
    for harm, tree in (("cos", game.cos), ("sin", game.sin)):
        if (tree is None) != (game.cos is None):
            raise ValueError("cos and sin harmonics must be given together")
        if tree is None:
            continue
        H = tree.cost.r.shape[0]
        for name, leaf in _leaf_names(tree):
            if leaf.shape != (H, *shapes[name]):
                raise ValueError(
                    f"{harm}.{name} must have shape {(H, *shapes[name])} ({H} harmonics), "
                    f"got {leaf.shape}"
                )
            check_field(f"{harm}.{name}", leaf, "finite reals")
    check_field("period", game.period, "> 0", lambda v: v > 0)
    check_field("generator", Q, "finite reals")
    Qn = np.asarray(Q, dtype=np.float64)
    off = Qn - np.diag(np.diag(Qn))
    if np.any(off < 0):
        i, j = np.argwhere(off < 0)[0]
        raise ValueError(
            f"generator off-diagonal rates must be >= 0, got generator[{i}][{j}] = {Qn[i, j]:g}"
        )
    rows = Qn.sum(axis=1)
    scale = np.maximum(1.0, np.abs(Qn).max())
    if np.any(np.abs(rows) > 1e-9 * scale):
        i = int(np.argmax(np.abs(rows)))
        raise ValueError(
            f"generator rows must sum to 0 (diagonal = -sum of the row's rates), row {i} "
            f"sums to {rows[i]:g}"
        )
    for name in ("t0", "t1", "x0", "xhat0"):
        check_field(name, getattr(game, name), "a finite real")
    if not float(game.t1) > float(game.t0):
        raise ValueError(f"t1 must be > t0, got t0={float(game.t0):g}, t1={float(game.t1):g}")
    if is_concrete(game.regime0) and not 0 <= int(game.regime0) < K:
        raise ValueError(f"regime0 must be in 0..{K - 1}, got {int(game.regime0)}")
    _bad("cost.r", _lower_bound(game, "cost.r"), lambda v: v > 0, "> 0", "player")
    _bad(
        "cost.rbar",
        _lower_bound(game, "cost.r", "cost.rbar"),
        lambda v: v > 0,
        "such that r + rbar > 0",
        "player",
    )
    _bad("cost.lam", _lower_bound(game, "cost.lam"), lambda v: v >= 0, ">= 0", "player")
    for fam in ("jumps", "common_jumps"):
        lo = _lower_bound(game, f"{fam}.intensity")
        _bad(f"{fam}.intensity", lo, lambda v: v >= 0, ">= 0", "mark")


def _bad(name: str, value: np.ndarray, ok, allowed: str, label: str) -> None:
    good = ok(value)
    if not np.all(good):
        idx = tuple(int(i) for i in np.argwhere(~good)[0])
        what = "r + rbar" if name == "cost.rbar" else name
        raise ValueError(
            f"{name} must be {allowed} at all times, got {what} = {float(value[idx]):g} "
            f"in regime {idx[0]}, {label} {idx[1]}"
        )


def zero_coefficients(K: int, n: int, marks: int = 0, common_marks: int = 0) -> Coefficients:
    """All-zero running [`Coefficients`][] for `K` regimes, `n` players and the mark counts.

    Use with `eqx.tree_at` (or the TOML loader) to set the non-zero ones. Note that
    `cost.r` must be made positive before a game accepts them.
    """

    def z(*shape):
        return jnp.zeros(shape)

    def affine(*marks_):
        return Affine(
            z(K, *marks_), z(K, *marks_), z(K, *marks_), z(K, *marks_, n), z(K, *marks_, n)
        )

    dyn = Dynamics(
        drift=affine(),
        diffusion=affine(),
        jumps=Jumps(z(K, marks), affine(marks)),
        common_diffusion=affine(),
        common_jumps=Jumps(z(K, common_marks), affine(common_marks)),
    )
    cost = RunningCost(*(z(K, n) for _ in range(11)))
    noise = CostNoise(*(z(K, n) for _ in range(4)), *(z(K, common_marks, n) for _ in range(4)))
    return Coefficients(dyn, cost, noise)
