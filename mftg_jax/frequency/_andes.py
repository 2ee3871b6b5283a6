r"""The same test system in ANDES (optional peer): classical generators, constant-power loads.

ANDES (Cui, Li, Tomsovic, IEEE TPWRS 36 (2021) 1611) solves the full AC network (voltage
magnitudes and angles, losses) with its generators' differential equations. For a
comparison with [`simulate`][mftg_jax.frequency.simulate] ANDES reads the same MATPOWER case
file (its own power flow re-solves it), one `GENCLS` (classical model: constant $|E'|$ behind
$x'_d$, $M = 2H$, damping $D$) is attached per generator with the data of the case's
`mpc.gendyn`, no governors or exciters, and the loads are constant power in the time domain
(`PQ` config `p2p = q2q = 1`, `p2z = q2z = 0`). Events: a load step is an extra `PQ` at the
bus switched on by a `Toggle`; a line trip a `Toggle` of the `Line`.
"""

import warnings

import numpy as np

from ._cases import case_path, read_matpower


def andes_tds(
    case: str,
    *,
    generator_damping: float = 2.0,
    load_step: tuple[int, float, float] | None = None,
    line_trip: tuple[int, float] | None = None,
    t1: float = 3.0,
    dt: float = 0.01,
):
    r"""Run ANDES's time-domain simulation of a shipped case with classical generators.

    **Arguments:**

    - `case`: `"wscc9"`, `"ieee14"`, `"ieee39"` or a MATPOWER file with `mpc.gendyn`.
    - `generator_damping`: `GENCLS` damping $D$ (p.u., 100 MVA base), as in
      [`load_case`][mftg_jax.frequency.load_case].
    - `load_step`: `(bus, delta, time)`: a constant-power load of `delta` p.u. switched on
      at bus index `bus` (0-based, case order) at `time`.
    - `line_trip`: `(line, time)`: the case's branch `line` (0-based) opens at `time`.
    - `t1`, `dt`: the horizon and ANDES's step (s).

    **Returns:** `(ts, delta, omega_hz)`: ANDES's time points, the rotor angles (rad) and the
    frequency deviations (Hz) of the generators in the order of `mpc.gen`.
    """
    import andes

    andes.config_logger(stream_level=50)
    path = case_path(case)
    mpc = read_matpower(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ss = andes.load(
            str(path),
            setup=False,
            no_output=True,
            default_config=True,
            config_option=["PQ.p2p=1", "PQ.p2z=0", "PQ.q2q=1", "PQ.q2z=0"],
        )
        bus_ids = list(ss.Bus.idx.v)
        static = {}
        for model in (ss.Slack, ss.PV):
            for idx, bus in zip(model.idx.v, model.bus.v):
                static[bus] = idx
        for bus, H, xd1 in mpc["gendyn"]:
            b = bus_ids[int(bus) - 1]
            ss.add("GENCLS", dict(bus=b, gen=static[b], Sn=mpc["baseMVA"],
                                  Vn=mpc["bus"][int(bus) - 1, 9], M=2 * H,
                                  D=generator_damping, xd1=xd1, ra=0.0))  # fmt: skip
        if load_step is not None:
            bus, delta, time = load_step
            ss.add("PQ", dict(idx="PQ_step", bus=bus_ids[bus], p0=delta, q0=0.0, u=0,
                              Vn=mpc["bus"][bus, 9]))  # fmt: skip
            ss.add("Toggle", dict(model="PQ", dev="PQ_step", t=time))
        if line_trip is not None:
            line, time = line_trip
            ss.add("Toggle", dict(model="Line", dev=ss.Line.idx.v[line], t=time))
        ss.setup()
        ss.PFlow.run()
        ss.TDS.config.tf = t1
        ss.TDS.config.tstep = dt
        ss.TDS.config.no_tqdm = 1
        ss.TDS.run()
    if not ss.TDS.converged:
        raise RuntimeError(f"ANDES's time-domain simulation of {case} did not converge")
    ts = np.asarray(ss.dae.ts.t)
    delta = np.asarray(ss.dae.ts.x[:, ss.GENCLS.delta.a])
    omega = np.asarray(ss.dae.ts.x[:, ss.GENCLS.omega.a])
    order = np.argsort(np.asarray(ss.GENCLS.bus.v).astype(float))
    f0 = float(ss.config.freq)
    return ts, delta[:, order], (omega[:, order] - 1.0) * f0
