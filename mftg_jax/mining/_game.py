r"""The branch-choice game of the slides ("Risk-aware co-opetition between Wattcoin miners").

A continuum of miners splits its hash power over two public branches, shares $m_1 = m$ and
$m_2 = 1 - m$. Blocks arrive at total rate $\lambda$; the race is the absorbing walk of
`_race.py`, from lead $d_0$, decided at the confirmation depth $k$. A miner of (small) share
$\delta$ on branch $b$ finds a Poisson share of that branch's blocks: given the branch finds
$n_b$ blocks, hers are $\mathrm{Bin}(n_b, \theta_b)$, $\theta_b = \delta/m_b$. A block pays
$r\,\bar p_b$ when (i) its branch wins the race and (ii) the network accepts it, which happens
with the slides' crowd-effect probability

$$a_b = \alpha_0 + \varepsilon\, m_b$$

(independently per block). Mining costs $c$ per unit of hash power and hour for the race's
duration $\tau$. So $R_b = r\bar p_b X_b - c\,\delta\,\tau$ with
$X_b \mid \text{path} \sim \mathrm{Bin}(n_b, \theta_b a_b)$ on a win and $0$ otherwise, and the
risk-averse certainty equivalent ($\eta > 0$; the slides' $\eta_j$ is $-\eta$, see
docs/mining.md) is, exactly,

$$\mathrm{CE}_b = -\frac1\eta \log E\,e^{-\eta R_b},\qquad
  E\,e^{-\eta R_b} = f(d_0),$$

with $f$ the race functional with $w = \lambda/(\lambda - \eta c\delta)$ (the $S$ exponential
inter-arrival times of the race), $z_b = 1 - \theta_b a_b + \theta_b a_b e^{-\eta r \bar p_b}$
on the miner's own branch, boundary 1 where branch $b$ wins and 0 where it loses, plus the same
functional without $z_b$ and with the boundaries swapped (a lost race pays nothing).
At $\eta = 0$ it is $E R_b$. The payoff is reported per unit of hash power,
$u_b = \mathrm{CE}_b/\delta$.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike
import numpy as np

from .._validation import check_field, is_concrete
from ._race import race_functional


class BranchGame(eqx.Module):
    r"""The two-branch crowd-seeking game (module docstring).

    **Arguments:**

    - `rate`: $\lambda > 0$, blocks per hour found by all the hash power.
    - `depth`: confirmation depth $k \ge 1$ (static).
    - `lead`: initial lead $d_0$ of branch 1, $|d_0| < k$ (static).
    - `price`: $\bar p_b \ge 0$, the value of a block's reward on each branch, `(2,)`.
    - `reward`: $r > 0$, the reward per block (in Wattcoins).
    - `cost`: $c \ge 0$, mining cost per unit of hash power per hour.
    - `alpha0`, `crowd`: the crowd effect $a_b = \alpha_0 + \varepsilon m_b$, with
      $0 \le \alpha_0 \le 1$ and $0 \le \alpha_0 + \varepsilon \le 1$.
    - `eta`: risk aversion $\eta \ge 0$ ($0$: risk neutral).
    - `miner_share`: $\delta \in (0, 1)$, the size of the miner whose certainty equivalent is
      computed (the race itself is the mean field's: $\delta$ does not move it).
    """

    rate: Array
    price: Array
    reward: Array
    cost: Array
    alpha0: Array
    crowd: Array
    eta: Array
    miner_share: Array
    depth: int = eqx.field(static=True, default=6)
    lead: int = eqx.field(static=True, default=0)
    risk_neutral: bool | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        rate: ArrayLike = 6.0,
        depth: int = 6,
        lead: int = 0,
        price: ArrayLike = (1.0, 1.0),
        reward: ArrayLike = 1.0,
        cost: ArrayLike = 0.0,
        alpha0: ArrayLike = 1.0,
        crowd: ArrayLike = 0.0,
        eta: ArrayLike = 0.0,
        miner_share: ArrayLike = 0.01,
    ):
        f = lambda x: jnp.asarray(x, float)  # noqa: E731
        self.rate, self.price, self.reward, self.cost = f(rate), f(price), f(reward), f(cost)
        self.alpha0, self.crowd, self.eta, self.miner_share = (
            f(alpha0),
            f(crowd),
            f(eta),
            f(miner_share),
        )
        self.depth, self.lead = depth, lead
        # Known at construction (a concrete eta): compile only the branch that is needed.
        self.risk_neutral = bool(self.eta == 0) if is_concrete(self.eta) else None

    def __check_init__(self):
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {self.depth!r}")
        if not isinstance(self.lead, int) or abs(self.lead) >= self.depth:
            raise ValueError(f"lead must be an integer with |lead| < depth = {self.depth}")
        check_field("rate", self.rate, "> 0", lambda v: v > 0)
        check_field("price", self.price, ">= 0", lambda v: v >= 0)
        if self.price.shape != (2,):
            raise ValueError(f"price must have shape (2,) (one per branch), got {self.price.shape}")
        check_field("reward", self.reward, "> 0", lambda v: v > 0)
        check_field("cost", self.cost, ">= 0", lambda v: v >= 0)
        check_field("alpha0", self.alpha0, "in [0, 1]", lambda v: (v >= 0) & (v <= 1))
        check_field(
            "crowd", self.alpha0 + self.crowd, "such that alpha0 + crowd is in [0, 1]",
            lambda v: (v >= 0) & (v <= 1),
        )  # fmt: skip
        check_field("eta", self.eta, ">= 0", lambda v: v >= 0)
        check_field("miner_share", self.miner_share, "in (0, 1)", lambda v: (v > 0) & (v < 1))
        check_field(
            "cost", self.eta * self.cost * self.miner_share - self.rate,
            "such that eta * cost * miner_share < rate (finite exponential moment of the cost)",
            lambda v: v < 0,
        )  # fmt: skip

    def acceptance(self, shares: Array) -> Array:
        r"""$a_b = \alpha_0 + \varepsilon m_b$ per branch."""
        return self.alpha0 + self.crowd * shares

    def _log_mgf(self, m, eta, branch: int):
        """$\\log E e^{-\\eta R_b}$ at share `m` of branch 1, from the initial lead."""
        shares = jnp.stack([m, 1 - m])
        d = self.miner_share
        theta = d / jnp.maximum(shares[branch], d)
        ta = theta * self.acceptance(shares)[branch]
        z = 1 - ta + ta * jnp.exp(-eta * self.reward * self.price[branch])
        w = self.rate / (self.rate - eta * self.cost * d)
        one = jnp.ones_like(z)
        z1, z2 = (z, one) if branch == 0 else (one, z)
        # Own blocks pay only on a win: E[w^S z^{n_b}; win] + E[w^S; loss].
        b_wins = (1.0, 0.0) if branch == 0 else (0.0, 1.0)
        paid = race_functional(m, self.depth, w, z1, z2, *b_wins)
        lost = race_functional(m, self.depth, w, one, one, 1 - b_wins[0], 1 - b_wins[1])
        return jnp.log(paid + lost)

    def payoff(self, m: ArrayLike, eta: ArrayLike | None = None) -> Array:
        r"""$u = (u_1, u_2)$ at share $m$ of branch 1 from the initial lead (see
        `payoff_by_lead`)."""
        return self.payoff_by_lead(m, eta)[:, self.lead + self.depth - 1]

    def payoff_by_lead(self, m: ArrayLike, eta: ArrayLike | None = None) -> Array:
        r"""The certainty equivalents per unit of hash power on each branch at share $m$ of
        branch 1 (module docstring), from every lead $d = -k+1, \dots, k-1$: `(2, 2k - 1)`;
        `eta` overrides the game's $\eta$.

        At $\eta = 0$: $u_b = -\frac{d}{d\eta}\log E e^{-\eta R_b}\big|_0/\delta = E R_b/\delta$
        (forward-mode derivative of the same race functional).
        """
        m = jnp.asarray(m, float)
        mode = self.risk_neutral if eta is None else None
        if eta is not None and is_concrete(eta):
            mode = bool(np.all(np.asarray(eta) == 0))
        eta = self.eta if eta is None else jnp.asarray(eta, float)
        safe = jnp.where(eta > 0, eta, 1.0)
        out = []
        for b in (0, 1):
            if mode is not True:
                ce = -self._log_mgf(m, safe, b) / safe
            if mode is not False:

                def lm(e, b=b):
                    return self._log_mgf(m, e, b)

                _, dlm = jax.jvp(lm, (jnp.zeros_like(eta),), (jnp.ones_like(eta),))
                mean = -dlm
            u = mean if mode is True else ce if mode is False else jnp.where(eta > 0, ce, mean)
            out.append(u / self.miner_share)
        return jnp.stack(out)

    def advantage(self, m: ArrayLike) -> Array:
        r"""$\Delta(m) = u_1(m) - u_2(m)$: the gain of moving from branch 2 to branch 1."""
        u = self.payoff(m)
        return u[0] - u[1]
