r"""Implicit Runge-Kutta stages in O(n) for fields whose agents meet only through a few totals.

An *aggregative* vector field over $n$ agents, each with $b$ coordinates $y_i \in \mathbb R^b$,
reads

$$f_i(t, y) = g_i\big(t, y_i, s(y)\big), \qquad s(y) \in \mathbb R^p,\ p \ll n:$$

agent $i$'s rate depends on its own coordinates and on $p$ totals $s$ (sums over all agents),
never on another agent directly. Its Jacobian is block diagonal plus rank $p$,

$$\frac{\partial f}{\partial y} = B + U W^\top, \qquad
  B = \operatorname{blockdiag}_i \frac{\partial g_i}{\partial y_i}\Big|_s,\quad
  U = \frac{\partial g}{\partial s},\quad W^\top = \frac{\partial s}{\partial y},$$

so the Newton matrix of an implicit stage, $A = I - c\,\partial f/\partial y$ (with $c$ the
tableau's diagonal times the step), is solved by the Woodbury identity in $O(n b^3 + n b p^2)$:

$$A^{-1} = M^{-1} + M^{-1}\tilde U\,(I_p - W^\top M^{-1}\tilde U)^{-1} W^\top M^{-1},
  \qquad M = I - cB,\ \tilde U = cU.$$

[`AggregativeChord`][] is an `optimistix` root finder that builds this matrix once per step
(as diffrax's `VeryChord` does) and plugs into diffrax's implicit solvers
(`diffrax.Kvaerno5(root_finder=...)`); the Runge-Kutta method stays diffrax's.
"""

import abc
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree
import optimistix as optx

from ._linalg import small_solve


class AbstractAggregativeField(eqx.Module):
    r"""A vector field $f_i(t, y) = g_i(t, y_i, s(y))$ whose agents meet only through totals.

    `y` is a pytree of $b$ arrays of shape `(n,)` (coordinate $l$ of every agent); $g_i$ may
    read agent $i$'s entries of every leaf and the totals, nothing else. Calling the field
    gives $f(t, y) = g(t, y, s(y))$, the ODE's right-hand side, with diffrax's signature.
    """

    @abc.abstractmethod
    def totals(self, y: PyTree[Array], args: Any) -> Array:
        """The totals $s(y)$, shape `(p,)`."""

    @abc.abstractmethod
    def local(self, t, y: PyTree[Array], totals: Array, args: Any) -> PyTree[Array]:
        """$g(t, y, s)$ with the totals held fixed, the same pytree structure as `y`."""

    def __call__(self, t, y, args):
        return self.local(t, y, self.totals(y, args), args)


# Layout: a vector is the list of its b leaves, each of shape (n,); a block or low-rank factor
# is an array of shape (b, b, n) or (b, p, n), agents last. Every product below is written out
# over the few coordinates and totals, so that it is element-wise over agents: XLA fuses it,
# and on a CPU it runs several times faster than the same `einsum` over (n, b, b) arrays.


def _matvec(A: Array, x: list[Array]) -> list[Array]:
    r"""$(A x)_l = \sum_k A_{lk} x_k$ for every agent; `A` of shape `(b, m, n)`."""
    return [sum(A[l, k] * x[k] for k in range(A.shape[1])) for l in range(A.shape[0])]


#: Full-precision products (an accelerator's default for float32 is TF32 or bfloat16).
_EXACT = jax.lax.Precision.HIGHEST


def _totals_apply(W: Sequence[Array], x: list[Array]) -> Array:
    r"""$W^\top x = \sum_l W_l x_l$, shape `(p,)`, for $b$ arrays $W_l$ of shape `(p, n)`:
    $b$ matrix-vector products (not $b p$ separate reductions, each a pass of its own on a
    CPU). The $W_l$ are best separate arrays: a product with a slice of one stacked
    `(b, p, n)` array first copies the slice out, on a CPU a pass as long as the product."""
    return sum(jnp.dot(W[l], x[l], precision=_EXACT) for l in range(len(W)))


