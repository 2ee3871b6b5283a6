"""mftg_jax: mean-field-type games of electricity markets in JAX.

The top level holds the shared core (noise, the Monte Carlo engine's statistics, certificates,
configuration errors, the Riccati failure) and the price-game model most users start from; each
model family is a subpackage: [`mftg_jax.price`][], [`mftg_jax.lq`][],
[`mftg_jax.calibration`][], [`mftg_jax.tracking`][], [`mftg_jax.dispatch`][],
[`mftg_jax.auction`][], [`mftg_jax.mining`][], [`mftg_jax.insurance`][], [`mftg_jax.slides`][].
"""

from ._certify import NashCertificate as NashCertificate
from ._noise._jumps import (
    AbstractJumpSize as AbstractJumpSize,
    CompoundPoisson as CompoundPoisson,
    ExponentialJumps as ExponentialJumps,
    FixedJumps as FixedJumps,
    no_jumps as no_jumps,
    NormalJumps as NormalJumps,
)
from ._noise._levy_path import GridLevyPath as GridLevyPath, LevyIncrements as LevyIncrements
from ._odes import (
    RiccatiExplosionError as RiccatiExplosionError,
    solve_ode as solve_ode,
    stacked_evaluate as stacked_evaluate,
    stacked_ys as stacked_ys,
)
from ._simulation._driver import (
    AbstractEnsemble as AbstractEnsemble,
    EnsembleStatistics as EnsembleStatistics,
    Observables as Observables,
    run_ensemble as run_ensemble,
    RunInfo as RunInfo,
)
from ._simulation._spec import EnsembleSpec as EnsembleSpec
from ._simulation._statistics import Moments as Moments
from ._simulation._stepper import AbstractEnsembleTerm as AbstractEnsembleTerm
from ._toml import ConfigError as ConfigError
from .price import (
    DemandIntercept as DemandIntercept,
    Market as Market,
    Noise as Noise,
    PriceGame as PriceGame,
    Producers as Producers,
)

__version__ = "0.2.0"

# The model families are imported when first used (`mftg_jax.auction`, `import
# mftg_jax.auction`, `from mftg_jax import auction`): a command or script that uses one family
# does not pay for importing the others.
_FAMILIES = (
    "auction",
    "calibration",
    "dispatch",
    "frequency",
    "insurance",
    "lq",
    "mining",
    "price",
    "slides",
    "tracking",
)


def __getattr__(name: str):
    if name in _FAMILIES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FAMILIES))
