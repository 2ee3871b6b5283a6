"""The network Module's validation, the MATPOWER reader and the shipped cases."""

import jax.numpy as jnp
import numpy as np
import pytest

import mftg_jax.frequency as fr
from mftg_jax.frequency._algebraic import bus_groups

BASE = dict(
    kind=[0, 2, 1], M=[0.1, 0, 0], D=[0.01, 0, 0.05], P=[1.0, -0.5, -0.5],
    line_from=[0, 1], line_to=[1, 2], line_B=[5.0, 5.0],
)  # fmt: skip


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(M=[0.0, 0, 0]), "M must be > 0 at generator"),
        (dict(M=[0.1, 0.2, 0]), "M must be 0 at"),
        (dict(D=[0.01, 0, 0.0]), "D must be > 0 at frequency-responsive"),
        (dict(D=[0.01, 0.3, 0.05]), "D must be 0 at passive"),
        (dict(D=[-0.1, 0, 0.05]), "D must be >= 0 at generator"),
        (dict(line_B=[5.0, 0.0]), "disconnected"),
        (dict(line_B=[5.0, -1.0]), "line_B must be >= 0"),
        (dict(P=[1.0, np.nan, -0.5]), "P must be finite"),
        (dict(kind=[0, 3, 1]), "kind must be 0, 1 or 2"),
        (dict(line_to=[1, 1]), "line_from and line_to must differ"),
        (dict(line_to=[1, 5]), "line_to must be bus indices"),
        (dict(u_min=[1.0, 0, 0]), "u_min must be <= "),
        (dict(cost_a=[-1.0, 1, 1]), "cost_a must be >= 0"),
    ],
)
def test_network_validation(change, message):
    with pytest.raises(ValueError, match=message):
        fr.Network(**{**BASE, **change})


def test_network_laplacian_and_flows():
    net = fr.Network(**BASE)
    L = np.asarray(net.laplacian())
    np.testing.assert_allclose(L, L.T)
    np.testing.assert_allclose(L.sum(axis=1), 0, atol=1e-14)
    theta = jnp.array([0.3, 0.1, -0.2])
    expected = [5 * np.sin(0.2), -5 * np.sin(0.2) + 5 * np.sin(0.3), -5 * np.sin(0.3)]
    np.testing.assert_allclose(net.electrical_power(theta), expected, rtol=1e-14)
    assert not bool(net.controllable.any())


@pytest.mark.parametrize(
    "case, n_bus, n_gen", [("wscc9", 9, 3), ("ieee14", 14, 5), ("ieee39", 39, 10)]
)
def test_cases_reduce_consistently(case, n_bus, n_gen):
    mpc = fr.read_matpower(f"mftg_jax/frequency/cases/{case}.m")
    net = fr.load_case(case)
    gen, dyn, pas = bus_groups(net)
    assert net.n == n_bus + n_gen and len(gen) == n_gen and len(pas) == n_bus
    # M = 2H/omega_s at the internal buses, in the order of mpc.gen.
    order = [int(np.flatnonzero(mpc["gendyn"][:, 0] == b)[0]) for b in mpc["gen"][:, 0]]
    np.testing.assert_allclose(net.M[gen], 2 * mpc["gendyn"][order, 1] / (2 * np.pi * 60))
    assert abs(float(net.power_imbalance)) < 1e-12
    np.testing.assert_allclose(-net.P[:n_bus], mpc["bus"][:, 2] / mpc["baseMVA"], atol=1e-12)
    # The lossless slack absorbs exactly the AC losses of the case's power flow.
    losses = (mpc["gen"][:, 1].sum() - mpc["bus"][:, 2].sum()) / mpc["baseMVA"]
    np.testing.assert_allclose(net.P[gen].sum(), mpc["gen"][:, 1].sum() / 100 - losses)
    theta = fr.equilibrium(net)
    assert float(jnp.max(jnp.abs(net.P - net.electrical_power(theta)))) < 1e-10


def test_equilibrium_close_to_ac_power_flow():
    # The lossless |V_i||V_j|/x network's angles are those of the AC power flow up to the
    # losses: within 0.02 rad at every bus of the 9-bus case (bus 1 the reference).
    mpc = fr.read_matpower("mftg_jax/frequency/cases/wscc9.m")
    theta = np.asarray(fr.equilibrium(fr.load_case("wscc9", internal_nodes=False)))
    ac = np.radians(mpc["bus"][:, 8])
    assert np.max(np.abs((theta - theta[0]) - (ac - ac[0]))) < 0.02


def test_load_case_bad_input(tmp_path):
    with pytest.raises(ValueError, match="case must be one of"):
        fr.load_case("nosuchcase")
    bad = tmp_path / "bad.m"
    bad.write_text("function mpc = bad\nmpc.baseMVA = 100;\nmpc.bus = [1 3 0;];\n")
    with pytest.raises(ValueError, match="needs mpc.gen"):
        fr.load_case(bad)
    with pytest.raises(ValueError, match="load_damping"):
        fr.load_case("wscc9", load_damping=-1.0)


def test_load_damping_makes_responsive_buses():
    net = fr.load_case("wscc9", load_damping=1.5)
    kind = np.asarray(net.kind)
    loads = np.flatnonzero(np.asarray(net.P)[:9] < 0)
    assert np.all(kind[loads] == 1)
    np.testing.assert_allclose(net.D[loads], -1.5 * net.P[loads] / net.omega_s)


def test_droop_validation():
    with pytest.raises(ValueError, match="Droop.gain must be >= 0"):
        fr.Droop(-1.0)
