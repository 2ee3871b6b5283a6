r"""Standard test systems from MATPOWER case files, reduced to a lossless swing network.

The package ships the WSCC 9-bus, IEEE 14-bus and IEEE 39-bus systems as MATPOWER (version 2)
case files in `mftg_jax/frequency/cases/` with the solved AC power flow in their bus voltages
and an extra matrix `mpc.gendyn = [bus, H, xd1]` of classical generator data (the sources are
named in each file's header and in docs/frequency_dynamics.md).

The reduction (docs/frequency_dynamics.md, "From an AC case to the swing network"):

- every in-service branch is a lossless line of susceptance $B_\ell = |V_f||V_t|/(\tau_\ell
  x_\ell)$ (reactance $x_\ell$, tap ratio $\tau_\ell$, power-flow voltages $|V|$);
- every generator gets an internal (rotor) bus behind its transient reactance $x'_d$, joined
  to its terminal bus by $B = |E'||V|/x'_d$ with $E' = V + jx'_d\,\overline{S/V}$ from the
  power flow; the internal bus carries $M = 2H/\omega_s$, $D = D^{pu}/\omega_s$ and the
  generation $P_g$, the slack unit's reduced by the AC losses so that $\sum_i P_i = 0$;
- loads are constant power at their buses (passive), or frequency-responsive with
  $D_i = d\,P_{d,i}/\omega_s$ when a load damping $d > 0$ is given; shunt conductances are
  constant-power loads at the power-flow voltage.
"""

from pathlib import Path
import re

import numpy as np

from ._network import GENERATOR, Network, PASSIVE, RESPONSIVE

CASES_DIR = Path(__file__).resolve().parent / "cases"
CASES = ("wscc9", "ieee14", "ieee39")

_MATRIX = re.compile(r"mpc\.(\w+)\s*=\s*\[(.*?)\];", re.S)
_SCALAR = re.compile(r"mpc\.(\w+)\s*=\s*([-+0-9.eE]+)\s*;")


def read_matpower(path) -> dict:
    """Read the numeric matrices and scalars of a MATPOWER case file (`mpc.bus`, ...).

    Comments (`%` to the end of the line) are dropped; rows end with `;` or a newline.

    **Returns:** a dict from field name to a float array (matrices) or a float (scalars).
    """
    text = "\n".join(line.split("%", 1)[0] for line in Path(path).read_text().splitlines())
    out: dict = {k: float(v) for k, v in _SCALAR.findall(text)}
    for name, body in _MATRIX.findall(text):
        rows = [r.split() for r in re.split(r"[;\n]", body) if r.strip()]
        try:
            out[name] = np.array([[float(x) for x in r] for r in rows], dtype=float)
        except ValueError as e:
            raise ValueError(f"{path}: mpc.{name} is not a numeric matrix ({e})") from None
        if len({len(r) for r in rows}) > 1:
            raise ValueError(f"{path}: mpc.{name} has rows of different lengths")
    for field in ("baseMVA", "bus", "gen", "branch"):
        if field not in out:
            raise ValueError(f"{path}: a MATPOWER case needs mpc.{field}")
    return out


def case_path(case) -> Path:
    """The file of a shipped case name (`"wscc9"`, `"ieee14"`, `"ieee39"`) or a path."""
    if str(case) in CASES:
        return CASES_DIR / f"{case}.m"
    path = Path(case)
    if not path.is_file():
        raise ValueError(f"case must be one of {CASES} or a MATPOWER .m file, got {case!r}")
    return path


