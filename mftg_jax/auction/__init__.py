"""The prosumers' market auction of the slides ("Prosumers market auction"): an asymmetric
first-price procurement auction, solved by two independent methods (shooting on the common
lowest bid, and Chebyshev collocation of the boundary-value problem), and the prosumer's
sell-or-buy decision (docs/auction.md).
"""

from ._auction import Auction as Auction
from ._certificate import (
    AuctionCertificate as AuctionCertificate,
    best_response_gap as best_response_gap,
)
from ._closed_forms import (
    second_price_payment as second_price_payment,
    symmetric_bids as symmetric_bids,
    two_uniform_inverse_bids as two_uniform_inverse_bids,
    two_uniform_lowest_bid as two_uniform_lowest_bid,
)
from ._collocation import (
    collocate as collocate,
    CollocationSolution as CollocationSolution,
    search_equilibria as search_equilibria,
)
from ._config import (
    auction_from_dict as auction_from_dict,
    load_config as load_config,
    prosumer_from_dict as prosumer_from_dict,
    settings_from_dict as settings_from_dict,
)
from ._distributions import (
    AbstractCostDistribution as AbstractCostDistribution,
    Beta as Beta,
    Power as Power,
    TruncatedNormal as TruncatedNormal,
    Uniform as Uniform,
)
from ._outcomes import (
    AuctionMonteCarlo as AuctionMonteCarlo,
    expected_payment as expected_payment,
    monte_carlo as monte_carlo,
    win_probability as win_probability,
)
from ._prosumer import (
    buy_position as buy_position,
    decide as decide,
    Prosumer as Prosumer,
    ProsumerDecision as ProsumerDecision,
)
from ._shooting import (
    lowest_bid as lowest_bid,
    scan_lowest_bids as scan_lowest_bids,
    shooting_residual as shooting_residual,
    solve as solve,
    top_of_integration as top_of_integration,
)
from ._solution import (
    AuctionSolution as AuctionSolution,
    inverse_bid_curves as inverse_bid_curves,
)
