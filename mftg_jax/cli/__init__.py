"""The `mftg` command line: one module per sub-command, each with `register(subparsers)`.

Exit status: 0 success; 1 a certificate that failed (the run finished, its own checks did
not pass: `mftg certify`); 2 bad input or a run that cannot be carried out (one line on
stderr naming the field, flag, file or quantity: bad configs and arguments, unreadable data,
sizes past memory, non-finite results); 3 an internal error (one line; set `MFTG_DEBUG=1`
for the traceback); 130 interrupted.
"""

import argparse
import importlib
import os
import re
import sys
import warnings

from ._cache import enable_compile_cache
from ._errors import describe, EXIT_INTERNAL

# Sub-command modules of this package, in the order `mftg --help` lists them.
_COMMANDS = (
    "solve",
    "simulate",
    "scenario",
    "calibrate",
    "forecast",
    "certify",
    "solve_general",
    "regulate",
    "dispatch",
    "mining",
    "auction",
    "insurance",
    "frequency",
)


class UsageError(Exception):
    """A bad config or argument: printed as one line, exit status 2."""


class CertificateFailure(Exception):
    """A run whose own certificate failed: printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (`mftg CMD: error: ...`), exit status 2."""

    def error(self, message: str):
        message = " ".join(message.split())
        # "argument --steps: must be ..." -> "--steps must be ..." (the checked types' form).
        message = re.sub(r"^argument (-[-\w]+): must ", r"\1 must ", message)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        self.exit(2)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The `mftg` parser with every sub-command, or with `only` that one, or none when `only`
    is `""` (each command module imports its family: a call registers just the command it
    runs)."""
    parser = _Parser(
        prog="mftg",
        description="Mean-field-type games of electricity markets: solve, simulate, calibrate.",
        epilog="Compiled programs are cached on disk and reused by later calls (in "
        "$XDG_CACHE_HOME/mftg_jax/jax, or the folder $MFTG_COMPILE_CACHE names; "
        "MFTG_COMPILE_CACHE=0 or --no-compile-cache turns it off).",
    )
    parser.add_argument("--version", action="version", version=f"mftg_jax {_version()}")
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="neither read nor write the persistent compilation cache",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS if only is None else (only,) if only else ():
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    import jax

    # Equilibria are certified to 1e-6 and better: the command line works in float64
    # (simulations still choose their own dtype).
    jax.config.update("jax_enable_x64", True)
    try:
        words = sys.argv[1:] if argv is None else argv
        # `mftg --version` needs no command: register none (each imports its family).
        only = _command_of(words) or ("" if "--version" in words else None)
        args = build_parser(only).parse_args(argv)
    except SystemExit as e:
        # --help (0) and argument errors (2, already printed as one line).
        return e.code if isinstance(e.code, int) else 2
    enable_compile_cache(disabled=args.no_compile_cache)

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"mftg {args.command}: warning: {_one_line(str(message))}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"mftg {args.command}: interrupted", file=sys.stderr)
        if argv is None:
            # From the shell: leave at once. A normal interpreter exit would tear modules
            # down under XLA threads still running the interrupted program (a segfault).
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    except BrokenPipeError:
        # The reader went away (`mftg ... | head`): nothing more to say.
        sys.stderr.close()
        return 0
    except CertificateFailure as e:
        print(f"mftg {args.command}: certificate failed: {_one_line(str(e))}", file=sys.stderr)
        return 1
    except Exception as e:
        if os.environ.get("MFTG_DEBUG"):
            raise
        code, msg = describe(e, args)
        kind = "internal error" if code == EXIT_INTERNAL else "error"
        print(f"mftg {args.command}: {kind}: {_one_line(msg)}", file=sys.stderr)
        return code


def _command_of(argv: list[str]) -> str | None:
    """The sub-command `argv` runs, when its first non-option word names one (else None:
    help, a typo or no command, for which the parser lists every command)."""
    words = [a.replace("-", "_") for a in argv if not a.startswith("-")]
    return words[0] if words and words[0] in _COMMANDS else None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mftg_jax")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown (not installed)"


def _one_line(msg: str, limit: int = 400) -> str:
    msg = " ".join(msg.split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())
