"""`mftg frequency`: simulate a network under frequency control and certify its steady state
(docs/frequency.md)."""

import argparse
import json
import os

import jax
import numpy as np

from .. import frequency as fq
from .._toml import ConfigError, load
from . import CertificateFailure, UsageError
from ._args import integer, real
from ._common import check_finite, output_folder, print_json, to_jsonable

# The certificate's threshold: residuals below it count as a certified steady state (the KKT
# residual is relative: scaled by 1 + sum of the bound magnitudes, see kkt_certificate).
TOLERANCE = 1e-8
# The controllers whose steady state must reach the economic dispatch: an uncertified one
# exits 1. Droop and LQ feedback leave a frequency offset and are not expected to reach it.
SECONDARY = ("dai", "broadcast", "population")


def register(sub) -> None:
    p = sub.add_parser(
        "frequency",
        help="frequency control of a power network: simulate and certify the dispatch",
        description="Simulate the swing dynamics of CASE (wscc9, ieee14, ieee39) or of the "
        "study in CONFIG.toml under a controller and an event; report the frequency nadir, "
        "RoCoF and settling time and certify the steady state (frequency restored, KKT "
        "conditions of the economic dispatch, the dispatch equal to the one computed "
        "directly). Exit status 1 when a secondary controller (dai, broadcast, population) "
        "does not reach a certified steady state; droop and lq leave a frequency offset, "
        "are not expected to reach the dispatch and report certified: false with status 0.",
    )
    p.add_argument("config", metavar="CASE_OR_CONFIG", help="a case name or a TOML study")
    p.add_argument("--controller", choices=fq.CONTROLLERS, help="override [controller]")
    p.add_argument(
        "--event",
        metavar="SPEC",
        help="override [event]: load_step:BUS:DELTA[:TIME], generator_trip:G[:TIME], "
        "line_trip:LINE[:TIME] or none",
    )
    p.add_argument(
        "--t1", type=real(0, 3600, open_lo=True), default=None, help="horizon in s (override)"
    )
    p.add_argument(
        "--scenarios",
        type=integer(0, 100000),
        default=None,
        help="Monte Carlo load scenarios (override [loads] n_scenarios)",
    )
    p.add_argument(
        "--compare",
        action="store_true",
        help="Monte Carlo comparison of droop, dai, broadcast and lq",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="write report.json and figures to DIR")
    p.set_defaults(func=run)


def _event_table(spec: str) -> dict:
    parts = spec.split(":")
    kind = parts[0]
    try:
        if kind == "none" and len(parts) == 1:
            return {"kind": "none"}
        if kind == "load_step" and len(parts) in (3, 4):
            t = {"kind": kind, "bus": int(parts[1]), "delta": float(parts[2])}
        elif kind == "generator_trip" and len(parts) in (2, 3):
            t = {"kind": kind, "generator": int(parts[1])}
        elif kind == "line_trip" and len(parts) in (2, 3):
            t = {"kind": kind, "line": int(parts[1])}
        else:
            raise ValueError
        if len(parts) == {"load_step": 4}.get(kind, 3):
            t["time"] = float(parts[-1])
    except ValueError:
        raise UsageError(
            f"--event must be load_step:BUS:DELTA[:TIME], generator_trip:G[:TIME], "
            f"line_trip:LINE[:TIME] or none, got {spec!r}"
        ) from None
    return t


def _read(args) -> fq.FrequencyConfig:
    def build(d: dict, base: str) -> fq.FrequencyConfig:
        if args.controller is not None:
            d.setdefault("controller", {})
            if isinstance(d["controller"], dict):
                d["controller"]["kind"] = args.controller
        if args.event is not None:
            d["event"] = _event_table(args.event)
        if args.t1 is not None:
            d.setdefault("simulation", {})
            if isinstance(d["simulation"], dict):
                d["simulation"]["t1"] = args.t1
        if args.scenarios is not None:
            d.setdefault("loads", {})
            if isinstance(d["loads"], dict):
                d["loads"]["n_scenarios"] = args.scenarios
        return fq.config_from_dict(d, base)

    if args.config in fq.CASES:
        return build({"case": args.config, "event": {"kind": "load_step"}}, ".")
    if not args.config.endswith(".toml"):
        raise UsageError(
            f"CASE_OR_CONFIG must be one of {', '.join(fq.CASES)} or a .toml file, "
            f"got {args.config!r}"
        )
    base = os.path.dirname(os.path.abspath(args.config))
    return load(args.config, lambda d: build(d, base))


