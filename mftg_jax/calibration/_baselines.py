r"""The Gaussian AR(1) baseline on the price level.

$$y_k = c + \phi\,y_{k-1} + \varepsilon_k,\qquad \varepsilon_k \sim N(0, s^2)$$

fitted by conditional maximum likelihood (least squares; $s^2$ the mean squared residual).
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class AR1:
    """A fitted Gaussian AR(1): intercept `c`, coefficient `phi`, innovation std `s`."""

    c: float
    phi: float
    s: float

    def nll_per_step(self, y: np.ndarray) -> np.ndarray:
        """$-\\log p(y_k \\mid y_{k-1})$ for $k \\ge 1$ (length `len(y) - 1`)."""
        y = np.asarray(y, np.float64)
        e = y[1:] - self.c - self.phi * y[:-1]
        return 0.5 * np.log(2 * np.pi * self.s**2) + e**2 / (2 * self.s**2)


def fit_ar1(y: np.ndarray) -> AR1:
    """Least-squares (conditional maximum-likelihood) AR(1) fit of a price series."""
    y = np.asarray(y, np.float64)
    if y.size < 3:
        raise ValueError(f"need at least 3 prices to fit an AR(1), got {y.size}")
    X = np.stack([np.ones(y.size - 1), y[:-1]], 1)
    (c, phi), *_ = np.linalg.lstsq(X, y[1:], rcond=None)
    e = y[1:] - X @ np.array([c, phi])
    return AR1(float(c), float(phi), float(max(np.sqrt(np.mean(e**2)), 1e-12)))
