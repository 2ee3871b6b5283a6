"""What the command line says about an exception: one line and an exit status.

Every command's errors pass through [`describe`][] (called by `mftg_jax.cli.main`): bad input
and runs that cannot be carried out are status 2 with a message naming what failed; anything
else is an internal error, status 3, still one line.
"""

import argparse
import csv
import re
import zipfile

EXIT_INPUT = 2
EXIT_INTERNAL = 3

_EQX = re.compile(r"EquinoxRuntimeError: (.+)")


def _inputs(args: argparse.Namespace) -> str:
    files = [
        str(v) for k in ("config", "data", "prices") if isinstance(v := getattr(args, k, None), str)
    ]
    return " or ".join(files) if files else "an input file"


def _runtime(msg: str) -> str:
    """The useful line of a JAX runtime error (equinox checks, solver budgets, memory)."""
    if "RESOURCE_EXHAUSTED" in msg or "Out of memory" in msg or "out of memory" in msg:
        return "out of memory: the run is too large for this machine; use fewer paths or steps"
    hits = [m.strip() for m in _EQX.findall(msg) if not m.startswith("Above is the stack")]
    lines = [x for x in msg.splitlines() if x.strip() and "Above is the stack" not in x]
    text = hits[-1] if hits else (lines[0] if lines else msg)
    if "maximum number of solver steps" in text:
        return (
            "the ODE solver reached its step budget (max_steps) before the end of the "
            "horizon: the parameters make the system too stiff or the horizon too long "
            "(shorten the horizon, or reduce the stiffest rate)"
        )
    return text


def describe(e: BaseException, args: argparse.Namespace) -> tuple[int, str]:
    """`(exit status, message)` for an exception that reached the command line."""
    from . import UsageError

    if isinstance(e, UnicodeDecodeError):
        return EXIT_INPUT, (
            f"{_inputs(args)} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8"
        )
    if isinstance(e, csv.Error):
        return EXIT_INPUT, f"{_inputs(args)}: not a readable CSV file ({e})"
    if isinstance(e, zipfile.BadZipFile):
        return EXIT_INPUT, f"a saved file is corrupted ({e})"
    if isinstance(e, UsageError | ValueError | OSError):
        return EXIT_INPUT, str(e) or type(e).__name__
    if isinstance(e, OverflowError):
        return EXIT_INPUT, f"a number in {_inputs(args)} or the flags is too large ({e})"
    if isinstance(e, MemoryError):
        return EXIT_INPUT, "out of memory: the run is too large for this machine"
    try:
        import equinox as eqx

        if isinstance(e, eqx.EquinoxRuntimeError):
            return EXIT_INPUT, _runtime(f"EquinoxRuntimeError: {e}")
    except ImportError:  # pragma: no cover
        pass
    import jax

    if isinstance(e, jax.errors.JaxRuntimeError):
        return EXIT_INPUT, _runtime(str(e))
    return EXIT_INTERNAL, f"{type(e).__name__}: {e} (set MFTG_DEBUG=1 for the traceback)"