def frequency_report(cfg: fq.FrequencyConfig, kind: str | None = None):
    """Everything `mftg frequency` reports (docs/frequency.md), with the trajectory."""
    kind = kind or cfg.controller_kind
    net, ev = cfg.network, cfg.event
    ctrl = cfg.controller(kind)
    traj, cert = fq.closed_loop(net, ctrl, ev, cfg.ts, model=cfg.model, rtol=cfg.rtol,
                                atol=cfg.atol)  # fmt: skip
    if not bool(np.all(np.isfinite(np.asarray(traj.omega)))):
        raise UsageError("the simulation failed (non-finite state); try smaller rtol/atol")
    met = fq.frequency_metrics(net, traj.ts, traj.omega, traj.u, window=cfg.rocof_window,
                               band=cfg.settling_band, t_event=ev.time)  # fmt: skip
    gens = fq.generator_buses(net)
    root = bool(cert.converged) and float(cert.vector_field_residual) < TOLERANCE
    two_pi = 2 * np.pi
    if root:
        dev = float(cert.frequency_deviation) / two_pi
        kkt, disp, err = (
            float(cert.kkt_residual),
            np.asarray(cert.dispatch),
            float(cert.dispatch_error),
        )
    else:
        dev = float(cert.end_frequency_deviation) / two_pi
        kkt, disp, err = (
            float(cert.end_kkt_residual),
            np.asarray(traj.u[-1]),
            float(cert.end_dispatch_error),
        )
    cost = float(np.sum(0.5 * np.asarray(net.cost_a) * disp**2 + np.asarray(net.cost_b) * disp))
    rep = {
        "case": cfg.case,
        "controller": kind,
        "event": cfg.event_label,
        "model": cfg.model,
        "n_buses": net.n,
        "t1": cfg.t1,
        "nadir_hz": met.nadir_hz,
        "rocof_hz_per_s": met.rocof_hz_per_s,
        "rocof_window_s": cfg.rocof_window,
        "settling_time_s": met.settling_time_s,
        "settling_band_hz": cfg.settling_band,
        "control_cost": met.control_cost,
        "steady_state_source": "root_solve" if root else "simulation_end",
        "steady_state_frequency_deviation": dev,
        "kkt_residual": kkt,
        "dispatch": disp[gens],
        "optimal_dispatch": np.asarray(cert.optimal_dispatch)[gens],
        "dispatch_error": err,
        "dispatch_cost": cost,
        "optimal_dispatch_cost": float(
            np.sum(
                0.5 * np.asarray(net.cost_a) * np.asarray(cert.optimal_dispatch) ** 2
                + np.asarray(net.cost_b) * np.asarray(cert.optimal_dispatch)
            )
        ),  # fmt: skip
        "balance_residual_pu": cert.balance_residual if root else None,
        "complementarity_residual": cert.complementarity_residual if root else None,
        "price": cert.price if root else None,
        "marginal_cost_spread": cert.marginal_cost_spread if root else None,
        "vector_field_residual": cert.vector_field_residual if root else None,
        "end_frequency_deviation": float(cert.end_frequency_deviation) / two_pi,
        "end_kkt_residual": cert.end_kkt_residual,
        "end_dispatch_error": cert.end_dispatch_error,
        "end_distance_to_steady_state": cert.end_distance if root else None,
        "certified": root and max(dev, kkt, err) < TOLERANCE,
    }
    return rep, traj, cert


def _monte_carlo(cfg: fq.FrequencyConfig, kinds) -> dict:
    key = jax.random.key(cfg.seed)
    events = fq.load_scenarios(cfg.network, cfg.event, key, cfg.n_scenarios, cfg.load_std,
                               cfg.load_common_std)  # fmt: skip
    out = {}
    for kind in kinds:
        mc = fq.monte_carlo(cfg.network, cfg.controller(kind), events, cfg.ts, model=cfg.model,
                            rtol=cfg.rtol, atol=cfg.atol, window=cfg.rocof_window,
                            band=cfg.settling_band)  # fmt: skip
        out[kind] = {
            name: {"mean": getattr(mc.mean, name), "stderr": getattr(mc.stderr, name)}
            for name in (
                "nadir_hz",
                "rocof_hz_per_s",
                "settling_time_s",
                "control_cost",
                "final_deviation_hz",
            )
        }
    return {"n_scenarios": cfg.n_scenarios, "load_std": cfg.load_std,
            "load_common_std": cfg.load_common_std, "seed": cfg.seed,
            "controllers": out}  # fmt: skip