def _invert_blocks(M: Array) -> Array:
    r"""$M_i^{-1}$ for every agent, `M` of shape `(b, b, n)` (agents on the last axis, the
    layout of the products here), by Gauss-Jordan elimination with partial pivoting written
    out over the $b \times b$ entries, so that every operation is element-wise over agents.
    (The same elimination over `(n, b, b)` arrays, `_linalg.small_solve`, spends most of its
    time moving the tiny trailing axes: 5x slower at $n = 10^5$, $b = 4$.) A singular block
    gives non-finite entries."""
    b = M.shape[0]
    one, zero = jnp.ones_like(M[0, 0]), jnp.zeros_like(M[0, 0])
    # Row i of the augmented matrix [M | I], entry by entry, each of shape (n,).
    rows = [[M[i, j] for j in range(b)] + [one if j == i else zero for j in range(b)]
            for i in range(b)]  # fmt: skip
    for k in range(b):
        # Per agent, bring the largest |entry| of column k among rows k, ..., b-1 to row k
        # (exchanges by selection, which are exact).
        for r in range(k + 1, b):
            swap = jnp.abs(rows[r][k]) > jnp.abs(rows[k][k])
            rows[k], rows[r] = (
                [jnp.where(swap, x, y) for x, y in zip(rows[r], rows[k])],
                [jnp.where(swap, y, x) for x, y in zip(rows[r], rows[k])],
            )
        rows[k] = [x / rows[k][k] for x in rows[k]]
        for r in range(b):
            if r != k:
                f = rows[r][k]
                rows[r] = [x - f * y for x, y in zip(rows[r], rows[k])]
    return jnp.stack([jnp.stack(row[b:]) for row in rows])


class AggregativeJacobian(eqx.Module):
    r"""The Newton matrix $A = I - c\,(B + U W^\top)$ of an aggregative field, factorised.

    Row and column $(l, i)$ is coordinate $l$ of agent $i$; `solve` applies $A^{-1}$ by the
    Woodbury identity (module docstring), `mv` applies $A$, both in $O(n)$.
    Built by [`aggregative_jacobian`][].
    """

    blocks: Array  # (b, b, n): M_i = I - c B_i
    scaled_sensitivity: Array  # (b, p, n): c U
    weights: tuple[Array, ...]  # b arrays (p, n): W, the gradients of the totals
    block_inverse: Array  # (b, b, n): M_i^{-1}
    lowrank: Array  # (b, p, n): M^{-1} c U
    capacitance_inverse: Array  # (p, p): (I_p - W^T M^{-1} c U)^{-1}
    treedef: Any = eqx.field(static=True)

    def solve(self, rhs: PyTree[Array]) -> PyTree[Array]:
        """$A^{-1}$ `rhs`, a pytree shaped like $y$."""
        x0 = _matvec(self.block_inverse, jax.tree.leaves(rhs))
        v = self.capacitance_inverse @ _totals_apply(self.weights, x0)
        x = [a + d for a, d in zip(x0, _matvec(self.lowrank, list(v)))]
        return jax.tree.unflatten(self.treedef, x)

    def mv(self, v: PyTree[Array]) -> PyTree[Array]:
        """$A$ `v`, a pytree shaped like $y$."""
        x = jax.tree.leaves(v)
        w = _totals_apply(self.weights, x)
        Av = [
            a - d
            for a, d in zip(_matvec(self.blocks, x), _matvec(self.scaled_sensitivity, list(w)))
        ]
        return jax.tree.unflatten(self.treedef, Av)

    def as_matrix(self) -> Array:
        """$A$ as a dense `(b n, b n)` matrix, leaf after leaf (the order of
        `jax.flatten_util.ravel_pytree`); for checks on small $n$ only."""
        b, _, n = self.blocks.shape
        eye = jnp.eye(n, dtype=self.blocks.dtype)
        # (l, i, k, j): row (leaf l, agent i), column (leaf k, agent j).
        block = jnp.einsum("lki,ij->likj", self.blocks, eye)
        low = jnp.einsum("lpi,kpj->likj", self.scaled_sensitivity, jnp.stack(self.weights))
        return (block - low).reshape(b * n, b * n)


