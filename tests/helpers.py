"""Tolerance helpers shared by the tests."""

import numpy as np


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
