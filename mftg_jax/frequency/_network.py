r"""A power network for frequency dynamics: buses of three kinds joined by lossless lines.

Bus $i$ has an angle $\theta_i$ (rad) and a frequency deviation $\omega_i = \dot\theta_i$
(electrical rad/s, relative to the nominal $\omega_s = 2\pi f_0$). Powers are per unit on
`base_mva`. The swing equations (Barreiro-Gomez, Dorfler, Tembine, ACC 2018, equation (1)) are

$$M_i\dot\omega_i + D_i\omega_i = P_i + u_i - \textstyle\sum_j B_{ij}\sin(\theta_i - \theta_j)$$

at generator buses (`kind` 0: $M_i > 0$, $D_i \ge 0$), the same with $M_i = 0$, $D_i > 0$ at
frequency-responsive buses (`kind` 1, first order) and $0 = P_i + u_i - \sum_j B_{ij}
\sin(\theta_i - \theta_j)$ at passive buses (`kind` 2, algebraic). With the inertia constant
$H_i$ (s, on the system base) $M_i = 2H_i/\omega_s$ (p.u. s$^2$/rad) and a per-unit damping
$D^{pu}_i$ (p.u. power per p.u. frequency) $D_i = D^{pu}_i/\omega_s$ (p.u. s/rad).
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float
import numpy as np

from .._validation import check_field, is_concrete

GENERATOR = 0
RESPONSIVE = 1
PASSIVE = 2


def _vector(x) -> Array:
    return jnp.atleast_1d(jnp.asarray(x, dtype=float))


def _ints(x) -> tuple[int, ...]:
    return tuple(int(v) for v in np.atleast_1d(np.asarray(x)).ravel())


class Network(eqx.Module):
    r"""Buses (kind, inertia, damping, injection, control bounds and cost) and lines.

    The line susceptances are the weights of the (symmetric, by construction) Laplacian
    $L = \sum_\ell B_\ell (e_{f_\ell} - e_{t_\ell})(e_{f_\ell} - e_{t_\ell})^T$; a line of a
    case loaded from an AC power flow carries $B_\ell = |V_f||V_t|/(\tau_\ell x_\ell)$ (tap ratio
    $\tau_\ell$, 1 on a line; see
    [`load_case`][mftg_jax.frequency.load_case]). A zero susceptance is an open line (the
    contingency code switches lines off that way); the graph of the lines with $B_\ell > 0$
    must be connected.

    **Arguments:**

    - `kind`: per bus, 0 generator, 1 frequency-responsive, 2 passive (static: the shapes of
      the dynamics depend on it).
    - `M`: inertia $M_i$ (p.u. s$^2$/rad), $> 0$ at generators, $0$ elsewhere.
    - `D`: damping $D_i$ (p.u. s/rad), $\ge 0$ at generators, $> 0$ at frequency-responsive
      buses, $0$ at passive buses.
    - `P`: nominal net injection $P_i$ (p.u., generation minus load).
    - `u_min`, `u_max`: bounds of the control injection $u_i$ (p.u.), `u_min <= u_max`; a bus
      with `u_min == u_max == 0` is not controllable. Default: no control anywhere.
    - `cost_a`, `cost_b`: the quadratic cost $J_i(u) = \tfrac{a_i}{2}u^2 + b_i u$, $a_i \ge 0$.
      Default $a_i = 1$, $b_i = 0$.
    - `line_from`, `line_to`: the lines' end buses (static, 0-based, distinct ends).
    - `line_B`: the lines' susceptances $B_\ell \ge 0$ (p.u.).
    - `base_mva`: the power base (MVA); `f0`: the nominal frequency (Hz).
    """

    kind: tuple[int, ...] = eqx.field(static=True, converter=_ints)
    M: Float[Array, " n"] = eqx.field(converter=_vector)
    D: Float[Array, " n"] = eqx.field(converter=_vector)
    P: Float[Array, " n"] = eqx.field(converter=_vector)
    line_from: tuple[int, ...] = eqx.field(static=True, converter=_ints)
    line_to: tuple[int, ...] = eqx.field(static=True, converter=_ints)
    line_B: Float[Array, " m"] = eqx.field(converter=_vector)
    u_min: Float[Array, " n"] = eqx.field(default=None, converter=lambda x: x)
    u_max: Float[Array, " n"] = eqx.field(default=None, converter=lambda x: x)
    cost_a: Float[Array, " n"] = eqx.field(default=None, converter=lambda x: x)
    cost_b: Float[Array, " n"] = eqx.field(default=None, converter=lambda x: x)
    base_mva: float = eqx.field(default=100.0, static=True, converter=float)
    f0: float = eqx.field(default=60.0, static=True, converter=float)

    def __post_init__(self):
        n = len(self.kind)
        defaults = {"u_min": 0.0, "u_max": 0.0, "cost_a": 1.0, "cost_b": 0.0}
        for name, value in defaults.items():
            v = getattr(self, name)
            v = jnp.full((n,), value) if v is None else _vector(v)
            object.__setattr__(self, name, v)

    def __check_init__(self):
        n, m = len(self.kind), len(self.line_from)
        if n < 1:
            raise ValueError("Network.kind must list at least one bus")
        if any(k not in (GENERATOR, RESPONSIVE, PASSIVE) for k in self.kind):
            raise ValueError(f"Network.kind must be 0, 1 or 2 per bus, got {self.kind}")
        if GENERATOR not in self.kind and RESPONSIVE not in self.kind:
            raise ValueError("Network.kind must contain at least one dynamic bus (kind 0 or 1)")
        for name in ("M", "D", "P", "u_min", "u_max", "cost_a", "cost_b"):
            v = getattr(self, name)
            if v.shape != (n,):
                raise ValueError(f"Network.{name} must have shape (n={n},), got {v.shape}")
            check_field(f"Network.{name}", v, "finite")
        if len(self.line_to) != m or self.line_B.shape != (m,):
            raise ValueError(
                f"Network.line_from, line_to and line_B must have one length, got {m}, "
                f"{len(self.line_to)} and {self.line_B.shape}"
            )
        for name, ends in (("line_from", self.line_from), ("line_to", self.line_to)):
            if any(not 0 <= e < n for e in ends):
                raise ValueError(f"Network.{name} must be bus indices in [0, {n - 1}], got {ends}")
        if any(f == t for f, t in zip(self.line_from, self.line_to)):
            raise ValueError("Network.line_from and line_to must differ on every line")
        if self.base_mva <= 0 or not np.isfinite(self.base_mva):
            raise ValueError(f"Network.base_mva must be > 0, got {self.base_mva}")
        if self.f0 <= 0 or not np.isfinite(self.f0):
            raise ValueError(f"Network.f0 must be > 0 (Hz), got {self.f0}")
        check_field("Network.line_B", self.line_B, ">= 0 (p.u. susceptance)", lambda v: v >= 0)
        check_field("Network.cost_a", self.cost_a, ">= 0", lambda v: v >= 0)
        if is_concrete(self.u_min, self.u_max) and np.any(
            np.asarray(self.u_min) > np.asarray(self.u_max)
        ):
            raise ValueError("Network.u_min must be <= Network.u_max at every bus")
        kind = np.asarray(self.kind)
        gen, resp, pas = kind == GENERATOR, kind == RESPONSIVE, kind == PASSIVE
        if is_concrete(self.M, self.D):
            M, D = np.asarray(self.M), np.asarray(self.D)
            if np.any(M[gen] <= 0):
                raise ValueError(f"Network.M must be > 0 at generator buses, got {M[gen]}")
            if np.any(M[~gen] != 0):
                raise ValueError("Network.M must be 0 at frequency-responsive and passive buses")
            if np.any(D[gen] < 0):
                raise ValueError(f"Network.D must be >= 0 at generator buses, got {D[gen]}")
            if np.any(D[resp] <= 0):
                raise ValueError(
                    f"Network.D must be > 0 at frequency-responsive buses, got {D[resp]}"
                )
            if np.any(D[pas] != 0):
                raise ValueError("Network.D must be 0 at passive buses")
        if is_concrete(self.line_B) and not _connected(
            n, self.line_from, self.line_to, np.asarray(self.line_B) > 0
        ):
            raise ValueError(
                "Network lines must connect every bus (the graph of the lines with line_B > 0 "
                "is disconnected)"
            )

    @property
    def n(self) -> int:
        """The number of buses."""
        return len(self.kind)

    @property
    def omega_s(self) -> float:
        r"""The nominal angular frequency $\omega_s = 2\pi f_0$ (rad/s)."""
        return 2 * np.pi * self.f0

    @property
    def controllable(self) -> Bool[Array, " n"]:
        """The buses whose control interval has positive length."""
        return self.u_max > self.u_min

    @property
    def power_imbalance(self) -> Array:
        r"""$\sum_i P_i$: zero for a network with a synchronous equilibrium at $\omega = 0$."""
        return jnp.sum(self.P)

    def incidence(self) -> np.ndarray:
        r"""The bus-line incidence matrix $E$ (`(n, m)`, $+1$ at `line_from`, $-1$ at `line_to`)."""
        E = np.zeros((self.n, len(self.line_from)))
        lines = np.arange(len(self.line_from))
        E[np.asarray(self.line_from, int), lines] = 1.0
        E[np.asarray(self.line_to, int), lines] = -1.0
        return E

    def laplacian(self) -> Float[Array, "n n"]:
        r"""The weighted Laplacian $L = E\,\mathrm{diag}(B)\,E^T$ (p.u.)."""
        E = jnp.asarray(self.incidence())
        return (E * self.line_B[None, :]) @ E.T

    def line_flows(self, theta) -> Float[Array, " m"]:
        r"""The flows $B_\ell\sin(\theta_{f_\ell} - \theta_{t_\ell})$ (p.u.) of the lines."""
        f = jnp.asarray(self.line_from, dtype=int)
        t = jnp.asarray(self.line_to, dtype=int)
        return self.line_B * jnp.sin(theta[..., f] - theta[..., t])

    def electrical_power(self, theta) -> Float[Array, " n"]:
        r"""$P^e_i = \sum_j B_{ij}\sin(\theta_i - \theta_j)$ at every bus (p.u.)."""
        return jnp.asarray(self.incidence()) @ self.line_flows(theta)


def _connected(n: int, f, t, on) -> bool:
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b, ok in zip(f, t, on):
        if ok:
            parent[root(a)] = root(b)
    return len({root(i) for i in range(n)}) == 1


def islands(network: Network, off=()) -> bool:
    """True when switching off the lines `off` (indices) disconnects `network`."""
    on = np.asarray(network.line_B) > 0
    on[list(off)] = False
    return not _connected(network.n, network.line_from, network.line_to, on)
