"""TOML configuration of a mining study: read and validate with field paths.

The format (every key optional except where a table is given; defaults shown)::

    [game]                 # the branch-choice game (BranchGame)
    rate = 6.0             # blocks per hour, all hash power
    depth = 6              # confirmation depth k
    lead = 0               # initial lead of branch 1, |lead| < depth
    price = [1.0, 1.0]     # value of a block's reward on each branch
    reward = 1.0           # Wattcoins per block
    cost = 0.0             # per unit of hash power per hour
    alpha0 = 1.0           # crowd effect a_b = alpha0 + crowd * m_b
    crowd = 0.0
    eta = 0.0              # risk aversion (>= 0)
    miner_share = 0.01
    [sweep]                # equilibria against the crowd parameter, for each eta
    crowd = [0.0]
    eta = [0.0]
    [selfish]              # selfish mining
    alpha = [0.1, 0.2, 0.3, 0.4, 0.45]
    gamma = [0.0, 0.5, 1.0]
    depth = 20             # MDP truncation
    depth_check = 25       # a deeper truncation for the convergence check
    risk_eta = [0.5]       # risk aversions of the certainty equivalents (> 0)
    risk_gamma = 0.5
    risk_depth = 12
    mc_runs = 512          # Monte Carlo of the Eyal-Sirer strategy
    mc_blocks = 4000
    seed = 0
    [forks]
    share = 0.6            # initial share of branch 1
    switching_rate = 0.5   # per hour
    precision = 1.0        # logit precision
    n_races = 2048
    max_blocks = 600
    seed = 0
    study_shares = [0.6]   # the March 2013 consistency grid
    study_rates = [0.5]
    observed_orphaned = 24
    observed_hours = 6.0
"""

import os

from .._toml import ConfigError, integer, load, number, numbers, table, unknown
from ._game import BranchGame

_TOP = {"game", "sweep", "selfish", "forks"}
_GAME = {"rate", "depth", "lead", "price", "reward", "cost", "alpha0", "crowd", "eta"}
_GAME |= {"miner_share"}
_SWEEP = {"crowd", "eta"}
_SELFISH = {"alpha", "gamma", "depth", "depth_check", "risk_eta", "risk_gamma", "risk_depth"}
_SELFISH |= {"mc_runs", "mc_blocks", "seed"}
_FORKS = {"share", "switching_rate", "precision", "n_races", "max_blocks", "seed"}
_FORKS |= {"study_shares", "study_rates", "observed_orphaned", "observed_hours"}


def _list(t, key, where, default, lo=None, hi=None, strict=False):
    v = numbers(t, key, where) if key in t else list(default)
    for x in v:
        bad = (lo is not None and (x <= lo if strict else x < lo)) or (hi is not None and x > hi)
        if bad:
            rng = f"{'(' if strict else '['}{lo}, {hi if hi is not None else 'inf'}]"
            raise ConfigError(f"{where}{key} must lie in {rng}, got {x!r}")
    if not v:
        raise ConfigError(f"{where}{key} must not be empty")
    return v