def aggregative_jacobian(
    field: AbstractAggregativeField, t, y: PyTree[Array], args: Any, c
) -> AggregativeJacobian:
    r"""Build and factorise $A = I - c\,\partial f/\partial y$ at $(t, y)$ in $O(n)$.

    $B$ comes from $b$ Jacobian-vector products of $g$ at fixed totals (tangent: coordinate
    $k$ of every agent at once, which is exact because $g_i$ reads only agent $i$), $U$ from
    $p$ products with respect to the totals, $W$ from $p$ vector-Jacobian products of $s$.

    **Arguments:**

    - `field`: the [`AbstractAggregativeField`][].
    - `t`, `y`, `args`: the point of linearisation and the field's arguments.
    - `c`: the scalar $c$ (an implicit stage's diagonal coefficient times the step).

    **Returns:** the [`AggregativeJacobian`][].
    """
    leaves, treedef = jax.tree.flatten(y)
    b = len(leaves)
    s = field.totals(y, args)
    # Column k of every block: one Jacobian-vector product with coordinate k of every agent
    # set to 1 (exact, since g_i reads only agent i). b separate products, whose shared primal
    # the compiler computes once, run faster on a CPU than one `vmap` over the b tangents.
    local = lambda z: field.local(t, z, s, args)  # noqa: E731

    def column(k):
        unit = [jnp.ones_like(x) if j == k else jnp.zeros_like(x) for j, x in enumerate(leaves)]
        return jax.tree.leaves(jax.jvp(local, (y,), (jax.tree.unflatten(treedef, unit),))[1])

    cols = [column(k) for k in range(b)]
    B = jnp.stack([jnp.stack([cols[k][l] for k in range(b)]) for l in range(b)])  # (b, b, n)
    p = s.shape[0]
    # p products with respect to the totals, vmapped so that each leaf comes out (p, n) (a
    # `jacfwd` gives (n, p), whose transpose costs as much as the products on a CPU).
    _, lin_s = jax.linearize(lambda z: field.local(t, y, z, args), s)
    dg_ds = jax.vmap(lin_s)(jnp.eye(p, dtype=s.dtype))  # leaves (p, n)
    cU = c * jnp.stack(jax.tree.leaves(dg_ds))  # (b, p, n)
    W = tuple(jax.tree.leaves(jax.jacrev(lambda z: field.totals(z, args))(y)))  # b x (p, n)
    M = jnp.eye(b, dtype=B.dtype)[:, :, None] - c * B
    M_inv = _invert_blocks(M)
    Z = jnp.stack([jnp.stack(_matvec(M_inv, list(cU[:, q]))) for q in range(p)], axis=1)
    # Column r of W^T Z is W^T applied to column r of Z, as in every solve.
    WZ = jnp.stack([_totals_apply(W, list(Z[:, r])) for r in range(p)], axis=1)
    capacitance = jnp.eye(p, dtype=B.dtype) - WZ
    cap_inv = small_solve(capacitance, jnp.eye(p, dtype=B.dtype))
    return AggregativeJacobian(M, cU, W, M_inv, Z, cap_inv, treedef)


def _identity(shape: AggregativeJacobian) -> AggregativeJacobian:
    """The factorised identity, shaped like `shape` (a `jax.eval_shape` of a build)."""
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shape)
    b, _, n = shape.blocks.shape
    p = shape.capacitance_inverse.shape[0]
    eye = jnp.broadcast_to(jnp.eye(b, dtype=shape.blocks.dtype)[:, :, None], (b, b, n))
    return eqx.tree_at(
        lambda j: (j.blocks, j.block_inverse, j.capacitance_inverse),
        zeros,
        (eye, eye, jnp.eye(p, dtype=shape.blocks.dtype)),
    )


class _ChordState(eqx.Module):
    jacobian: AggregativeJacobian
    diffsize: Array
    diffsize_prev: Array
    result: optx.RESULTS
    step: Array


