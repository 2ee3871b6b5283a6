r"""Tiny dense linear algebra in plain `jax.numpy`: no LAPACK custom calls.

The per-time, per-regime systems of the library are tiny (one row per player, one per regime)
and are solved at every step of an ODE or on every point of a time grid, i.e. batched under
`jax.vmap`. On CPU, `jnp.linalg.solve` and `jax.scipy.linalg.expm` lower to LAPACK custom calls
(`getrf`), which a batch runs through jaxlib's `ParallelBatchMap` on the intra-op thread pool
and waits for on a blocking counter. When every pool thread is itself inside such a wait (two
batched calls at once on a small or loaded machine), none is left to run the queued work and
the program never returns. The functions here are ordinary element-wise and reduction
operations that XLA fuses: nothing is scheduled outside the program, so nothing can wait on it.

- [`small_solve`][]: Gaussian elimination with partial pivoting, unrolled over the columns
  (a `fori_loop` beyond 24 unknowns, to bound the program size).
- [`small_expm`][]: scaling and squaring of a degree-18 Taylor polynomial, with a fixed number
  of squarings (so that it is differentiable and has static shapes).

Both broadcast over leading axes and work under `jit`, `vmap` and `grad`.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

#: Above this many unknowns the elimination runs in a `fori_loop` instead of unrolled.
UNROLL_MAX = 24


def _swap(M: Array, idx: Array, k, p, rk: Array, rp: Array) -> Array:
    """Rows k and p of M exchanged by selection (exact; a no-op when p == k). An update
    `M + e_k (r_p - r_k) + ...` would not be: `r_k + (r_p - r_k)` is not `r_p` in floating
    point when the rows differ in scale, which is when pivoting matters."""
    return jnp.where(
        (idx == k)[:, None], rp[None, :], jnp.where((idx == p)[:, None], rk[None, :], M)
    )


def _eliminate_unrolled(M: Array, n: int) -> Array:
    idx = jnp.arange(n)
    for k in range(n):
        col = jnp.where(idx >= k, jnp.abs(M[:, k]), -1.0)
        p = jnp.argmax(col)
        rk, rp = M[k], jnp.take(M, p, axis=0)
        M = _swap(M, idx, k, p, rk, rp)
        f = jnp.where(idx > k, M[:, k] / M[k, k], 0.0)
        M = M - f[:, None] * M[k][None, :]
    return M


def _eliminate_loop(M: Array, n: int) -> Array:
    idx = jnp.arange(n)

    def body(k, M):
        colk = jax.lax.dynamic_index_in_dim(M, k, axis=1, keepdims=False)
        col = jnp.where(idx >= k, jnp.abs(colk), -1.0)
        p = jnp.argmax(col)
        rk = jax.lax.dynamic_index_in_dim(M, k, axis=0, keepdims=False)
        rp = jax.lax.dynamic_index_in_dim(M, p, axis=0, keepdims=False)
        M = _swap(M, idx, k, p, rk, rp)
        colk = jax.lax.dynamic_index_in_dim(M, k, axis=1, keepdims=False)
        rk = jax.lax.dynamic_index_in_dim(M, k, axis=0, keepdims=False)
        pivot = jax.lax.dynamic_index_in_dim(rk, k, keepdims=False)
        f = jnp.where(idx > k, colk / pivot, 0.0)
        return M - f[:, None] * rk[None, :]

    return jax.lax.fori_loop(0, n, body, M)


def _back_substitute(M: Array, n: int) -> Array:
    U, Y = M[:, :n], M[:, n:]
    if n <= UNROLL_MAX:
        rows = [None] * n
        for k in reversed(range(n)):
            acc = Y[k]
            for j in range(k + 1, n):
                acc = acc - U[k, j] * rows[j]
            rows[k] = acc / U[k, k]
        return jnp.stack(rows, axis=0)
    idx = jnp.arange(n)

    def body(i, X):
        k = n - 1 - i
        uk = jax.lax.dynamic_index_in_dim(U, k, axis=0, keepdims=False)
        yk = jax.lax.dynamic_index_in_dim(Y, k, axis=0, keepdims=False)
        ukk = jax.lax.dynamic_index_in_dim(uk, k, keepdims=False)
        # Rows j <= k of X are still zero, so the product only sees the solved unknowns.
        xk = (yk - jnp.where(idx > k, uk, 0.0) @ X) / ukk
        return jax.lax.dynamic_update_index_in_dim(X, xk, k, axis=0)

    return jax.lax.fori_loop(0, n, body, jnp.zeros_like(Y))


def _solve_one(A: Array, B: Array) -> Array:
    n = A.shape[-1]
    M = jnp.concatenate([A, B], axis=-1)
    M = _eliminate_unrolled(M, n) if n <= UNROLL_MAX else _eliminate_loop(M, n)
    return _back_substitute(M, n)


def small_solve(A: ArrayLike, b: ArrayLike) -> Array:
    r"""Solve $A x = b$ for small square $A$ by Gaussian elimination with partial pivoting.

    A drop-in for `jnp.linalg.solve` on tiny systems (up to a few dozen unknowns) that is
    batched under `vmap`: plain `jax.numpy` operations that XLA fuses, no LAPACK custom call
    (module docstring). A singular $A$ gives non-finite entries, as LAPACK does.

    **Arguments:**

    - `A`: shape `(..., n, n)`, real or complex.
    - `b`: shape `(..., n)` (one right-hand side) or `(..., n, k)`; leading axes broadcast.

    **Returns:** $x$, of the broadcast shape of `b`.
    """
    A, b = jnp.asarray(A), jnp.asarray(b)
    dtype = jnp.result_type(A.dtype, b.dtype, jnp.float32)
    A, b = A.astype(dtype), b.astype(dtype)
    n = A.shape[-1]
    if A.ndim < 2 or A.shape[-2] != n:
        raise ValueError(f"small_solve: A must be square (..., n, n), got shape {A.shape}")
    vector = b.ndim == 1 or b.ndim == A.ndim - 1
    B = b[..., None] if vector else b
    if B.shape[-2] != n:
        raise ValueError(f"small_solve: b has {B.shape[-2]} rows for an {n} x {n} matrix")
    lead = jnp.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    A = jnp.broadcast_to(A, lead + A.shape[-2:])
    B = jnp.broadcast_to(B, lead + B.shape[-2:])
    x = _solve_batched(A, B)
    return x[..., 0] if vector else x


@jax.jit
def _solve_batched(A: Array, B: Array) -> Array:
    solve = _solve_one
    for _ in A.shape[:-2]:
        solve = jax.vmap(solve)
    return solve(A, B)


#: Taylor degree and the largest scaled 1-norm: the truncation error of the degree-18
#: polynomial at norm 1/2 is below 2^-18 / 19! < 1e-22 relative, under float64 rounding.
_TAYLOR_DEGREE = 18
_THETA = 0.5
#: Squarings available: norms up to 0.5 * 2^64. Beyond that the result is not accurate (nor is
#: any scaling-and-squaring result well before it: the error grows like norm * eps).
_MAX_SQUARINGS = 64


def _expm_one(A: Array) -> Array:
    n = A.shape[-1]
    eye = jnp.eye(n, dtype=A.dtype)
    norm = jnp.max(jnp.sum(jnp.abs(A), axis=0))
    s = jnp.clip(jnp.ceil(jnp.log2(jnp.maximum(norm, 1e-300) / _THETA)), 0, _MAX_SQUARINGS)
    X = A * jnp.exp2(-s).astype(A.dtype)
    # Horner: I + X (I + X/2 (I + X/3 (...))).
    E = eye
    for k in range(_TAYLOR_DEGREE, 0, -1):
        E = eye + (X @ E) / k
    # A fixed number of squarings, each applied only while below s (static shapes, and
    # reverse-mode differentiable, unlike a loop with a traced trip count).

    def body(E, i):
        return jnp.where(i < s, E @ E, E), None

    E, _ = jax.lax.scan(body, E, jnp.arange(_MAX_SQUARINGS, dtype=s.dtype))
    return E


def small_expm(A: ArrayLike) -> Array:
    r"""The matrix exponential $e^A$ of a small square matrix, without LAPACK custom calls.

    Scaling and squaring: $e^A = (T_{18}(A/2^s))^{2^s}$ with $T_{18}$ the degree-18 Taylor
    polynomial and $s$ the least integer with $\|A\|_1/2^s \le 1/2$ (module docstring). For
    the generators of Markov chains and the other small matrices of the library the result
    agrees with `scipy.linalg.expm` to rounding.

    **Arguments:** `A`, shape `(..., n, n)`, real or complex.

    **Returns:** $e^A$, of the shape of `A`.
    """
    A = jnp.asarray(A)
    A = A.astype(jnp.result_type(A.dtype, jnp.float32))
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"small_expm: A must be square (..., n, n), got shape {A.shape}")
    return _expm_batched(A)


@jax.jit
def _expm_batched(A: Array) -> Array:
    f = _expm_one
    for _ in A.shape[:-2]:
        f = jax.vmap(f)
    return f(A)