def _figures(folder: str, cfg, traj, rep) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # figures are optional
        return
    net = cfg.network
    ts = np.asarray(traj.ts)
    gens = fq.generator_buses(net)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, g in enumerate(gens):
        ax.plot(ts, np.asarray(traj.omega)[:, g] / (2 * np.pi) * 1e3, label=f"generator {k + 1}")
    ax.set_xlabel("t (s)")
    ax.set_ylabel("frequency deviation (mHz)")
    ax.set_title(f"{cfg.case}, {rep['controller']}: {cfg.event_label}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "frequencies.png"), dpi=120)
    plt.close(fig)
    theta = np.asarray(traj.theta)
    w = np.asarray(net.M) / np.sum(np.asarray(net.M))
    coi = theta @ w
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(ts, np.degrees(theta - coi[:, None]), lw=0.8)
    ax.set_xlabel("t (s)")
    ax.set_ylabel("angle relative to the COI (deg)")
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "angles.png"), dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(gens))
    ax.bar(x - 0.2, np.asarray(rep["dispatch"]), 0.4, label="closed loop (steady state)")
    ax.bar(x + 0.2, np.asarray(rep["optimal_dispatch"]), 0.4, label="economic dispatch")
    ax.set_xticks(x, [f"G{k + 1}" for k in x])
    ax.set_ylabel("control injection u (p.u.)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "dispatch.png"), dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    if args.t1 is not None and not (0 < args.t1 <= 3600):
        raise UsageError(f"--t1 must be in (0, 3600] s, got {args.t1:g}")
    try:
        cfg = _read(args)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    monte_carlo = args.compare or cfg.n_scenarios > 0
    if monte_carlo and cfg.n_scenarios < 2:
        # Checked before the closed-loop run, so that a usage error costs no simulation.
        raise UsageError("a Monte Carlo needs at least 2 scenarios (--scenarios N)")
    rep, traj, _ = frequency_report(cfg)
    if monte_carlo:
        kinds = ["droop", "dai", "broadcast"] if args.compare else [rep["controller"]]
        if args.compare:
            kinds.append("lq")
        rep["monte_carlo"] = _monte_carlo(cfg, kinds)
    check_finite(rep)
    if args.out:
        with output_folder(args.out) as folder:
            with open(os.path.join(folder, "report.json"), "w") as f:
                json.dump(to_jsonable(rep), f, indent=1)
            _figures(folder, cfg, traj, rep)
    failed = rep["controller"] in SECONDARY and not rep["certified"]
    message = (
        f"the {rep['controller']} steady state is not certified (frequency deviation "
        f"{rep['steady_state_frequency_deviation']:.3g} Hz, KKT residual "
        f"{rep['kkt_residual']:.3g}, dispatch error {rep['dispatch_error']:.3g} p.u., "
        f"threshold {TOLERANCE:g}, {rep['steady_state_source']})"
    )
    if args.json:
        print_json(rep)
        if failed:
            raise CertificateFailure(message)
        return 0
    print(f"{rep['case']} ({rep['n_buses']} buses, {rep['model']}), controller "
          f"{rep['controller']}, {rep['event']}")  # fmt: skip
    print(f"  nadir {rep['nadir_hz'] * 1e3:.4g} mHz, RoCoF {rep['rocof_hz_per_s'] * 1e3:.4g} "
          f"mHz/s ({cfg.rocof_window:g} s window), settling {rep['settling_time_s']:.4g} s "
          f"(+-{cfg.settling_band * 1e3:g} mHz)")  # fmt: skip
    print(f"  steady state ({rep['steady_state_source']}): frequency deviation "
          f"{rep['steady_state_frequency_deviation']:.3g} Hz, KKT residual "
          f"{rep['kkt_residual']:.3g}, dispatch error {rep['dispatch_error']:.3g} p.u., cost "
          f"{rep['dispatch_cost']:.6g} (optimal {rep['optimal_dispatch_cost']:.6g}): "
          f"{'certified' if rep['certified'] else 'NOT certified'}")  # fmt: skip
    for kind, m in rep.get("monte_carlo", {}).get("controllers", {}).items():
        print(
            f"  MC {kind:>10}: "
            + ", ".join(
                f"{k} {float(v['mean']):.4g} +- {float(v['stderr']):.2g}" for k, v in m.items()
            )
        )
    if args.out:
        print(f"  wrote {args.out}/report.json, frequencies.png, angles.png, dispatch.png")
    if failed:
        raise CertificateFailure(message)
    return 0
