"""`mftg insurance`: consumption, investment and insurance over regulated energy assets: the
q = 0 closed forms against their Monte Carlo, the q > 0 feedback by gradient descent with its
perturbation certificate, ruin and the insured/uninsured comparison."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from .. import insurance
from .._toml import load
from ._args import integer
from ._common import check_finite, output_folder, print_json, to_jsonable


def register(sub) -> None:
    p = sub.add_parser(
        "insurance",
        help="consumption, investment and insurance over regulated energy assets",
        description="Solve the consumption-investment-insurance problem of CONFIG.toml "
        "(slides, equations (12)-(13)): the q = 0 closed forms and their Monte Carlo check, "
        "the numerical feedback (gradient descent through the Monte Carlo) and its "
        "perturbation certificate, ruin probabilities insured and uninsured.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="problem configuration")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--out", metavar="DIR", help="write report.json and figures to DIR")
    p.add_argument(
        "--paths", type=integer(2, 10**7), default=None, help="Monte Carlo paths (override)"
    )
    p.add_argument(
        "--steps", type=integer(1, 10**6), default=None, help="Monte Carlo grid steps (override)"
    )
    p.add_argument(
        "--opt-steps",
        type=integer(1, 10**6),
        default=None,
        help="gradient-descent steps (override)",
    )
    p.set_defaults(func=run)


def _read(path: str):
    return load(path, lambda d: (insurance.model_from_dict(d), insurance.run_settings(d)))


def _wealth_stats(paths, s0: float, ruin_level: float) -> dict:
    s = np.asarray(paths.terminal_wealth)
    ruin = np.asarray(paths.min_wealth) < ruin_level * s0
    n = ruin.size
    p = ruin.mean()
    return {
        "terminal_wealth_mean": s.mean(),
        "terminal_wealth_std": s.std(ddof=1),
        "terminal_wealth_quantiles": np.quantile(s, [0.05, 0.25, 0.5, 0.75, 0.95]),
        "ruin_probability": p,
        "ruin_probability_stderr": math.sqrt(max(p * (1 - p), 1e-300) / n),
        "bankrupt_paths": int(np.asarray(paths.bankrupt).sum()),
    }


def insurance_report(model, settings: dict) -> tuple[dict, dict]:
    """Everything `mftg insurance` reports (docs/insurance.md), and the objects behind it."""
    sol = insurance.solve(model)
    r = sol.returns
    t0 = model.t0
    j0 = model.regime0
    reg = model.regimes
    other = "poisson" if model.convention == "compensated" else "compensated"
    N, T = settings["n_paths"], settings["n_steps"]
    key = jax.random.key(settings["seed"])
    cf = sol.policy()
    values = sol.values()
    alpha_cf = insurance.alpha_closed_form(t0, reg.generator, reg.bequest, model.discount, model.t1)
    rep = {
        "d": model.d,
        "m": model.m,
        "q": model.q,
        "convention": model.convention,
        "consumption_rate": sol.consumption_rate(t0),
        "investment_fraction": sol.investment_fraction(t0),
        "insurance_fraction": sol.insurance,
        f"insurance_fraction_{other}": insurance.insurance_fraction(
            reg.loss_fraction, reg.loading, other
        ),
        "alpha_t0": sol.alpha[0],
        "alpha_closed_form_error": jnp.max(jnp.abs(sol.alpha[0] - alpha_cf)),
        "foc_residual": jnp.max(jnp.abs(sol.foc_residual)),
        "value_closed_form_q0": values[j0],
        "value_per_regime_q0": values,
        "mc_paths": N,
        "mc_steps": T,
    }
    objs = {}
    if float(model.q) == 0.0:
        paths = insurance.simulate_paths(model, r, cf, key, N, T)
        bare = insurance.simulate_paths(model, r, insurance.uninsured(cf), key, N, T)
        v, se = insurance.mean_and_stderr(insurance.objective_samples(model, paths))
        rep.update(value=values[j0], value_mc=v, value_mc_stderr=se)
        policy = cf
    else:
        init = insurance.fit_feedback(model, cf, settings["degree"])
        kopt = jax.random.key(settings["opt_seed"])
        res = insurance.optimise_policy(
            model,
            r,
            init,
            kopt,
            n_paths=settings["opt_paths"],
            n_steps=settings["opt_steps"],
            steps=settings["steps"],
            learning_rate=settings["learning_rate"],
            method=settings["method"],
        )
        policy = res.policy
        kw = dict(
            n_directions=settings["certificate_directions"],
            sizes=settings["certificate_sizes"],
            n_paths=settings["opt_paths"],
            n_steps=settings["opt_steps"],
        )
        cert = insurance.certify_policy(
            model, r, policy, jax.random.key(settings["certificate_seed"]), **kw
        )
        inside = insurance.certify_policy(model, r, policy, kopt, independent=False, **kw)
        paths = insurance.simulate_paths(model, r, policy, key, N, T)
        bare = insurance.simulate_paths(model, r, insurance.uninsured(policy), key, N, T)
        v, se = insurance.mean_and_stderr(insurance.objective_samples(model, paths))
        s = paths.terminal_wealth
        penalty = model.q * jnp.exp(-model.discount * model.t1) * jnp.var(s)
        exact_part = insurance.policy_value(model, policy, r)[j0]
        # the closed-form policy (its Chebyshev fit) on the same paths
        init_v, init_se = insurance.sample_objective(model, r, init, key, N, T)
        c, pi, ins = policy.fractions(t0)
        rep.update(
            value=exact_part - penalty,
            value_mc=v,
            value_mc_stderr=se,
            value_closed_form_policy_mc=init_v,
            value_closed_form_policy_mc_stderr=init_se,
            numerical_consumption_rate=c,
            numerical_investment_fraction=pi,
            numerical_insurance_fraction=ins,
            optimisation_method=settings["method"],
            optimisation_steps=settings["steps"],
            optimisation_objective_first=res.history[0],
            optimisation_objective_last=res.history[-1],
            optimisation_gradient_norm=res.gradient_norm,
            policy_improvement_bound=cert.bound,
            policy_improvement_bound_stderr=cert.bound_stderr,
            policy_certified=cert.certified,
            in_sample_improvement_bound=inside.bound,
            in_sample_improvement_bound_stderr=inside.bound_stderr,
            in_sample_certified=inside.certified,
        )
        objs.update(optimisation=res, certificate=cert)
    v_bare = insurance.policy_value(model, insurance.uninsured(policy), r)[j0]
    rep["value_uninsured_q0_part"] = v_bare
    rep["value_insured_q0_part"] = insurance.policy_value(model, policy, r)[j0]
    rep["insured"] = _wealth_stats(paths, float(model.s0), settings["ruin_level"])
    rep["uninsured"] = _wealth_stats(bare, float(model.s0), settings["ruin_level"])
    rep["ruin_level"] = settings["ruin_level"]
    rep["overflow"] = int(paths.overflow) + int(bare.overflow)
    objs.update(solution=sol, policy=policy, paths=paths, bare=bare)
    return rep, objs


def _finite(rep, where="") -> None:
    for k, v in rep.items():
        if isinstance(v, dict):
            _finite(v, f"{where}{k}.")
        elif not isinstance(v, str | bool) and not np.all(np.isfinite(np.asarray(v, float))):
            raise ValueError(f"non-finite result: {where}{k} = {np.asarray(v)}")


def _write(out: str, rep: dict, objs: dict, model, settings) -> None:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(to_jsonable(rep), f, indent=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numerical = objs["policy"] if float(model.q) > 0 else None
    fig = insurance.plot_policy(objs["solution"], numerical)
    fig.savefig(os.path.join(out, "policy.png"), dpi=120)
    plt.close(fig)
    fig = insurance.plot_wealth(
        objs["paths"].terminal_wealth,
        objs["bare"].terminal_wealth,
        settings["ruin_level"] * float(model.s0),
    )
    fig.savefig(os.path.join(out, "terminal_wealth.png"), dpi=120)
    plt.close(fig)


def run(args) -> int:
    model, settings = _read(args.config)
    for name, key in (("paths", "n_paths"), ("steps", "n_steps"), ("opt_steps", "steps")):
        v = getattr(args, name)
        if v is not None:
            flag = "--" + name.replace("_", "-")
            if v < 1 or (name == "paths" and v % 2):
                raise ValueError(f"{flag} must be a positive (for --paths: even) integer, got {v}")
            settings[key] = v
    rep, objs = insurance_report(model, settings)
    _finite(rep)
    check_finite(rep)
    if args.out:
        with output_folder(args.out) as tmp:
            _write(tmp, rep, objs, model, settings)
    if args.json:
        print_json(rep)
        return 0
    j0 = model.regime0
    print(f"insurance: d = {model.d} assets, m = {model.m} regimes, q = {float(model.q):g}")
    print(f"  consumption rate at t0:   {np.asarray(rep['consumption_rate']).round(4)}")
    print(f"  investment fractions t0:  {np.asarray(rep['investment_fraction']).round(4).tolist()}")
    print(f"  insurance fractions:      {np.asarray(rep['insurance_fraction']).round(4)}")
    print(
        f"  value {float(rep['value']):.5f}, Monte Carlo {float(rep['value_mc']):.5f} "
        f"+- {float(rep['value_mc_stderr']):.5f} (regime {j0})"
    )
    if "policy_improvement_bound" in rep:
        print(
            f"  largest improvement by perturbation {rep['policy_improvement_bound']:.2e} "
            f"+- {rep['policy_improvement_bound_stderr']:.2e} "
            f"({'certified' if rep['policy_certified'] else 'NOT certified'})"
        )
    for k in ("insured", "uninsured"):
        print(
            f"  {k:9s} ruin probability {rep[k]['ruin_probability']:.4f} "
            f"+- {rep[k]['ruin_probability_stderr']:.4f}"
        )
    return 0
