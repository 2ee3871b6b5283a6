r"""Information criteria of a fit, and the likelihood ratio of the equilibrium model against
the MRJD.

$$\ell = -T\,\bar\ell, \qquad \mathrm{AIC} = 2k - 2\ell, \qquad \mathrm{BIC} = k\log T - 2\ell$$

with $\bar\ell$ the mean one-step negative log-likelihood of the $T$ training observations
and $k$ fitted coordinates.

**The MRJD is nested at a boundary.** The equilibrium price is the sum of two
Ornstein-Uhlenbeck factors; with one factor's noise switched off (for common jumps: the
idiosyncratic volatility $\sigma = 0$) it is the one-factor MRJD with $\kappa = \eta(1+K)$,
and $\eta$ alone is then not identified. So under the null "MRJD" the parameter sits on the
boundary of its space ($\sigma \ge 0$) *and* another parameter vanishes from the
likelihood: $2(\ell_\mathrm{eq} - \ell_\mathrm{mrjd})$ does not have the $\chi^2_{\Delta k}$
law (not even the $\tfrac12\chi^2_0 + \tfrac12\chi^2_1$ mixture of a boundary alone); its law
is that of the supremum of a $\chi^2$ process over the unidentified parameter (Davies 1977,
1987; Andrews 2001), with no closed form. The statistic is reported, without a p-value, and
the comparison is made by AIC and BIC (and by the out-of-sample NLL).
"""

import math

REFERENCE_LAW = (
    "non-standard: the MRJD is the boundary sigma = 0 of the equilibrium model (one factor's "
    "noise off), where eta is not identified; the statistic is the supremum of a chi-square "
    "process over eta (Davies 1977, 1987; Andrews 2001), not chi-square with the difference "
    "in parameters, and no p-value is given: the models are compared by AIC and BIC"
)


def information_criteria(loss_per_obs: float, n_obs: int, k: int) -> dict:
    """`{"k", "n_obs", "loglik", "aic", "bic"}` of a fit whose mean NLL per observation is
    `loss_per_obs` over `n_obs` observations with `k` parameters (module docstring)."""
    loglik = -float(loss_per_obs) * int(n_obs)
    return {
        "k": int(k),
        "n_obs": int(n_obs),
        "loglik": loglik,
        "aic": 2 * k - 2 * loglik,
        "bic": k * math.log(n_obs) - 2 * loglik,
    }


def likelihood_ratio(equilibrium: dict, mrjd: dict) -> dict:
    """The likelihood-ratio statistic $2(\\ell_\\mathrm{eq} - \\ell_\\mathrm{mrjd})$ from two
    [`information_criteria`][] dictionaries, with its (non-standard) reference law stated.

    A negative statistic means the equilibrium fit stopped below the MRJD it nests: a local
    optimum (`"nested_optimum_missed": true`)."""
    stat = 2 * (equilibrium["loglik"] - mrjd["loglik"])
    return {
        "statistic": stat,
        "extra_parameters": equilibrium["k"] - mrjd["k"],
        "reference_law": REFERENCE_LAW,
        "p_value": None,
        "nested_optimum_missed": bool(stat < 0),
    }


def earns_parameters(info: dict, nll_test: dict) -> dict:
    """Whether the equilibrium model beats the MRJD by each criterion (lower AIC, lower BIC,
    lower test NLL; None without a test period)."""
    eq, mr = info["equilibrium"], info["mrjd"]
    te, tm = nll_test.get("equilibrium"), nll_test.get("mrjd")
    return {
        "aic": bool(eq["aic"] < mr["aic"]),
        "bic": bool(eq["bic"] < mr["bic"]),
        "test_nll": None if te is None or tm is None else bool(te < tm),
    }
