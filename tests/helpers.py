"""Tolerance helpers and small builders shared by the tests."""

import jax
import jax.numpy as jnp
import numpy as np

from mftg_jax import GridLevyPath
from mftg_jax._noise._levy_path import poisson_max_count


def assert_rel(actual, expected, rtol, atol=0.0, what=""):
    """`|actual - expected| <= atol + rtol |expected|` elementwise, with a readable message."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    err = np.abs(actual - expected)
    bound = atol + rtol * np.abs(expected)
    assert np.all(err <= bound), (
        f"{what}: max error {err.max():.3e} exceeds bound (rtol={rtol:g}, atol={atol:g});\n"
        f"actual={actual}\nexpected={expected}"
    )


def central_difference(f, x, eps):
    """Central finite difference of scalar `f` at scalar `x`."""
    return (f(x + eps) - f(x - eps)) / (2 * eps)


def execute_notebook(name: str, workdir, *, full: bool, timeout: int = 600):
    """Run `notebooks/<name>.ipynb` top to bottom in `workdir`, at full sizes (`MFTG_FULL=1`)
    or small ones, and check that no cell failed and that it shows a figure."""
    from pathlib import Path

    from nbclient import NotebookClient
    import nbformat
    import pytest

    path = Path(__file__).resolve().parent.parent / "notebooks" / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    with pytest.MonkeyPatch.context() as mp:
        if full:
            mp.setenv("MFTG_FULL", "1")
        else:
            mp.delenv("MFTG_FULL", raising=False)
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(workdir)}},
        ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert [o for o in outputs if "image/png" in o.get("data", {})], "the notebook shows figures"


def grid_levy_path(
    jumps,
    n_paths,
    *,
    seed,
    n_steps,
    tile=None,
    slots=None,
    dtype="float64",
    offset=0,
    max_count=None,
):
    """A `GridLevyPath` on [0, 1] with `n_steps` steps for 2 scenarios x `n_paths` paths (path
    ids from `offset`), its Poisson truncation from the step's rate unless `max_count`."""
    rate_dt = float(jumps.intensity) / n_steps if jumps is not None else 0.0
    return GridLevyPath(
        key=jax.random.key(seed),
        t0=jnp.asarray(0.0),
        t1=jnp.asarray(1.0),
        scenario=jnp.arange(2, dtype=jnp.uint32)[:, None],
        path=(jnp.arange(n_paths, dtype=jnp.uint32) + offset)[None, :],
        jumps=jumps,
        n_steps=n_steps,
        max_count=max_count or poisson_max_count(rate_dt),
        tile=tile,
        slots=slots,
        dtype=dtype,
    )
