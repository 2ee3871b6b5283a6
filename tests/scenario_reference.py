"""An independent NumPy/SciPy reference for Scenario 2 (docs/model.md).

Written from the equations of docs/model.md, sharing no code with the package: the Riccati system
backwards with DOP853, the conditional price forwards, the running costs along it.
"""

import numpy as np
from scipy.integrate import solve_ivp

ETA, A, Q, T0, T1, P0 = 0.5, 1.0, 1.0, 0.0, 1.5, 50.0
C = np.array([1.0, 5.0, 10.0])
R_ = np.array([1.0, 2.0, 3.0])
RBAR = np.array([1.0, 2.0, 3.0])
LAM = np.array([0.1, 0.1, 0.1])
RR = R_ + RBAR
TOL = dict(rtol=1e-12, atol=1e-12, method="DOP853", dense_output=True)


def _ab_rhs(t, y):
    al, be = y[:3], y[3:]
    k = (1 - ETA * be) / RR
    others_alpha = np.array([sum(al[j] / R_[j] for j in range(3) if j != i) for i in range(3)])
    others_k = np.array([sum(k[j] for j in range(3) if j != i) for i in range(3)])
    dal = (LAM + 2 * ETA) * al - ETA**2 / R_ * al**2 - 2 * ETA**2 * al * others_alpha
    dbe = (LAM + 2 * ETA) * be - (1 - ETA * be) ** 2 / RR + 2 * ETA * be * others_k
    return np.concatenate([dal, dbe])


def gamma_rhs(t, ga, be):
    k = (1 - ETA * be) / RR
    m = (C + ETA * ga) / RR
    others_k = np.array([sum(k[j] for j in range(3) if j != i) for i in range(3)])
    others_m = np.array([sum(m[j] for j in range(3) if j != i) for i in range(3)])
    return (
        (LAM + ETA) * ga
        - ETA * be * A
        + (1 - ETA * be) * (C + ETA * ga) / RR
        + ETA * ga * others_k
        - ETA * be * others_m
    )


def alpha_beta():
    """Dense $(\\alpha, \\beta)$ from $t_1$ backwards."""
    y1 = np.concatenate([-Q * np.ones(3), np.zeros(3)])
    return solve_ivp(_ab_rhs, (T1, T0), y1, **TOL).sol


def gamma(ab, misprint: bool = False):
    """Dense $\\gamma$: backwards from $\\gamma(t_1)=0$, or forwards from $\\gamma(t_0)=0$."""
    f = lambda t, g: gamma_rhs(t, g, ab(t)[3:])
    span = (T0, T1) if misprint else (T1, T0)
    return solve_ivp(f, span, np.zeros(3), **TOL).sol


def controls(t, p, phat, ab, ga):
    al, be = ab(t)[:3], ab(t)[3:]
    g = ga(t)
    uhat = phat * (1 - ETA * be) / RR - (C + ETA * g) / RR
    return -ETA * al / R_ * (p - phat) + uhat, uhat


def cost_rate(u, uhat):
    return C * u + R_ / 2 * u**2 + RBAR / 2 * uhat**2


def price_and_costs(misprint: bool = False):
    """Dense solution of $(p, \\hat p, \\int C_1, \\int C_2, \\int C_3)$ and the controls."""
    ab = alpha_beta()
    ga = gamma(ab, misprint)

    def rhs(t, y):
        p, phat = y[0], y[1]
        u, uhat = controls(t, p, phat, ab, ga)
        return np.concatenate(
            [
                [ETA * (A - u.sum() - p), ETA * (A - uhat.sum() - phat)],
                cost_rate(u, uhat),
            ]
        )

    sol = solve_ivp(rhs, (T0, T1), np.concatenate([[P0, P0], np.zeros(3)]), **TOL)

    def rate(t):
        p, phat = sol.sol(t)[:2]
        return cost_rate(*controls(t, p, phat, ab, ga))

    return sol, rate
