"""`mftg mining`: the Wattcoin mining study: certified equilibria of the branch-choice game,
selfish-mining revenues and break-even shares, risk-averse certainty equivalents, forks."""

import argparse
import json
import math
import os

import jax
import numpy as np

from .. import mining
from . import UsageError
from ._common import check_finite, output_folder, print_json, to_jsonable


def register(sub) -> None:
    p = sub.add_parser(
        "mining",
        help="branch-choice equilibria, selfish mining and forks of Wattcoin mining",
        description="Solve the mining study of CONFIG.toml (docs/mining.md): the equilibria "
        "of the branch-choice game with their stability and exploitability, the Eyal-Sirer "
        "and optimal (SSZ MDP) selfish-mining revenues and break-even shares, risk-averse "
        "certainty equivalents, and a simulation of forks.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="study configuration")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="write report.json and figures to DIR")
    p.set_defaults(func=run)


def _equilibrium_dict(e) -> dict:
    return {
        "shares": e.shares,
        "kind": e.kind,
        "stable": e.stable,
        "exploitability": e.exploitability,
        "jacobian": e.jacobian,
        "payoff": e.payoff,
    }


def _game_part(game, sweep) -> tuple[list, dict]:
    eqs = [_equilibrium_dict(e) for e in mining.equilibria(game)]
    rows = []
    for eta in sweep["eta"]:
        for crowd in sweep["crowd"]:
            g = mining.BranchGame(
                rate=game.rate, depth=game.depth, lead=game.lead, price=game.price,
                reward=game.reward, cost=game.cost, alpha0=game.alpha0, crowd=crowd, eta=eta,
                miner_share=game.miner_share,
            )  # fmt: skip
            found = mining.equilibria(g)
            rows.append(
                {
                    "eta": eta,
                    "crowd": crowd,
                    "equilibria": [_equilibrium_dict(e) for e in found],
                    "max_exploitability": max(e.exploitability for e in found),
                }
            )
    return eqs, {"eta": sweep["eta"], "crowd": sweep["crowd"], "results": rows}


def _selfish_part(s: dict) -> tuple[dict, dict, dict]:
    alpha = np.asarray(s["alpha"])
    gamma = np.asarray(s["gamma"])
    A, G = np.meshgrid(alpha, gamma)  # [gamma][alpha]
    mdp = mining.SelfishMiningMDP(s["depth"])
    opt = mining.optimal_deviation(mdp, A, G)
    deep = mining.optimal_deviation(mining.SelfishMiningMDP(s["depth_check"]), A, G)
    es_mdp = mining.policy_revenue(mdp, mining.eyal_sirer_policy(mdp), A, G)
    check = mining.policy_revenue(mdp, opt.policy, A, G)
    closed = np.asarray(mining.eyal_sirer_revenue(A, G))
    key = jax.random.key(s["seed"])
    mc, mc_se = np.zeros_like(A), np.zeros_like(A)
    for i, j in np.ndindex(A.shape):
        est = mining.simulate_eyal_sirer(
            jax.random.fold_in(key, i * A.shape[1] + j), float(A[i, j]), float(G[i, j]),
            n_runs=s["mc_runs"], n_blocks=s["mc_blocks"],
        )  # fmt: skip
        mc[i, j], mc_se[i, j] = float(est.revenue), float(est.stderr)
    z = np.abs(mc - closed) / np.maximum(mc_se, 1e-300)
    revenue = {
        "alpha": alpha,
        "gamma": gamma,
        "depth": s["depth"],
        "eyal_sirer": closed,
        "optimal": np.asarray(opt.revenue),
        "optimal_gain_bound": np.asarray(opt.gain_bound),
        "optimal_policy_evaluation": np.asarray(check.revenue),
        "max_policy_evaluation_error": float(np.max(np.abs(check.revenue - opt.revenue))),
        "optimal_deeper": np.asarray(deep.revenue),
        "depth_check": s["depth_check"],
        "max_depth_change": float(np.max(np.abs(deep.revenue - opt.revenue))),
        "eyal_sirer_in_mdp": np.asarray(es_mdp.revenue),
        "min_optimal_minus_eyal_sirer_in_mdp": float(np.min(opt.revenue - es_mdp.revenue)),
        "eyal_sirer_monte_carlo": mc,
        "eyal_sirer_monte_carlo_stderr": mc_se,
        "max_monte_carlo_z": float(np.max(z)),
    }
    be = {
        "gamma": gamma,
        "eyal_sirer": np.asarray(mining.eyal_sirer_break_even(gamma)),
        "optimal": np.asarray(mining.optimal_break_even(mdp, gamma)),
        "depth": s["depth"],
    }
    rmdp = mining.SelfishMiningMDP(s["risk_depth"])
    es_pol = mining.eyal_sirer_policy(rmdp)
    ce_h, ce_es, be_eta = [], [], []
    for eta in s["risk_eta"]:
        h = np.asarray(mining.honest_certainty_equivalent(alpha, eta))
        e = np.asarray(
            mining.policy_certainty_equivalent(rmdp, es_pol, alpha, s["risk_gamma"], eta)
        )
        ce_h.append(h)
        ce_es.append(e)
        be_eta.append(_crossing(alpha, e - h))
    ce = {
        "eta": s["risk_eta"],
        "gamma": s["risk_gamma"],
        "alpha": alpha,
        "depth": s["risk_depth"],
        "honest": ce_h,
        "eyal_sirer": ce_es,
        "eyal_sirer_break_even_alpha": be_eta,
        "eyal_sirer_break_even_risk_neutral": float(mining.eyal_sirer_break_even(s["risk_gamma"])),
    }
    return revenue, be, ce


def _crossing(x: np.ndarray, y: np.ndarray) -> float | None:
    """The first sign change of `y` from <= 0 to > 0 on the grid `x`, linearly interpolated
    (None when `y` never turns positive or is positive from the start)."""
    for i in range(len(x) - 1):
        if y[i] <= 0 < y[i + 1]:
            return float(x[i] - y[i] * (x[i + 1] - x[i]) / (y[i + 1] - y[i]))
    return None


def _fork_part(game, f: dict) -> dict:
    key = jax.random.key(f["seed"])
    kw = dict(precision=f["precision"], n_races=f["n_races"], max_blocks=f["max_blocks"])
    main = mining.simulate_forks(
        game, key, share=f["share"], switching_rate=f["switching_rate"], **kw
    )
    study = []
    for m0 in f["study_shares"]:
        for nu in f["study_rates"]:
            st = mining.simulate_forks(game, key, share=m0, switching_rate=nu, **kw)
            orph, hours = st.mean["orphaned"], st.mean["duration"]
            study.append(
                {
                    "share": m0,
                    "switching_rate": nu,
                    "orphaned": orph,
                    "orphaned_stderr": st.stderr["orphaned"],
                    "duration_hours": hours,
                    "duration_stderr": st.stderr["duration"],
                    "branch1_wins": st.mean["branch1_wins"],
                    # Same order of magnitude: within a factor of 2 of the observation.
                    "consistent_with_march_2013": bool(
                        abs(math.log(max(orph, 1e-9) / f["observed_orphaned"])) <= math.log(2)
                        and abs(math.log(max(hours, 1e-9) / f["observed_hours"])) <= math.log(2)
                    ),
                }
            )
    return {
        "share": f["share"],
        "switching_rate": f["switching_rate"],
        "precision": f["precision"],
        "n_races": main.n_races,
        "unfinished": main.unfinished,
        "mean": main.mean,
        "stderr": main.stderr,
        "orphaned_pmf": main.orphaned_pmf,
        "orphaned_pmf_stderr": main.pmf_stderr,
        "march_2013": {
            "observed_orphaned": f["observed_orphaned"],
            "observed_hours": f["observed_hours"],
            "grid": study,
        },
    }


def mining_report(cfg: dict) -> dict:
    """Everything `mftg mining` reports (docs/mining.md), from `mining.load_config`."""
    game = cfg["game"]
    eqs, sweep = _game_part(game, cfg["sweep"])
    revenue, be, ce = _selfish_part(cfg["selfish"])
    return {
        "game": {
            "rate": game.rate,
            "depth": game.depth,
            "lead": game.lead,
            "price": game.price,
            "reward": game.reward,
            "cost": game.cost,
            "alpha0": game.alpha0,
            "crowd": game.crowd,
            "eta": game.eta,
            "miner_share": game.miner_share,
        },  # fmt: skip
        "equilibria": eqs,
        "max_exploitability": max(e["exploitability"] for e in eqs),
        "sweep": sweep,
        "certainty_equivalent": ce,
        "selfish_revenue": revenue,
        "break_even_alpha": be,
        "forks": _fork_part(game, cfg["forks"]),
    }


def _check_finite(x, where="report") -> None:
    if isinstance(x, dict):
        for k, v in x.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(x, list | tuple):
        for i, v in enumerate(x):
            _check_finite(v, f"{where}[{i}]")
    elif x is None or isinstance(x, str | bool):
        return
    else:
        a = np.asarray(x, dtype=float)
        if not np.all(np.isfinite(a)):
            raise UsageError(f"non-finite result in {where}")


def _write(out: str, rep: dict, game) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(to_jsonable(rep), f, indent=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sw = rep["sweep"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for eta in sw["eta"]:
        rows = [r for r in sw["results"] if r["eta"] == eta]
        xs, ys = [], []
        for r in rows:
            for e in r["equilibria"]:
                if e["kind"] == "interior":
                    xs.append(r["crowd"])
                    ys.append(float(e["shares"][0]))
        ax.plot(xs, ys, "o-", label=f"interior (unstable), eta={eta:g}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xlabel("crowd parameter epsilon")
    ax.set_ylabel("share of branch 1 at equilibrium")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "equilibrium_shares.png"), dpi=120)
    plt.close(fig)

    sr = rep["selfish_revenue"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    alpha = np.asarray(sr["alpha"])
    for i, g in enumerate(sr["gamma"]):
        (line,) = ax.plot(alpha, np.asarray(sr["optimal"])[i], "-", label=f"optimal, gamma={g:g}")
        ax.plot(alpha, np.asarray(sr["eyal_sirer"])[i], "--", color=line.get_color())
    ax.plot(alpha, alpha, "k:", label="honest")
    ax.set_xlabel("attacker share alpha")
    ax.set_ylabel("relative revenue (dashed: Eyal-Sirer)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "selfish_revenue.png"), dpi=120)
    plt.close(fig)

    fk = rep["forks"]
    pmf = np.asarray(fk["orphaned_pmf"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(np.arange(pmf.size), pmf, yerr=2 * np.asarray(fk["orphaned_pmf_stderr"]))
    ax.set_xlabel("orphaned blocks (last bin: tail)")
    ax.set_ylabel("probability")
    ax.set_title(f"forks from share {fk['share']:g}, switching rate {fk['switching_rate']:g}/h")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "fork_length.png"), dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    cfg = mining.load_config(args.config)
    rep = mining_report(cfg)
    _check_finite(rep)
    check_finite(rep)
    if args.out:
        with output_folder(args.out) as tmp:
            _write(tmp, rep, cfg["game"])
    if args.json:
        print_json(rep)
        return 0
    print(f"Branch-choice game: depth {cfg['game'].depth}, eta {float(cfg['game'].eta):g}")
    for e in rep["equilibria"]:
        print(
            f"  {e['kind']:>9}: m = {float(e['shares'][0]):.6f}  stable={e['stable']}  "
            f"exploitability={e['exploitability']:.2e}"
        )
    sr, be = rep["selfish_revenue"], rep["break_even_alpha"]
    print(f"Selfish mining (depth {sr['depth']}): break-even alpha by gamma")
    for g, a, b in zip(be["gamma"], be["eyal_sirer"], be["optimal"], strict=True):
        print(f"  gamma={float(g):.2f}: Eyal-Sirer {float(a):.4f}  optimal {float(b):.4f}")
    fk = rep["forks"]
    print(
        f"Forks: orphaned {fk['mean']['orphaned']:.2f} +- {fk['stderr']['orphaned']:.2f} blocks, "
        f"duration {fk['mean']['duration']:.2f} +- {fk['stderr']['duration']:.2f} h"
    )
    return 0