def config_from_dict(d: dict) -> dict:
    """Validate parsed TOML (module docstring) into `game` (a
    [`BranchGame`][mftg_jax.mining.BranchGame]) and the `sweep`, `selfish`, `forks` settings;
    a bad key or value raises [`mftg_jax.ConfigError`][] naming it."""
    unknown("", d, _TOP)
    g = table(d, "game", required=False)
    unknown("game.", g, _GAME)
    price = _list(g, "price", "game.", [1.0, 1.0], lo=0.0)
    if len(price) != 2:
        raise ConfigError(f"game.price must have 2 entries (one per branch), got {len(price)}")
    depth = integer(g, "depth", "game.", 6, lo=1)
    lead = g.get("lead", 0)
    if isinstance(lead, bool) or not isinstance(lead, int) or abs(lead) >= depth:
        raise ConfigError(
            f"game.lead must be an integer with |lead| < depth = {depth}, got {lead!r}"
        )
    game = BranchGame(
        rate=number(g, "rate", "game.", 6.0),
        depth=depth,
        lead=lead,
        price=price,
        reward=number(g, "reward", "game.", 1.0),
        cost=number(g, "cost", "game.", 0.0),
        alpha0=number(g, "alpha0", "game.", 1.0),
        crowd=number(g, "crowd", "game.", 0.0),
        eta=number(g, "eta", "game.", 0.0),
        miner_share=number(g, "miner_share", "game.", 0.01),
    )
    sw = table(d, "sweep", required=False)
    unknown("sweep.", sw, _SWEEP)
    sweep = dict(
        crowd=_list(sw, "crowd", "sweep.", [float(game.crowd)]),
        eta=_list(sw, "eta", "sweep.", [float(game.eta)], lo=0.0),
    )
    for c in sweep["crowd"]:
        if not 0 <= float(game.alpha0) + c <= 1:
            raise ConfigError(f"sweep.crowd: alpha0 + crowd must lie in [0, 1], got crowd = {c}")
    s = table(d, "selfish", required=False)
    unknown("selfish.", s, _SELFISH)
    sdepth = integer(s, "depth", "selfish.", 20, lo=2)
    selfish = dict(
        alpha=_list(s, "alpha", "selfish.", [0.1, 0.2, 0.3, 0.4, 0.45], lo=0.0, strict=True),
        gamma=_list(s, "gamma", "selfish.", [0.0, 0.5, 1.0], lo=0.0, hi=1.0),
        depth=sdepth,
        depth_check=integer(s, "depth_check", "selfish.", sdepth + 5, lo=sdepth + 1),
        risk_eta=_list(s, "risk_eta", "selfish.", [0.5], lo=0.0, strict=True),
        risk_gamma=number(s, "risk_gamma", "selfish.", 0.5),
        risk_depth=integer(s, "risk_depth", "selfish.", 12, lo=2),
        mc_runs=integer(s, "mc_runs", "selfish.", 512, lo=2),
        mc_blocks=integer(s, "mc_blocks", "selfish.", 4000, lo=2),
        seed=integer(s, "seed", "selfish.", 0),
    )
    if any(a >= 0.5 for a in selfish["alpha"]):
        raise ConfigError("selfish.alpha must lie in (0, 0.5)")
    if not 0 <= selfish["risk_gamma"] <= 1:
        raise ConfigError(f"selfish.risk_gamma must lie in [0, 1], got {selfish['risk_gamma']}")
    f = table(d, "forks", required=False)
    unknown("forks.", f, _FORKS)
    share = number(f, "share", "forks.", 0.6)
    if not 0 <= share <= 1:
        raise ConfigError(f"forks.share must lie in [0, 1], got {share}")
    forks = dict(
        share=share,
        switching_rate=number(f, "switching_rate", "forks.", 0.5),
        precision=number(f, "precision", "forks.", 1.0),
        n_races=integer(f, "n_races", "forks.", 2048, lo=2),
        max_blocks=integer(f, "max_blocks", "forks.", 600, lo=2),
        seed=integer(f, "seed", "forks.", 0),
        study_shares=_list(f, "study_shares", "forks.", [share], lo=0.0, hi=1.0),
        study_rates=_list(f, "study_rates", "forks.", [0.5], lo=0.0),
        observed_orphaned=number(f, "observed_orphaned", "forks.", 24.0),
        observed_hours=number(f, "observed_hours", "forks.", 6.0),
    )
    for k in ("switching_rate", "precision"):
        if forks[k] < 0:
            raise ConfigError(f"forks.{k} must be >= 0, got {forks[k]}")
    return dict(game=game, sweep=sweep, selfish=selfish, forks=forks)


def load_config(path: str | os.PathLike) -> dict:
    """Read a mining study from a TOML file (module docstring).

    **Raises:** [`mftg_jax.ConfigError`][] prefixed with the file name.
    """
    return load(path, config_from_dict)