def load_case(
    case,
    *,
    generator_damping=2.0,
    load_damping: float = 0.0,
    f0: float = 60.0,
    internal_nodes: bool = True,
) -> Network:
    r"""Load a MATPOWER case as a swing [`Network`][mftg_jax.frequency.Network].

    Bus order: the case's buses in file order, then (with `internal_nodes`) one internal
    bus per generator in the order of `mpc.gen`. Every generator is controllable within
    $[P_{min} - P_g, P_{max} - P_g]$ with the unit cost $J(u) = u^2/2$.

    **Arguments:**

    - `case`: `"wscc9"`, `"ieee14"`, `"ieee39"` or the path of a MATPOWER file with an
      `mpc.gendyn = [bus, H, xd1]` matrix (one row per generator).
    - `generator_damping`: $D^{pu}$ per generator (p.u. power per p.u. frequency, system
      base), a scalar or one per generator.
    - `load_damping`: $d \ge 0$; loads become frequency-responsive buses with
      $D_i = d P_{d,i}/\omega_s$ when $d > 0$.
    - `f0`: the nominal frequency (Hz).
    - `internal_nodes`: put the rotors behind $x'_d$ (default) or at the terminal buses.

    **Returns:** the network (a generator's inertia and damping at its internal bus).
    """
    path = case_path(case)
    mpc = read_matpower(path)
    if "gendyn" not in mpc:
        raise ValueError(f"{path}: mpc.gendyn = [bus, H, xd1] is required for the dynamics")
    if load_damping < 0 or not np.isfinite(load_damping):
        raise ValueError(f"load_damping must be >= 0, got {load_damping}")
    base = mpc["baseMVA"]
    bus, gen, branch, dyn = mpc["bus"], mpc["gen"], mpc["branch"], mpc["gendyn"]
    index = {int(b): i for i, b in enumerate(bus[:, 0])}
    n_bus = len(index)
    vm = bus[:, 7]
    va = np.radians(bus[:, 8])
    gen = gen[gen[:, 7] > 0]
    branch = branch[branch[:, 10] > 0]
    if np.any(branch[:, 9] != 0):
        raise ValueError(f"{path}: phase-shifting transformers are not supported")
    if dyn.shape != (len(gen), 3) or sorted(dyn[:, 0]) != sorted(gen[:, 0]):
        raise ValueError(f"{path}: mpc.gendyn must hold one [bus, H, xd1] row per generator")
    if len(set(gen[:, 0])) != len(gen):
        raise ValueError(f"{path}: one generator per bus is supported")
    order = [int(np.flatnonzero(dyn[:, 0] == g)[0]) for g in gen[:, 0]]
    H, xd1 = dyn[order, 1], dyn[order, 2]
    if np.any(H <= 0) or np.any(xd1 <= 0):
        raise ValueError(f"{path}: mpc.gendyn needs H > 0 and xd1 > 0")
    omega_s = 2 * np.pi * f0
    ng = len(gen)
    Dg = np.asarray(generator_damping, dtype=float)
    if Dg.ndim > 1 or (Dg.ndim == 1 and Dg.shape != (ng,)):
        raise ValueError(
            f"generator_damping must be a scalar or one per generator ({ng}), got shape {Dg.shape}"
        )
    Dg = np.broadcast_to(Dg, (ng,))
    if np.any(Dg < 0) or not np.all(np.isfinite(Dg)):
        raise ValueError(f"generator_damping must be >= 0, got {generator_damping}")

    f = np.array([index[int(b)] for b in branch[:, 0]])
    t = np.array([index[int(b)] for b in branch[:, 1]])
    tap = np.where(branch[:, 8] == 0, 1.0, branch[:, 8])
    line_B = vm[f] * vm[t] / (tap * branch[:, 3])

    Pd = (bus[:, 2] + bus[:, 4] * vm**2) / base
    Pg = gen[:, 1] / base
    slack = [i for i, g in enumerate(gen[:, 0]) if bus[index[int(g)], 1] == 3]
    Pg[slack[0] if slack else 0] -= Pg.sum() - Pd.sum()
    gbus = np.array([index[int(b)] for b in gen[:, 0]])
    u_lo, u_hi = gen[:, 9] / base - Pg, gen[:, 8] / base - Pg
    u_hi = np.maximum(u_hi, 0.0)
    u_lo = np.minimum(u_lo, 0.0)

    kind_bus = np.where((load_damping > 0) & (Pd > 0), RESPONSIVE, PASSIVE)
    D_bus = np.where(kind_bus == RESPONSIVE, load_damping * Pd / omega_s, 0.0)
    if internal_nodes:
        V = vm[gbus] * np.exp(1j * va[gbus])
        # The generators' lossless injections (the slack's net of the losses), so that the
        # internal EMF matches the power the internal bus injects.
        S = Pg + 1j * gen[:, 2] / base
        E = V + 1j * xd1 * np.conj(S / V)
        n = n_bus + ng
        kind = np.concatenate([kind_bus, np.full(ng, GENERATOR)])
        M = np.concatenate([np.zeros(n_bus), 2 * H / omega_s])
        D = np.concatenate([D_bus, Dg / omega_s])
        P = np.concatenate([-Pd, Pg])
        f = np.concatenate([f, np.arange(n_bus, n)])
        t = np.concatenate([t, gbus])
        line_B = np.concatenate([line_B, np.abs(E) * vm[gbus] / xd1])
        gidx = np.arange(n_bus, n)
    else:
        n = n_bus
        kind, M, D, P = kind_bus.copy(), np.zeros(n), D_bus.copy(), -Pd.copy()
        kind[gbus] = GENERATOR
        M[gbus] = 2 * H / omega_s
        D[gbus] = Dg / omega_s + D_bus[gbus]
        P[gbus] += Pg
        gidx = gbus
    u_min, u_max, cost_a = np.zeros(n), np.zeros(n), np.ones(n)
    u_min[gidx], u_max[gidx] = u_lo, u_hi
    return Network(
        kind=kind,
        M=M,
        D=D,
        P=P,
        line_from=f,
        line_to=t,
        line_B=line_B,
        u_min=u_min,
        u_max=u_max,
        cost_a=cost_a,
        cost_b=np.zeros(n),
        base_mva=base,
        f0=f0,
    )


def generator_buses(network: Network) -> np.ndarray:
    """The indices of the generator (rotor) buses of `network`."""
    return np.flatnonzero(np.asarray(network.kind) == GENERATOR)