class AggregativeChord(optx.AbstractRootFinder):
    r"""Chord iteration for the implicit stages of diffrax's Runge-Kutta solvers, with the
    Newton matrix of an aggregative field solved in $O(n)$.

    As `diffrax.VeryChord`, one Newton matrix per step, but that matrix,
    $I - c\,\partial f/\partial y$, is the factorised [`AggregativeJacobian`][] instead of a
    dense one, and a stage iterates until it has converged (`terminate`). Use it as
    `diffrax.Kvaerno5(root_finder=diffrax.with_stepsize_controller_tols(AggregativeChord)(field=f))`
    with `diffrax.ODETerm(f)`: the stage residual diffrax hands over is
    $F(z) = z - f(t_i, \hat y_i + c z)$, whose arguments (stage index, diagonal, field,
    product, $t_i$, $\hat y_i$, args, step) give the point and the scale $c$.

    **Arguments:**

    - `field`: the ODE's [`AbstractAggregativeField`][] (the same one the `ODETerm` holds).
    - `rtol`, `atol`, `norm`, `kappa`: as for `diffrax.VeryChord`.

    A backward solve (`t1 < t0`) is integrated by diffrax in reversed time $\tau = -t$: the
    root finder is handed $\tau_i$ and a negative step (the control). The Newton matrix is
    built at the true time, $t_i = -\tau_i$ when the step is negative.
    """

    field: AbstractAggregativeField
    rtol: float
    atol: float
    norm: Callable = optx.max_norm
    kappa: float = 1e-2

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        del fn, f_struct, aux_struct, tags
        if "init_state" in options:
            return options["init_state"]
        if not (isinstance(args, tuple) and len(args) == 8):
            raise ValueError(
                "AggregativeChord solves the f-space stages of diffrax's implicit Runge-Kutta "
                "solvers with an ODETerm; got other root-finding arguments"
            )
        _, diagonal, _, prod, ti, y_partial, ode_args, control = args
        if jnp.ndim(control) != 0:
            raise ValueError("AggregativeChord needs a diffrax.ODETerm (a scalar step)")
        point = jax.tree.map(lambda a, d: a + diagonal * d, y_partial, prod(y, control))
        c = diagonal * control
        # The step's sign is the direction of integration (see the class docstring).
        t = jnp.where(control < 0, -ti, ti)

        def build():
            return aggregative_jacobian(self.field, t, point, ode_args, c)

        # diffrax also asks, once per step, for the matrix of an explicit stage (diagonal 0),
        # which is I: skip the build then.
        jacobian = jax.lax.cond(c == 0, lambda: _identity(jax.eval_shape(build)), build)
        dtype = jnp.result_type(*jax.tree.leaves(y))
        return _ChordState(
            jacobian=jacobian,
            diffsize=jnp.array(jnp.inf, dtype=dtype),
            diffsize_prev=jnp.array(1.0, dtype=dtype),
            result=optx.RESULTS.successful,
            step=jnp.array(0),
        )

    def step(self, fn, y, args, options, state, tags):
        del options, tags
        fx, aux = fn(y, args)
        diff = state.jacobian.solve(fx)
        new_y = jax.tree.map(lambda a, d: a - d, y, diff)
        scale = jax.tree.map(lambda a: self.atol + self.rtol * jnp.abs(a), new_y)
        diffsize = self.norm(jax.tree.map(lambda d, s: d / s, diff, scale))
        new_state = _ChordState(
            state.jacobian, diffsize, state.diffsize, state.result, state.step + 1
        )
        return new_y, new_state, aux

    def terminate(self, fn, y, args, options, state, tags):
        del fn, y, args, options, tags
        # Hairer and Wanner's test (Solving ODEs II, IV.8): with the contraction rate
        # theta = |dz_k| / |dz_{k-1}|, the remaining error is about theta / (1 - theta) |dz_k|.
        # Iterate until it is below kappa (in units of the tolerance) or theta >= 1. (VeryChord
        # fails a stage that has not converged after two iterations; stiff steps of this size
        # need three or four, and failing them would force the step down.)
        at_least_two = state.step >= 2
        rate = state.diffsize / state.diffsize_prev
        factor = state.diffsize * rate / (1 - rate)
        resolution = 10 ** (2 - jnp.finfo(state.diffsize.dtype).precision)
        small = state.diffsize < resolution
        diverged = jnp.invert(jnp.isfinite(rate)) | (rate >= 1)
        converged = (factor >= 0) & (factor < self.kappa)
        done = at_least_two & (small | converged)
        failed = at_least_two & diverged & jnp.invert(done)
        result = optx.RESULTS.where(failed, optx.RESULTS.nonlinear_divergence, state.result)
        return done | failed, result

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        del fn, args, options, state, tags, result
        return y, aux, {}
