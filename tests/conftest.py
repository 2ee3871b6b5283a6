import os
from pathlib import Path

# Compiled programs are cached on disk and shared by every test process (the pytest-xdist
# workers, the CLI subprocesses and the notebook kernels inherit these variables), so a program
# compiles once per run, and a second `make test` skips most compilation. Delete
# `.cache/jax-tests` (or set JAX_COMPILATION_CACHE_DIR) to change that.
_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_ROOT / ".cache" / "jax-tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import jax  # noqa: E402

# Set again in case a plugin imported JAX before this file was read.
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update(
    "jax_persistent_cache_min_compile_time_secs",
    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)
jax.config.update(
    "jax_persistent_cache_min_entry_size_bytes",
    int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]),
)
# Numerics are checked to 1e-6 and tighter: tests run in float64.
jax.config.update("jax_enable_x64", True)
# Silent broadcasting between ranks hides shape bugs: make it an error in the tests.
jax.config.update("jax_numpy_rank_promotion", "raise")
