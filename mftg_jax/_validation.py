"""Construction-time checks that name the offending field and its allowed range.

- [`check_field`][]: the type (a number or an array of numbers: no string, boolean, `None` or
  integer too large for a float), finiteness, magnitude (at most `MAX_MAGNITUDE`, so that
  squares and products stay finite in float64) and range of one field. Concrete values fail
  at once with a `ValueError`; traced values (inside `jit`/`vmap`/`grad`) get an equinox
  runtime check attached with the same message ([`check_traced`][]).
- [`real`][], [`reals`][]: converters for `eqx.field(converter=...)` that run `check_field`
  on every construction, traced or not.
- [`check_instance`][], [`check_size`][]: argument types, and sizes against memory.
"""

from collections.abc import Callable
import math
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

# The date text the library and the command line read: `yyyy-mm-dd`, optionally with
# ` HH:MM[:SS]` or `THH:MM[:SS]` (no offsets, no fractions: one reading for every date).
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?")

#: Largest magnitude accepted for a model parameter: its square stays finite in float64.
MAX_MAGNITUDE = 1e100

#: Largest array (in bytes) a run may allocate at once before it is refused.
MAX_BYTES = 8 * 2**30


def is_concrete(*xs) -> bool:
    """True when none of `xs` is a JAX tracer (values can be inspected in Python)."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(xs))


def type_problem(value) -> str | None:
    """Why `value` is not a real number or a (nested) array of them; `None` when it is."""
    if isinstance(value, jax.core.Tracer | jax.Array | np.ndarray | np.generic):
        kind = np.dtype(value.dtype).kind
        if kind == "b":
            return "a boolean"
        if kind == "c":
            return "a complex number"
        if kind not in "iuf":
            return f"an array of {np.dtype(value.dtype).name}"
        return None
    if isinstance(value, bool):
        return f"a boolean ({value})"
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            return f"an integer too large for a float ({len(str(abs(value)))} digits)"
        return None
    if isinstance(value, float):
        return None
    if isinstance(value, str | bytes):
        return f"a string {value[:40]!r}"
    if value is None:
        return "None"
    if isinstance(value, list | tuple):
        for v in value:
            p = type_problem(v)
            if p is not None:
                return f"a list holding {p}"
        return None
    return f"a {type(value).__name__}"


def check_traced(value, bad, message: str, error: type[Exception] = ValueError):
    """`value` with an equinox runtime check that fails with `message` where `bad` is true.

    Under a bare `jax.vmap` the check runs at once and `error(message)` is raised; under
    `jit` equinox raises its runtime error carrying `message` when the program runs.
    """
    try:
        return eqx.error_if(value, bad, message)
    except eqx.EquinoxRuntimeError:
        raise error(message) from None


def check_field(
    name: str,
    value,
    allowed: str,
    ok: Callable[[np.ndarray], np.ndarray] | None = None,
):
    """Raise `ValueError` naming `name` when `value` is not a finite number within `allowed`.

    Rejects strings, booleans, `None` and other non-numbers, integers too large for a float,
    non-finite values, magnitudes above `MAX_MAGNITUDE` and values where `ok` is false.
    Returns `value`; a traced value is returned with the same checks attached as an equinox
    runtime error ([`check_traced`][]): callers that can keep the result (converters, see
    [`real`][]) get the checks inside `jit` too.
    """
    problem = type_problem(value)
    if problem is not None:
        raise ValueError(f"{name} must be a number ({allowed}), got {problem}")
    if not is_concrete(value):
        return _traced(name, value, allowed, ok)
    v = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite ({allowed}), got {_show(v)}")
    if np.any(np.abs(v) > MAX_MAGNITUDE):
        raise ValueError(
            f"{name} must be {allowed} with magnitude <= {MAX_MAGNITUDE:g} (larger values "
            f"overflow in float64 arithmetic), got {_show(v)}"
        )
    if ok is not None and not np.all(ok(v)):
        raise ValueError(f"{name} must be {allowed}, got {_show(v)}")
    return value


def _traced(name, value, allowed, ok):
    x = jnp.asarray(value)
    bad = ~jnp.all(jnp.isfinite(x)) | jnp.any(jnp.abs(x) > MAX_MAGNITUDE)
    if ok is not None:
        try:
            bad = bad | ~jnp.all(ok(x))
        except (
            TypeError,
            jax.errors.ConcretizationTypeError,
            jax.errors.TracerArrayConversionError,
        ):
            pass  # a NumPy-only range test: checked when the value is concrete
    return check_traced(value, bad, f"{name} must be finite and {allowed} (checked at run time)")


def real(name: str, allowed: str = "a finite real", ok=None, *, vector: bool = False):
    """A converter for `eqx.field(converter=...)`: a float array, checked by `check_field`.

    With `vector`, a number becomes an array of one (`jnp.atleast_1d`).
    """

    def convert(x):
        problem = type_problem(x)
        if problem is not None:
            raise ValueError(f"{name} must be a number ({allowed}), got {problem}")
        a = jnp.asarray(x, dtype=float)
        if vector:
            a = jnp.atleast_1d(a)
        return check_field(name, a, allowed, ok)

    return convert


def reals(name: str, allowed: str = "finite reals", ok=None):
    """`real(name, allowed, ok, vector=True)`."""
    return real(name, allowed, ok, vector=True)


def check_instance(name: str, value, cls: type | tuple[type, ...]) -> None:
    """Raise `ValueError` naming `name` when `value` is not an instance of `cls` (an argument
    of the wrong type, or arguments given in the wrong order)."""
    if not isinstance(value, cls):
        want = cls.__name__ if isinstance(cls, type) else " or ".join(c.__name__ for c in cls)
        raise ValueError(f"{name} must be a {want}, got {type(value).__name__}")


def check_size(what: str, shape, dtype=np.float64, limit: int = MAX_BYTES) -> None:
    """Raise `ValueError` when an array of `shape` and `dtype` would exceed `limit` bytes.

    Called before allocating, so that a huge size is a one-line error, not an
    out-of-memory crash.
    """
    n = math.prod(int(s) for s in shape)
    size = n * np.dtype(dtype).itemsize
    if size > limit:
        raise ValueError(
            f"{what} needs an array of shape {tuple(int(s) for s in shape)} "
            f"({size / 2**30:.3g} GiB), above the limit of {limit / 2**30:.3g} GiB; "
            "use fewer players, paths, steps or a smaller batch"
        )


def check_time(name: str, t, t0, t1) -> None:
    """Raise `ValueError` naming `name` when a concrete time `t` is not finite or lies
    outside the horizon $[t_0, t_1]$ (a dense solution is undefined there)."""
    if not is_concrete(t, t0, t1) or np.ndim(t0) > 0 or np.ndim(t1) > 0:
        return
    problem = type_problem(t)
    if problem is not None:
        raise ValueError(f"{name} must be a time (a number), got {problem}")
    a, lo, hi = np.asarray(t, dtype=np.float64), float(t0), float(t1)
    tol = 1e-9 * max(1.0, abs(lo), abs(hi))
    if not np.all(np.isfinite(a)) or np.any(a < lo - tol) or np.any(a > hi + tol):
        raise ValueError(
            f"{name} must be a time in the horizon [t0, t1] = [{lo:g}, {hi:g}], got {_show(a)}"
        )


def _show(v: np.ndarray) -> str:
    if v.ndim == 0:
        return f"{float(v):g}"
    return np.array2string(v, precision=6, threshold=8)
