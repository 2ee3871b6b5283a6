r"""The selfish-mining Markov decision process of Sapirshtein, Sompolinsky and Zohar (2016).

An attacker with a share $\alpha$ of the hash power mines on a private branch; $\gamma$ is the
share of the honest hash power that mines on the attacker's block during a tie. The state is
$(a, h, \text{fork})$: the lengths $a$ of the attacker's private branch and $h$ of the public
branch since their last common block, and whether the last block was the attacker's
(`irrelevant`), the honest network's (`relevant`: a match is possible) or a tie is being raced
(`active`). Each step is one block found by somebody (attacker with probability $\alpha$).
The actions and their transitions, with the rewards (attacker, honest) they lock in
($i$, $r$, act: irrelevant, relevant, active):

- adopt (always): to $(1,0,i)$ w.p. $\alpha$, $(0,1,i)$ w.p. $1-\alpha$; reward $(0, h)$.
- override ($a > h$): to $(a-h,0,i)$ w.p. $\alpha$, $(a-h-1,1,r)$ w.p. $1-\alpha$;
  reward $(h+1, 0)$.
- wait (fork not active): to $(a+1,h,i)$ w.p. $\alpha$, $(a,h+1,r)$ w.p. $1-\alpha$.
- match ($a \ge h \ge 1$, fork relevant), and wait when active: to $(a+1,h,\text{act})$
  w.p. $\alpha$, $(a-h,1,r)$ w.p. $\gamma(1-\alpha)$ with reward $(h, 0)$, $(a,h+1,r)$ w.p.
  $(1-\gamma)(1-\alpha)$.

The truncation depth $T$ keeps $a, h \le T$: wait and match need $a < T$ and $h < T$, so at
the boundary the attacker must adopt or override (SSZ, section 4). The objective is the
relative revenue $\lim E[\sum r_A] / E[\sum (r_A + r_H)]$, solved in `_dinkelbach.py`.

The structure (successors, which probability, rewards) is built once per depth in NumPy; the
probabilities are a function of $(\alpha, \gamma)$ in JAX, so one compiled program serves a
whole grid of $(\alpha, \gamma)$ under `jax.vmap`.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike
import numpy as np

ADOPT, OVERRIDE, MATCH, WAIT = 0, 1, 2, 3
ACTIONS = ("adopt", "override", "match", "wait")
IRRELEVANT, RELEVANT, ACTIVE = 0, 1, 2
FORKS = ("irrelevant", "relevant", "active")
# Probability kinds of a successor: alpha, 1 - alpha, gamma (1 - alpha), (1 - gamma)(1 - alpha),
# and 0 (an unused successor slot).
_A, _NA, _GNA, _NGNA, _ZERO = range(5)


def _structure(T: int):
    n = (T + 1) * (T + 1) * 3
    idx = lambda a, h, f: (a * (T + 1) + h) * 3 + f  # noqa: E731
    succ = np.zeros((n, 4, 3), np.int32)
    kind = np.full((n, 4, 3), _ZERO, np.int32)
    ra = np.zeros((n, 4, 3))
    rh = np.zeros((n, 4, 3))
    ok = np.zeros((n, 4), bool)
    for a in range(T + 1):
        for h in range(T + 1):
            for f in range(3):
                s = idx(a, h, f)
                succ[s] = s  # unused slots point at the state itself, with probability 0
                ok[s, ADOPT] = True
                succ[s, ADOPT, :2] = idx(1, 0, IRRELEVANT), idx(0, 1, IRRELEVANT)
                kind[s, ADOPT, :2] = _A, _NA
                rh[s, ADOPT, :2] = h
                if a > h:
                    ok[s, OVERRIDE] = True
                    succ[s, OVERRIDE, :2] = idx(a - h, 0, IRRELEVANT), idx(a - h - 1, 1, RELEVANT)
                    kind[s, OVERRIDE, :2] = _A, _NA
                    ra[s, OVERRIDE, :2] = h + 1
                if a < T and h < T:
                    race = (idx(a + 1, h, ACTIVE), idx(a - h, 1, RELEVANT), idx(a, h + 1, RELEVANT))
                    if f == ACTIVE:
                        ok[s, WAIT] = True
                        succ[s, WAIT] = race
                        kind[s, WAIT] = _A, _GNA, _NGNA
                        ra[s, WAIT, 1] = h
                    else:
                        ok[s, WAIT] = True
                        succ[s, WAIT, :2] = idx(a + 1, h, IRRELEVANT), idx(a, h + 1, RELEVANT)
                        kind[s, WAIT, :2] = _A, _NA
                    if f == RELEVANT and a >= h >= 1:
                        ok[s, MATCH] = True
                        succ[s, MATCH] = race
                        kind[s, MATCH] = _A, _GNA, _NGNA
                        ra[s, MATCH, 1] = h
    return succ, kind, ra, rh, ok


class SelfishMiningMDP(eqx.Module):
    r"""The SSZ selfish-mining MDP truncated at depth $T$ (module docstring): $3(T+1)^2$
    states, 4 actions, at most 3 successors per state-action.

    **Arguments:**

    - `depth`: the truncation depth $T \ge 2$ ($a, h \le T$).

    **Fields:** `successor (S, 4, 3)` state indices, `kind (S, 4, 3)` which probability
    (0: $\alpha$, 1: $1-\alpha$, 2: $\gamma(1-\alpha)$, 3: $(1-\gamma)(1-\alpha)$, 4: 0),
    `attacker_reward`, `honest_reward (S, 4, 3)` (blocks locked into the chain by the
    transition), `feasible (S, 4)`.
    """

    depth: int = eqx.field(static=True)
    successor: Array
    kind: Array
    attacker_reward: Array
    honest_reward: Array
    feasible: Array

    def __init__(self, depth: int = 20):
        if isinstance(depth, bool) or not isinstance(depth, int | np.integer) or depth < 2:
            raise ValueError(f"depth must be an integer >= 2, got {depth!r}")
        self.depth = int(depth)
        succ, kind, ra, rh, ok = _structure(self.depth)
        self.successor = jnp.asarray(succ)
        self.kind = jnp.asarray(kind)
        self.attacker_reward = jnp.asarray(ra)
        self.honest_reward = jnp.asarray(rh)
        self.feasible = jnp.asarray(ok)

    @property
    def n_states(self) -> int:
        """$3(T+1)^2$."""
        return 3 * (self.depth + 1) ** 2

    def index(self, a: int, h: int, fork: int) -> int:
        """The state index of $(a, h, \\text{fork})$ (fork 0, 1, 2: irrelevant, relevant,
        active)."""
        T = self.depth
        if not (0 <= a <= T and 0 <= h <= T and fork in (0, 1, 2)):
            raise ValueError(f"state (a, h, fork) must lie in [0, {T}]^2 x {{0, 1, 2}}")
        return (a * (T + 1) + h) * 3 + fork

    def probabilities(self, alpha: ArrayLike, gamma: ArrayLike) -> Array:
        """Transition probabilities `(S, 4, 3)` at scalar $(\\alpha, \\gamma)$."""
        alpha = jnp.asarray(alpha, float)
        gamma = jnp.asarray(gamma, float)
        table = jnp.stack(
            [
                alpha,
                1 - alpha,
                gamma * (1 - alpha),
                (1 - gamma) * (1 - alpha),
                jnp.zeros_like(alpha),
            ]
        )
        return table[self.kind]

    def states(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(a, h, fork)` of every state index, as NumPy arrays `(S,)`."""
        s = np.arange(self.n_states)
        f = s % 3
        ah = s // 3
        return ah // (self.depth + 1), ah % (self.depth + 1), f


