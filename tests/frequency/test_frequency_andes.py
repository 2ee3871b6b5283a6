"""Our swing model against ANDES's time-domain simulation of the same case (classical
generators, constant-power loads, a load step); skipped where ANDES is not installed."""

import jax.numpy as jnp
import numpy as np
import pytest

import mftg_jax.frequency as fr
from mftg_jax.frequency._algebraic import bus_groups

pytest.importorskip("andes", reason="ANDES (the peers extra) is not installed")

TS = jnp.linspace(0.0, 20.0, 1001)  # the dynamics tests' grid: one compiled program
GAIN = 20.0 / (2 * np.pi * 60)
HORIZON = 2.0


def test_load_step_agrees_with_andes():
    net = fr.load_case("wscc9", generator_damping=2.0)
    # ANDES has no governors here: the open loop is Droop(0).
    traj = fr.simulate_checked(net, fr.Droop(0.0), fr.load_step(net, 4, 0.1, 0.5), ts=TS)
    ts, delta, f_hz = fr.andes_tds("wscc9", generator_damping=2.0, load_step=(4, 0.1, 0.5),
                                   t1=HORIZON, dt=0.01)  # fmt: skip
    gen, _, _ = bus_groups(net)
    ours_t = np.stack([np.interp(ts, TS, traj.theta[:, g]) for g in gen], -1)
    ours_f = np.stack([np.interp(ts, TS, traj.frequency_hz[:, g]) for g in gen], -1)
    d_andes = delta - delta[0]
    d_ours = ours_t - ours_t[0]
    peak = np.max(np.abs(f_hz))
    assert peak > 0.1  # the step is seen (0.13 Hz drop in 2 s)
    # Frequencies within 5 % of the peak deviation, rotor-angle excursions within 0.03 rad
    # (measured: 2.9 % and 0.015 rad); the residual is the AC network's losses and voltages.
    assert np.max(np.abs(ours_f - f_hz)) < 0.05 * peak
    assert np.max(np.abs(d_ours - d_andes)) < 0.03
    # The same 5 % bound holds relative to the smaller early peak (the first 0.5 s after the
    # step, the inter-machine swing, has the smallest absolute errors).
    early = ts <= 1.0
    assert np.max(np.abs(ours_f - f_hz)[early]) < 0.05 * np.max(np.abs(f_hz[early]))
