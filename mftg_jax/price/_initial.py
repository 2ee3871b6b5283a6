r"""A Gaussian law of the initial state $(\hat p_0, p_0 - \hat p_0)$ of the price ensemble.

$$\begin{pmatrix}\hat p_0\\ x_0\end{pmatrix} \sim N(\mu, C),\qquad
  \hat p_0 = \mu_1 + \sqrt{C_{11}}\,z_1,\qquad
  x_0 \mid \hat p_0 = \mu_2 + \tfrac{C_{12}}{C_{11}}(\hat p_0 - \mu_1)
                     + \sqrt{C_{22} - C_{12}^2/C_{11}}\,z_2,$$

$z_1$ drawn once per common-noise scenario, $z_2$ once per path, each from a key folded with
the scenario (and path) index only, so the draws do not depend on how the paths are batched
(for $C_{11} = 0$: $\hat p_0 = \mu_1$, $x_0 = \mu_2 + \sqrt{C_{22}}z_2$). A filtered state
(a Kalman filter's estimate of the two factors and its covariance) is such a law.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray
import numpy as np

from .._validation import is_concrete, reals


class InitialLaw(eqx.Module):
    r"""The Gaussian law $N(\mu, C)$ of $(\hat p_0, p_0 - \hat p_0)$ (module docstring).

    Passed as `simulate(..., initial=InitialLaw(mean, cov))` it replaces the game's fixed
    `p0`, `phat0`: $\hat p_0$ is drawn once per common-noise scenario and $p_0 - \hat p_0$ per
    path from its conditional law given $\hat p_0$. With $\mu_2 \ne 0$ or $C_{12} \ne 0$ the
    paths of a scenario start with a mean deviation from $\hat p_0$, which then decays at the
    rate of $p - \hat p$.

    **Arguments:**

    - `mean`: $\mu = (E\hat p_0, E[p_0 - \hat p_0])$, shape `(2,)`.
    - `cov`: $C$, shape `(2, 2)`, symmetric positive semi-definite.
    """

    mean: Float[Array, "2"] = eqx.field(converter=reals("initial.mean"))
    cov: Float[Array, "2 2"] = eqx.field(converter=reals("initial.cov"))

    def __check_init__(self):
        if self.mean.shape != (2,):
            raise ValueError(
                f"initial.mean must have shape (2,) (phat0, p0 - phat0), got {self.mean.shape}"
            )
        if self.cov.shape != (2, 2):
            raise ValueError(f"initial.cov must have shape (2, 2), got {self.cov.shape}")
        if is_concrete(self.cov):
            c = np.asarray(self.cov, dtype=np.float64)
            scale = max(float(np.max(np.abs(c))), 1e-300)
            if abs(c[0, 1] - c[1, 0]) > 1e-12 * scale:
                raise ValueError(f"initial.cov must be symmetric, got {c.tolist()}")
            if np.min(np.linalg.eigvalsh(c)) < -1e-12 * scale:
                raise ValueError(
                    "initial.cov must be positive semi-definite (eigenvalues >= 0), got "
                    f"eigenvalues {np.linalg.eigvalsh(c).tolist()}"
                )

    def draw(self, key: PRNGKeyArray, scenarios: Array, paths: Array, dtype) -> tuple:
        r"""$\hat p_0$ of shape `scenarios.shape` and $p_0$ of shape
        `scenarios.shape + paths.shape`, for integer scenario and path indices."""
        mu = self.mean.astype(dtype)
        c = self.cov.astype(dtype)
        c11, c12, c22 = c[0, 0], 0.5 * (c[0, 1] + c[1, 0]), c[1, 1]
        k_scen, k_path = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)

        def normal(k, *ids):
            for i in ids:
                k = jax.random.fold_in(k, i)
            return jax.random.normal(k, (), dtype)

        z1 = jax.vmap(lambda m: normal(k_scen, m))(scenarios)
        z2 = jax.vmap(lambda m: jax.vmap(lambda j: normal(k_path, m, j))(paths))(scenarios)
        safe = jnp.where(c11 > 0, c11, 1.0)
        slope = jnp.where(c11 > 0, c12 / safe, 0.0)
        resid = jnp.sqrt(jnp.maximum(c22 - slope * c12, 0.0))
        phat0 = mu[0] + jnp.sqrt(jnp.maximum(c11, 0.0)) * z1
        x0 = mu[1] + slope * (phat0 - mu[0])[:, None] + resid * z2
        return phat0, phat0[:, None] + x0
