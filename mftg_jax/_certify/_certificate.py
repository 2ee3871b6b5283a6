r"""One certificate type for every family: best-response (Nash) gaps with one sign convention.

For each player the candidate equilibrium's feedback of the others is frozen and the player's
own control problem is solved by a route independent of the game's Riccati system. With $J$
the player's objective (a revenue to maximise or a cost to minimise), the relative gap is

$$\text{gap} = \frac{\text{what the player gains by deviating}}{\max(|J^{BR}|, |J^{cand}|)}
  = \begin{cases}(J^{BR} - J^{cand})/\max(\cdot) & \text{revenue}\\
                 (J^{cand} - J^{BR})/\max(\cdot) & \text{cost}\end{cases}$$

so in every family a gap $\ge 0$ says by how much a player can gain by deviating; it vanishes
(to solver tolerance, with either sign) exactly at an equilibrium.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array

_OBJECTIVES = ("revenue", "cost")


class NashCertificate(eqx.Module):
    """Best-response check of a candidate equilibrium, per player (and per regime).

    **Fields:**

    - `best_response_value`: the player's best value against the others' frozen feedback.
    - `candidate_value`: the value the player's candidate feedback actually earns (policy
      evaluation, independent of the value-function formula).
    - `formula_value`: the candidate's value-function formula (from its Riccati solution).
    - `gap`: the relative gain from deviating (module docstring); $\\ge 0$ up to tolerance.
    - `objective`: `"revenue"` (values are maximised) or `"cost"` (minimised).
    """

    best_response_value: Array
    candidate_value: Array
    formula_value: Array
    gap: Array
    objective: str = eqx.field(static=True)

    def __check_init__(self):
        if self.objective not in _OBJECTIVES:
            raise ValueError(f"objective must be one of {_OBJECTIVES}, got {self.objective!r}")

    @property
    def gain(self) -> Array:
        """The absolute gain from deviating, $\\ge 0$ up to tolerance."""
        d = self.best_response_value - self.candidate_value
        return d if self.objective == "revenue" else -d

    @property
    def max_gap(self) -> Array:
        """The largest relative gap over players (and regimes), a scalar."""
        return jnp.max(self.gap)


def certificate(best, candidate, formula, objective: str) -> NashCertificate:
    """Build a [`NashCertificate`][mftg_jax.NashCertificate] with its relative gap."""
    d = best - candidate if objective == "revenue" else candidate - best
    scale = jnp.maximum(jnp.abs(best), jnp.abs(candidate))
    # A player whose every value is zero (no revenue, no cost) has nothing to gain: gap 0.
    gap = d / jnp.maximum(scale, jnp.finfo(jnp.result_type(scale)).tiny)
    return NashCertificate(best, candidate, formula, gap, objective)
