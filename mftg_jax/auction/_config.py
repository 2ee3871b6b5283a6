r"""TOML configuration of an auction and its prosumer: read and validate with field paths.

The format (optional keys show their default)::

    [[bidders]]              # K >= 2 tables, one per bidder; a common `hi`
    dist = "uniform"         # "uniform" | "power" | "truncated_normal" | "beta"
    lo = 0.0
    hi = 1.0
    [[bidders]]
    dist = "truncated_normal"
    lo = 0.2
    hi = 1.0
    mean = 0.5               # truncated_normal: mean, std > 0
    std = 0.2
    [[bidders]]
    dist = "power"           # power: a > 0, F(c) = ((c - lo)/(hi - lo))^a
    lo = 0.1
    hi = 1.0
    a = 2.0
    # dist = "beta" takes alpha > 0, beta > 0

    [solver]                 # optional
    delta = 1e-4             # end of the integration: hi - delta (hi - max lo)
    rtol = 1e-10
    atol = 1e-12

    [collocation]            # optional: the second method, as a cross-check
    degree = 32              # polynomial degree >= 4; 0 skips it

    [certificate]            # optional
    n_costs = 201
    n_bids = 2001

    [monte_carlo]            # optional
    n = 20000
    seed = 0

    [prosumer]               # optional: the sell-or-buy decision against the reserve
    demand = 1.0
    offer = 0.5
    c1 = 0.1
    c2 = 2.0
    theta = 1.0
    price = 0.3
    price_slope = 0.1
    bidder = 0               # its index among the bidders
    reserve_min = 0.0
    reserve_max = 2.0
    n_reserve = 41
"""

import os

from .._toml import ConfigError, integer, load, number, table, unknown
from ._auction import Auction
from ._distributions import Beta, Power, TruncatedNormal, Uniform
from ._prosumer import Prosumer

_TOP = {"bidders", "solver", "collocation", "certificate", "monte_carlo", "prosumer"}
_DISTS = {
    "uniform": (Uniform, ()),
    "power": (Power, ("a",)),
    "truncated_normal": (TruncatedNormal, ("mean", "std")),
    "beta": (Beta, ("alpha", "beta")),
}
_PROSUMER = ("demand", "offer", "c1", "c2", "theta", "price", "price_slope")


def _bidder(t, where: str):
    if not isinstance(t, dict):
        raise ConfigError(f"{where} must be a table")
    dist = t.get("dist")
    if dist not in _DISTS:
        raise ConfigError(f"{where}.dist must be one of {', '.join(_DISTS)}, got {dist!r}")
    cls, extra = _DISTS[dist]
    unknown(f"{where}.", t, {"dist", "lo", "hi", *extra})
    values = [number(t, k, f"{where}.") for k in ("lo", "hi", *extra)]
    return cls(*values)


def auction_from_dict(d: dict) -> Auction:
    """Build an [`Auction`][mftg_jax.auction.Auction] from parsed TOML (module docstring);
    a bad key or value raises [`mftg_jax.ConfigError`][] naming it."""
    unknown("", d, _TOP)
    bidders = d.get("bidders")
    if not isinstance(bidders, list) or len(bidders) < 2:
        raise ConfigError("[[bidders]] must list K >= 2 bidder tables")
    return Auction(tuple(_bidder(t, f"bidders[{k}]") for k, t in enumerate(bidders)))


def settings_from_dict(d: dict) -> dict:
    """The optional `[solver]`, `[collocation]`, `[certificate]`, `[monte_carlo]` settings
    with defaults."""
    s = table(d, "solver", required=False)
    unknown("solver.", s, {"delta", "rtol", "atol"})
    col = table(d, "collocation", required=False)
    unknown("collocation.", col, {"degree"})
    c = table(d, "certificate", required=False)
    unknown("certificate.", c, {"n_costs", "n_bids"})
    m = table(d, "monte_carlo", required=False)
    unknown("monte_carlo.", m, {"n", "seed"})
    out = dict(
        delta=number(s, "delta", "solver.", 1e-4),
        rtol=number(s, "rtol", "solver.", 1e-10),
        atol=number(s, "atol", "solver.", 1e-12),
        collocation_degree=integer(col, "degree", "collocation.", 32, lo=0),
        n_costs=integer(c, "n_costs", "certificate.", 201, lo=2),
        n_bids=integer(c, "n_bids", "certificate.", 2001, lo=3),
        n_mc=integer(m, "n", "monte_carlo.", 20000, lo=2),
        seed=integer(m, "seed", "monte_carlo.", 0),
    )
    if 0 < out["collocation_degree"] < 4:
        raise ConfigError(
            f"collocation.degree must be 0 (skip) or >= 4, got {out['collocation_degree']}"
        )
    for k in ("delta", "rtol", "atol"):
        if not 0 < out[k] < 0.5:
            raise ConfigError(f"solver.{k} must be in (0, 0.5), got {out[k]!r}")
    return out


def prosumer_from_dict(d: dict, n_bidders: int):
    """`(Prosumer, reserves (min, max, n))` from `[prosumer]`, or `None` when absent."""
    if "prosumer" not in d:
        return None
    p = table(d, "prosumer")
    unknown("prosumer.", p, {*_PROSUMER, "bidder", "reserve_min", "reserve_max", "n_reserve"})
    bidder = integer(p, "bidder", "prosumer.", 0)
    if bidder >= n_bidders:
        raise ConfigError(f"prosumer.bidder must be < K = {n_bidders}, got {bidder}")
    pro = Prosumer(*(number(p, k, "prosumer.") for k in _PROSUMER), bidder=bidder)
    r0 = number(p, "reserve_min", "prosumer.", 0.0)
    r1 = number(p, "reserve_max", "prosumer.", 2.0)
    if not r1 > r0:
        raise ConfigError(f"prosumer.reserve_max must be > reserve_min = {r0}, got {r1}")
    return pro, (r0, r1, integer(p, "n_reserve", "prosumer.", 41, lo=2))


def load_config(path: str | os.PathLike):
    """Read `path`: `(auction, settings, prosumer or None)` (module docstring format)."""

    def build(d):
        a = auction_from_dict(d)
        return a, settings_from_dict(d), prosumer_from_dict(d, a.n_bidders)

    return load(path, build)
