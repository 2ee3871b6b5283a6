"""Fork simulation: without switching the race is the gambler's ruin (exact win probability
and expected duration, within 4 standard errors); switching shortens forks."""

import jax
import numpy as np
import pytest

from mftg_jax import mining as mm


@pytest.fixture(scope="module")
def game():
    # The game of the command-line test (its compiled programs are shared).
    return mm.BranchGame(
        depth=3, price=(1.0, 1.3), cost=0.2, alpha0=0.6, crowd=0.3, eta=0.8, miner_share=0.1
    )


def test_no_switching_is_gamblers_ruin(game):
    st = mm.simulate_forks(game, jax.random.key(5), share=0.6, switching_rate=0.0, n_races=4096)
    assert st.unfinished == 0
    win = float(mm.win_probability(0.6, 3, 0))
    hours = float(mm.expected_race_blocks(0.6, 3, 0)) / 6.0
    assert abs(st.mean["branch1_wins"] - win) < 4 * st.stderr["branch1_wins"]
    assert abs(st.mean["duration"] - hours) < 4 * st.stderr["duration"]
    assert abs(st.orphaned_pmf.sum() - 1.0) < 1e-12
    np.testing.assert_allclose(st.mean["length"] - st.mean["orphaned"], 3.0, atol=1e-12)


def test_switching_shortens_forks(game):
    key = jax.random.key(6)
    slow = mm.simulate_forks(game, key, share=0.5, switching_rate=0.0, n_races=4096)
    fast = mm.simulate_forks(game, key, share=0.5, switching_rate=2.0, n_races=4096)
    diff = slow.mean["orphaned"] - fast.mean["orphaned"]
    assert diff > 4 * np.hypot(slow.stderr["orphaned"], fast.stderr["orphaned"])
    # Miners switch towards the more valuable branch 2.
    assert fast.mean["branch1_wins"] < 0.5 - 4 * fast.stderr["branch1_wins"]


def test_bad_input_names_the_field(game):
    with pytest.raises(ValueError, match="share"):
        mm.simulate_forks(game, jax.random.key(0), share=1.5, switching_rate=0.0)
    with pytest.raises(ValueError, match="switching_rate"):
        mm.simulate_forks(game, jax.random.key(0), share=0.5, switching_rate=-1.0)