def honest_policy(mdp: SelfishMiningMDP) -> Array:
    """Following the longest chain: publish every block at once (override at $(1, 0)$),
    adopt the honest chain otherwise. Its relative revenue is exactly $\\alpha$."""
    a, h, _ = mdp.states()
    return jnp.asarray(np.where(a > h, OVERRIDE, ADOPT).astype(np.int32))


def eyal_sirer_policy(mdp: SelfishMiningMDP) -> Array:
    r"""The Eyal-Sirer strategy (SSZ's SM1) as a policy of the MDP: adopt when $h > a$;
    match at $a = h \ge 1$ after an honest block; override when $h = a - 1 \ge 1$; wait
    otherwise; at the truncation boundary override ($a > h$) or adopt.
    """
    a, h, f = mdp.states()
    T = mdp.depth
    pol = np.full(a.shape, WAIT, np.int32)
    pol[(f == RELEVANT) & (a == h) & (h >= 1)] = MATCH
    pol[(h == a - 1) & (h >= 1)] = OVERRIDE
    pol[h > a] = ADOPT
    pol[(a == 0) & (h == 0)] = ADOPT
    edge = (a >= T) | (h >= T)
    pol[edge] = np.where(a[edge] > h[edge], OVERRIDE, ADOPT)
    ok = np.asarray(mdp.feasible)[np.arange(a.size), pol]
    assert ok.all()
    return jnp.asarray(pol)
