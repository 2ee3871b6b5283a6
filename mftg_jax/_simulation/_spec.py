"""The settings of one Monte Carlo ensemble, grouped as one Module (like diffrax's `SaveAt`)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

_SCHEMES = ("euler", "exponential")
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _positive_int(name: str, v, lo: int = 1) -> None:
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")


def _times(x) -> tuple[float, ...] | None:
    return None if x is None else tuple(float(v) for v in np.atleast_1d(np.asarray(x, float)))


def _steps(x) -> tuple[int, ...] | None:
    return None if x is None else tuple(int(v) for v in x)


def _dtype(d) -> str:
    if d is None:
        return "float32"
    try:
        return jnp.dtype(d).name
    except TypeError:
        return str(d)


def _levels(q) -> tuple[float, ...]:
    return tuple(float(v) for v in np.atleast_1d(np.asarray(q, dtype=float)))


class EnsembleSpec(eqx.Module):
    r"""What to simulate: the ensemble's shape, grid, scheme, precision and statistics.

    $M$ = `n_common` common-noise scenarios of $N$ = `n_paths // n_common` paths each, on the
    grid $t_k = t_0 + k(t_1 - t_0)/K$, $K$ = `n_steps`. All fields are Python-level settings
    (static): a new value compiles a new program, a new game does not.

    **Arguments:**

    - `n_paths`: total number of paths $MN$ (a positive multiple of `n_common`).
    - `n_common`: number of common-noise scenarios $M$.
    - `n_steps`: grid steps $K$.
    - `scheme`: `"exponential"` (exact in distribution for frozen coefficients, affine
      policies) or `"euler"` (Euler-Maruyama); a family may support only `"euler"`.
    - `save_times`: times to save (snapped to the grid); default 101 grid times.
    - `save_steps`: grid indices to save instead (needed when the horizon is traced).
    - `dtype`: `"float32"` (default) or `"float64"` (needs `jax_enable_x64`).
    - `batch_size`: paths per scenario per batch (a divisor of $N$ and a multiple of the
      number of devices); default: the largest divisor keeping a batch near $2^{22}$ saved
      values.
    - `n_full_paths`: number of paths of scenario 0 returned in full (at most a batch).
    - `bins`: histogram bins per save time for the streamed quantiles.
    - `quantiles`: quantile levels in $(0, 1)$.
    - `max_jumps_per_step`: Poisson truncation; default from the intensity (exact to
      $2^{-32}$) or 8 when the intensity is traced.
    """

    n_paths: int = eqx.field(static=True, default=100_000)
    n_common: int = eqx.field(static=True, default=1)
    n_steps: int = eqx.field(static=True, default=1000)
    scheme: str = eqx.field(static=True, default="exponential")
    save_times: tuple[float, ...] | None = eqx.field(static=True, default=None, converter=_times)
    save_steps: tuple[int, ...] | None = eqx.field(static=True, default=None, converter=_steps)
    dtype: str = eqx.field(static=True, default="float32", converter=_dtype)
    batch_size: int | None = eqx.field(static=True, default=None)
    n_full_paths: int = eqx.field(static=True, default=0)
    bins: int = eqx.field(static=True, default=512)
    quantiles: tuple[float, ...] = eqx.field(static=True, default=_QUANTILES, converter=_levels)
    max_jumps_per_step: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        _positive_int("n_common", self.n_common)
        _positive_int("n_steps", self.n_steps)
        if (
            isinstance(self.n_paths, bool)
            or not isinstance(self.n_paths, int | np.integer)
            or self.n_paths < self.n_common
            or self.n_paths % self.n_common
        ):
            raise ValueError(
                f"n_paths must be a positive multiple of n_common = {self.n_common}, "
                f"got {self.n_paths!r}"
            )
        if self.scheme not in _SCHEMES:
            raise ValueError(f"scheme must be one of {_SCHEMES}, got {self.scheme!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        if self.save_times is not None and self.save_steps is not None:
            raise ValueError("give save_times or save_steps, not both")
        if self.save_steps is not None:
            idx = self.save_steps
            if (
                not idx
                or any(not 0 <= i <= self.n_steps for i in idx)
                or any(b <= a for a, b in zip(idx, idx[1:]))
            ):
                raise ValueError(f"save_steps must increase within [0, {self.n_steps}], got {idx}")
        if self.batch_size is not None:
            _positive_int("batch_size", self.batch_size)
            if self.paths_per_scenario % self.batch_size:
                raise ValueError(
                    f"batch_size must divide the paths per scenario ({self.paths_per_scenario}), "
                    f"got {self.batch_size!r}"
                )
        _positive_int("n_full_paths", self.n_full_paths, lo=0)
        if self.batch_size is not None and self.n_full_paths > self.batch_size:
            raise ValueError(
                f"n_full_paths must be in [0, batch_size={self.batch_size}], "
                f"got {self.n_full_paths}"
            )
        _positive_int("bins", self.bins)
        q = np.asarray(self.quantiles)
        if q.ndim != 1 or np.any((q <= 0) | (q >= 1)):
            raise ValueError(f"quantiles must be levels in (0, 1), got {self.quantiles!r}")
        if self.max_jumps_per_step is not None:
            _positive_int("max_jumps_per_step", self.max_jumps_per_step)

    @property
    def paths_per_scenario(self) -> int:
        """$N$ = `n_paths // n_common`."""
        return self.n_paths // self.n_common

    def checked_dtype(self) -> str:
        """The dtype, checked against `jax_enable_x64` (which may change after construction)."""
        if self.dtype == "float64" and not jax.config.read("jax_enable_x64"):
            raise ValueError(
                "dtype float64 needs jax_enable_x64 (jax.config.update('jax_enable_x64', True))"
            )
        return self.dtype


def save_indices(spec: EnsembleSpec, t0: float | None, t1: float | None) -> tuple[int, ...]:
    """Grid indices of the save times of `spec` (`t0`, `t1`: the concrete horizon or None)."""
    n_steps = spec.n_steps
    if spec.save_steps is not None:
        return spec.save_steps
    if spec.save_times is None:
        n_save = min(n_steps, 100)
        return tuple(int(round(i * n_steps / n_save)) for i in range(n_save + 1))
    if t0 is None or t1 is None:
        raise ValueError(
            "save_times need a concrete horizon; under jit pass save_steps=(k, ...) (grid indices)"
        )
    ts = np.asarray(spec.save_times, dtype=float)
    if np.any(ts < t0 - 1e-12) or np.any(ts > t1 + 1e-12) or ts.size == 0:
        raise ValueError(f"save_times must lie in [t0, t1] = [{t0:g}, {t1:g}], got {ts}")
    idx = np.round((ts - t0) / (t1 - t0) * n_steps).astype(int)
    if np.any(np.diff(idx) <= 0):
        raise ValueError(
            "save_times must be increasing and at least one grid step apart after snapping "
            f"to the grid of n_steps = {n_steps}"
        )
    return tuple(int(i) for i in idx)
