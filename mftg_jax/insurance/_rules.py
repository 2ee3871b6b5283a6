r"""The insurance rule under the two readings of the loss term, and its log-growth.

With cover $u^{ins} = I s$ and premium rate $\bar\lambda(1+\theta)u^{ins}$ the HJB's insurance
part is $\alpha h(I)$ (docs/insurance.md), with

$$h(I) = -\bar\lambda(1+\theta)I + \bar\lambda\log(1 - l + I)
 + \begin{cases}\bar\lambda(l - I) & \text{loss } -(L - u^{ins})\,d\tilde N
 \text{ (compensated)}\\ 0 & \text{loss } -(L - u^{ins})\,dN \text{ (Poisson)}\end{cases}$$

Its maximiser on $I \ge 0$:

$$I^{comp} = \Big[l - \frac{1+\theta}{2+\theta}\Big]_+,\qquad
  I^{Pois} = \Big[l - \frac{\theta}{1+\theta}\Big]_+ .$$

The compensated reading reproduces the slides' $(1+\theta)/(2+\theta)$; the Poisson reading
is the classical one (Mossin: full cover iff the premium is fair, $\theta = 0$). Both are
decreasing and convex in $\theta$ ($-(1+\theta)/(2+\theta)$ has derivatives
$-1/(2+\theta)^2$ and $2/(2+\theta)^3$; the positive part keeps convexity) and independent
of $\bar\lambda$.
"""

import jax.numpy as jnp
from jaxtyping import Array

from ._model import CONVENTIONS


def _check(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")


def insurance_fraction(loss_fraction, loading, convention: str = "compensated") -> Array:
    r"""The optimal cover per unit wealth $I = u^{ins}/s$ (module docstring).

    **Arguments:** `loss_fraction` $l \in [0, 1)$, `loading` $\theta > -1$ (broadcast
    together); `convention`: `"compensated"` (the slides' rule) or `"poisson"`.

    **Returns:** $I$, the shape of the broadcast arguments.
    """
    _check(convention)
    l = jnp.asarray(loss_fraction, float)
    th = jnp.asarray(loading, float)
    kept = (1 + th) / (2 + th) if convention == "compensated" else th / (1 + th)
    return jnp.maximum(l - kept, 0.0)


def loss_growth(cover, loss_fraction, loading, intensity, convention: str = "compensated"):
    r"""$h(I)$ of the module docstring: the insurance part of the log-growth per unit time."""
    _check(convention)
    h = -intensity * (1 + loading) * cover + intensity * jnp.log(1 - loss_fraction + cover)
    if convention == "compensated":
        h = h + intensity * (loss_fraction - cover)
    return h
