"""The command line's persistent compilation cache.

Every `mftg` command compiles its programs with XLA, which takes most of a short run. JAX can
keep compiled programs on disk and reuse them in a later process; the command line turns this
on by default, in the user's cache folder:

- `$MFTG_COMPILE_CACHE` names the folder; `0`, `off`, `no` or `false` there turns the cache off,
  as does `mftg --no-compile-cache COMMAND ...`;
- otherwise `$JAX_COMPILATION_CACHE_DIR` when set (JAX's own variable), else
  `$XDG_CACHE_HOME/mftg_jax/jax` (`~/.cache/mftg_jax/jax` when `XDG_CACHE_HOME` is unset).

Entries are keyed by JAX on the program, the JAX and XLA versions, the device and the compile
options, so a stale entry is never used; deleting the folder is always safe. A folder that
cannot be created or written only costs the speed-up: the command runs and compiles as before.
"""

import os

_OFF = ("0", "off", "no", "false")
# Programs that compile faster than this are not written (the JAX default is 1 s, which would
# leave most of a command's small programs to compile again on every call).
MIN_COMPILE_SECONDS = 0.0
#: Subfolder of the cache folder that keeps traced programs (`mftg_jax._programs`).
PROGRAMS = "programs"


def cache_folder(disabled: bool = False) -> str | None:
    """The folder the command line caches compiled programs in, or None when it is off."""
    env = os.environ.get("MFTG_COMPILE_CACHE", "").strip()
    if disabled or env.lower() in _OFF:
        return None
    if env:
        return os.path.abspath(os.path.expanduser(env))
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mftg_jax", "jax")


def enable_compile_cache(disabled: bool = False) -> str | None:
    """Point JAX's persistent compilation cache at [`cache_folder`][]; return the folder.

    Nothing is changed when the cache is off, or when this process already compiled with a
    cache folder set (JAX reads the setting once; the tests set their own)."""
    import jax

    folder = cache_folder(disabled)
    if folder is None:
        return None
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    from .._programs import enable

    # Traced programs beside the compiled ones: a later call skips tracing and lowering too.
    enable(os.path.join(folder, PROGRAMS))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return folder
