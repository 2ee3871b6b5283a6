"""The text summary of a fit, in the style of statsmodels' `summary()`."""

import math

import numpy as np

W = 86


def _num(v, width: int = 11) -> str:
    if v is None or not np.isfinite(v):
        return f"{'n/a':>{width}s}"
    return f"{float(v):{width}.4g}"


_ORDER = ("eta", "K", "kappa", "level", "cos", "sin", "sigma_o", "sigma")


def _fixed(v, width: int, digits: int) -> str:
    if v is None or not np.isfinite(v):
        return f"{'n/a':>{width}s}"
    return f"{float(v):{width}.{digits}f}"


def _flat(values: dict, errors: dict, harmonics) -> list[tuple[str, float, float]]:
    rows = []
    first = [k for k in _ORDER if k in values]
    for k in first + [k for k in values if k not in first]:
        v = values[k]
        a, e = np.atleast_1d(np.asarray(v, float)), np.atleast_1d(np.asarray(errors[k], float))
        if k in ("cos", "sin"):
            rows += [(f"{k}_{h}", a[i], e[i]) for i, h in enumerate(harmonics)]
        else:
            rows.append((k, float(a[0]), float(e[0])))
    return rows


def _pair(left: tuple[str, str], right: tuple[str, str]) -> str:
    half = W // 2
    return f"{left[0]:<20s}{left[1]:>{half - 21}s} {right[0]:<22s}{right[1]:>{half - 22}s}"


def _table(title: str, rows, with_test: bool = True) -> list[str]:
    lines = [title]
    for name, coef, se in rows:
        z = coef / se if se and np.isfinite(se) and se > 0 else None
        p = math.erfc(abs(z) / math.sqrt(2)) if z is not None else None
        lo = coef - 1.959963984540054 * se if z is not None else None
        hi = coef + 1.959963984540054 * se if z is not None else None
        zs = f"{z:9.3f}" if z is not None else f"{'n/a':>9s}"
        ps = f"{p:9.3f}" if p is not None else f"{'n/a':>9s}"
        test = f"{zs}{ps}{_num(lo)}{_num(hi)}" if with_test else ""
        lines.append(f"{name:<26s}{_num(coef, 12)}{_num(se)}{test}")
    return lines


def format_summary(result) -> str:
    """The summary table of a [`CalibrationResult`][] (see its `summary`)."""
    p = result.parametrisation
    info = result.information()
    ev = result.evaluation or {}
    title = {"equilibrium": "Equilibrium price model", "mrjd": "MRJD (reduced form)"}[p.model]
    lines = [f"{title}: maximum-likelihood results".center(W), "=" * W]
    lines.append(_pair(("Model:", p.model), ("Log-likelihood:", f"{info['loglik']:.6g}")))
    lines.append(_pair(("Jumps:", p.jumps), ("AIC:", f"{info['aic']:.6g}")))
    lines.append(_pair(("No. observations:", str(result.n_obs)), ("BIC:", f"{info['bic']:.6g}")))
    lines.append(
        _pair(("Parameters (k):", str(info["k"])), ("NLL per observation:", f"{result.loss:.6g}"))
    )
    lines.append(
        _pair(("Converged:", str(result.converged)), ("Iterations:", str(result.iterations)))
    )
    lines.append(f"Convergence: {result.reason}")
    lines.append(
        f"Seasonal harmonics: {', '.join(str(h) for h in p.harmonics) or 'none'} "
        f"(multiples of 1/{p.period:g} h); time unit: hours"
    )
    data = ev.get("data")
    if data:
        test = f"; test {data['test'][0]} .. {data['test'][1]}" if data.get("test") else ""
        lines.append(
            f"Data: {data['file']} ({data['column']}), train {data['train'][0]} .. "
            f"{data['train'][1]}{test}"
        )
    lines.append("=" * W)
    head = f"{'':<26s}{'coef':>12s}{'std err':>11s}{'z':>9s}{'P>|z|':>9s}"
    head += f"{'[0.025':>11s}{'0.975]':>11s}"
    rows = _flat(result.identified(), result.stderr("identified"), p.harmonics)
    lines += _table(head, rows)
    lines.append("-" * W)
    implied = _flat(result.implied(), result.stderr("implied"), p.harmonics)
    lines += _table(f"{'Implied':<26s}{'value':>12s}{'std err':>11s}", implied, with_test=False)
    nll_train, nll_test = ev.get("nll_train"), ev.get("nll_test")
    if nll_train:
        lines.append("=" * W)
        lines.append(
            f"{'NLL per observation':<26s}{'train':>12s}{'test':>11s}"
            f"{'k':>9s}{'AIC':>14s}{'BIC':>14s}"
        )
        crit = ev.get("information", {})
        for key, name in (("equilibrium", "equilibrium"), ("mrjd", "MRJD"), ("ar1", "AR(1)")):
            c = crit.get(key, {})
            test = (nll_test or {}).get(key)
            lines.append(
                f"  {name:<24s}{_fixed(nll_train[key], 12, 5)}{_fixed(test, 11, 5)}"
                f"{c.get('k', ''):>9}{_fixed(c.get('aic'), 14, 1)}{_fixed(c.get('bic'), 14, 1)}"
            )
        lr = ev.get("lr_vs_mrjd")
        if lr and p.model == "equilibrium":
            lines.append(
                f"Likelihood ratio against the MRJD: {lr['statistic']:.6g} "
                f"({lr['extra_parameters']} more parameters; the MRJD is nested at a "
                "boundary, so no chi-square p-value: compare AIC and BIC)"
            )
    lines.append("=" * W)
    if p.model == "equilibrium":
        d = p.defaults.values()
        lines.append(
            "Fixed, not identified by prices: "
            + ", ".join(f"{k} = {d[k]:g}" for k in ("n", "lam", "c", "r_share", "q"))
        )
    if result.covariance is None:
        lines.append("No standard errors were computed.")
    elif result.hessian_singular:
        lines.append(
            "Warning: the Hessian is singular at the optimum; some standard errors "
            "are not available (n/a)."
        )
    if not result.converged:
        lines.append("Warning: the optimiser did not converge.")
    return "\n".join(lines)
