"""Construction-time checks that name the offending field and its allowed range."""

from collections.abc import Callable

import jax
import numpy as np


def is_concrete(*xs) -> bool:
    """True when none of `xs` is a JAX tracer (values can be inspected in Python)."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(xs))


def check_field(
    name: str,
    value,
    allowed: str,
    ok: Callable[[np.ndarray], np.ndarray] | None = None,
) -> None:
    """Raise `ValueError` naming `name` when `value` is non-finite or violates `ok`.

    Does nothing for traced values (inside `jit`/`vmap`/`grad` nothing can be checked in
    Python); the public constructors are meant to be called with concrete values.
    """
    if not is_concrete(value):
        return
    v = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite ({allowed}), got {_show(v)}")
    if ok is not None and not np.all(ok(v)):
        raise ValueError(f"{name} must be {allowed}, got {_show(v)}")


def _show(v: np.ndarray) -> str:
    if v.ndim == 0:
        return f"{float(v):g}"
    return np.array2string(v, precision=6, threshold=8)
