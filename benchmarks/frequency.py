"""All N-1 line trips of the IEEE 39-bus case in one vmapped call against ANDES one by one.

    .venv/bin/python benchmarks/frequency.py [--quick]

Ours: every line trip that keeps the network connected, stacked into one batched event,
simulated by one `jax.vmap` of the nonlinear swing model (classical generators behind x'd,
droop on every unit, Newton on the passive buses) over [0, T] s; compile time reported
apart from run time (`block_until_ready`). ANDES (the peers extra): the same case file with
GENCLS generators and constant-power loads (`mftg_jax.frequency.andes_tds`), a few of the
same trips run one by one in this process (each loads the case, solves the power flow and
runs its time-domain simulation, as a contingency screening would); its per-contingency time
gives the rate. The ratio printed is ANDES's seconds per contingency over ours.
"""

import argparse
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import mftg_jax.frequency as fr  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short horizon, 2 ANDES runs")
    args = parser.parse_args()
    t1 = 2.0 if args.quick else 5.0
    n_andes = 2 if args.quick else 4

    print(f"jax {jax.__version__}, device {jax.devices()[0]}, python {platform.python_version()}")
    net = fr.load_case("ieee39", generator_damping=2.0)
    cont = fr.line_contingencies(net, time=0.1)
    print(f"ieee39: {len(cont.lines)} line trips simulated, {len(cont.skipped)} skipped "
          f"(they island the network: {cont.skipped})")  # fmt: skip
    ts = jnp.linspace(0.0, t1, int(t1 * 10) + 1)
    droop = fr.Droop(20.0 / net.omega_s)

    def run():
        traj = fr.simulate_contingencies(net, droop, cont, ts=ts)
        return jax.block_until_ready(traj.omega)

    start = time.perf_counter()
    omega = run()
    first = time.perf_counter() - start
    start = time.perf_counter()
    omega = run()
    ours = time.perf_counter() - start
    assert np.all(np.isfinite(np.asarray(omega)))
    per_ours = ours / len(cont.lines)
    print(f"ours: compile {first - ours:.2f} s, run {ours:.3f} s for {len(cont.lines)} "
          f"contingencies ({per_ours * 1e3:.1f} ms each)")  # fmt: skip

    try:
        import andes  # noqa: F401
    except ImportError:
        print("ANDES is not installed (pip install '.[peers]'): no baseline")
        return
    lines = [cont.lines[i] for i in np.linspace(0, len(cont.lines) - 1, n_andes).astype(int)]
    fr.andes_tds("ieee39", line_trip=(lines[0], 0.1), t1=0.2)  # warm ANDES's generated code
    times, setups = [], []
    for ell in lines:
        start = time.perf_counter()
        fr.andes_tds("ieee39", line_trip=(ell, 0.1), t1=t1)
        times.append(time.perf_counter() - start)
        # Parsing, setup and power flow with a negligible simulation (0.05 s, before the
        # trip), to take the time of the simulation itself apart.
        start = time.perf_counter()
        fr.andes_tds("ieee39", line_trip=(ell, 0.1), t1=0.05)
        setups.append(time.perf_counter() - start)
    per_andes = float(np.mean(times))
    per_tds = max(per_andes - float(np.mean(setups)), 1e-9)
    print(
        f"ANDES: {per_andes:.3f} s per contingency in all (lines {lines}, one by one), "
        f"{per_tds:.3f} s of it the simulation (less parsing, setup and power flow)"
    )
    print(
        f"ratio (ANDES per contingency / ours per contingency, ours without compile): "
        f"{per_andes / per_ours:.1f} in all, {per_tds / per_ours:.1f} simulation only"
    )


if __name__ == "__main__":
    main()
