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
