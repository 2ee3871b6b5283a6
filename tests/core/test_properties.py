"""Property-based tests (hypothesis): random valid games solve and certify; random invalid
values are rejected at construction with a `ValueError` naming the field.

Shapes are fixed (3 producers; general games of 2 regimes and 2 players) so that every
example reuses the same compiled programs; `derandomize=True` makes the examples the same on
every run.
"""

import diffrax
from general_games import random_general_game
from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
import pytest

from mftg_jax import lq, price
from mftg_jax._noise._jumps import CompoundPoisson, NormalJumps

SOLVE = settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
REJECT = settings(max_examples=60, deadline=None, derandomize=True)
TIGHT = diffrax.PIDController(rtol=1e-10, atol=1e-10)


def _in(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def price_games(draw):
    n = 3
    vec = lambda lo, hi: draw(st.lists(_in(lo, hi), min_size=n, max_size=n))  # noqa: E731
    market = price.Market(
        eta=draw(_in(0.1, 3.0)),
        a=draw(_in(-10.0, 100.0)),
        q=draw(_in(0.0, 5.0)),
        t0=0.0,
        t1=draw(_in(0.1, 2.0)),
        p0=draw(_in(0.0, 100.0)),
        phat0=draw(_in(0.0, 100.0)),
    )
    producers = price.Producers(
        c=vec(-5.0, 20.0), r=vec(0.2, 5.0), rbar=vec(0.0, 5.0), lam=vec(0.0, 1.0)
    )
    noise = price.Noise(
        sigma=draw(_in(0.0, 2.0)),
        sigma_o=draw(_in(0.0, 2.0)),
        jumps=CompoundPoisson(draw(_in(0.0, 3.0)), NormalJumps(draw(_in(-1, 1)), 0.5)),
        common_jumps=CompoundPoisson(draw(_in(0.0, 3.0)), NormalJumps(0.0, draw(_in(0, 1)))),
    )
    return price.PriceGame(market, producers, noise)


@SOLVE
@given(price_games())
def test_random_price_games_solve_and_certify(game):
    riccati = price.solve_riccati(game, stepsize_controller=TIGHT)
    gap = np.asarray(price.nash_gap(riccati).gap)
    assert np.all(np.isfinite(gap)) and np.max(np.abs(gap)) < 1e-6
    # The general solver on the same game agrees with the price solver.
    general = lq.solve(price.to_lq(game), stepsize_controller=TIGHT)
    ref = riccati.evaluate(game.market.t0)
    got = price.from_lq(general.evaluate(game.market.t0))
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-8 * (1 + np.max(np.abs(r))))


@SOLVE
@given(st.integers(0, 10_000))
def test_random_general_games_solve_and_certify(seed):
    game = random_general_game(seed, K=2, n=2)
    sol = lq.solve(game, stepsize_controller=TIGHT)
    cert = lq.nash_gap(sol)
    gap = np.asarray(cert.gap)
    assert np.all(np.isfinite(gap)) and np.max(np.abs(gap)) < 1e-6
    np.testing.assert_allclose(cert.candidate_value, cert.formula_value, rtol=1e-7, atol=1e-9)


# Invalid values: (constructor, field as named in the message, allowed values violated).
_MARKET = dict(eta=0.5, a=1.0, q=1.0, t0=0.0, t1=1.0, p0=1.0)
_PRODUCERS = dict(c=[1.0], r=[1.0], rbar=[1.0], lam=[0.1])

non_numbers = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.integers(min_value=10**309, max_value=10**400),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(-float("inf")),
    st.floats(min_value=1e101, max_value=1e308),
    st.floats(min_value=-1e308, max_value=-1e101),
)
non_positive = st.floats(max_value=0.0, allow_nan=False, allow_infinity=False, min_value=-1e50)
negative = st.floats(max_value=-1e-300, allow_nan=False, allow_infinity=False, min_value=-1e50)


def _market(field, value):
    if field == "phat0" and value is None:
        return None  # None is phat0's documented default
    return price.Market(**{**_MARKET, field: value})


def _producers(field, value):
    return price.Producers(**{**_PRODUCERS, field: [value]})


CASES = st.one_of(
    st.tuples(st.just(_market), st.sampled_from(["eta", "q", "t0", "t1", "p0"]), non_numbers),
    st.tuples(st.just(_market), st.just("eta"), non_positive),
    st.tuples(st.just(_producers), st.sampled_from(["c", "r", "rbar", "lam"]), non_numbers),
    st.tuples(st.just(_producers), st.just("r"), non_positive),
    st.tuples(st.just(_producers), st.just("lam"), negative),
    st.tuples(
        st.just(lambda f, v: price.Noise(**{f: v})),
        st.sampled_from(["sigma", "sigma_o"]),
        st.one_of(non_numbers, negative),
    ),
    st.tuples(st.just(lambda f, v: NormalJumps(0.0, v)), st.just("std"), negative),
    st.tuples(
        st.just(lambda f, v: CompoundPoisson(v, NormalJumps(0.0, 1.0))),
        st.just("intensity"),
        negative,
    ),
)


@REJECT
@given(CASES)
def test_invalid_values_are_rejected_naming_the_field(case):
    build, field, value = case
    with pytest.raises(ValueError, match=rf"(^|\.){field} must"):
        build(field, value)
