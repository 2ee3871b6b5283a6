import os
from pathlib import Path

# Compiled programs are cached on disk, so a second `make test` skips most compilation. Each
# pytest-xdist worker keeps its own folder, which the CLI subprocesses and notebook kernels it
# starts inherit: JAX writes an entry in place, without a lock, and a worker reading an entry
# while the other is still writing it would read a truncated program. Delete
# `.cache/jax-tests` (or set JAX_COMPILATION_CACHE_DIR) to start afresh.
_ROOT = Path(__file__).resolve().parent.parent
# The workers inherit the controller's environment: the base folder travels in its own variable.
_BASE = os.environ.setdefault(
    "MFTG_TEST_CACHE_BASE",
    os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(_ROOT / ".cache" / "jax-tests"),
)
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(
    _BASE, os.environ.get("PYTEST_XDIST_WORKER", "main")
)
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

# `make test` hands whole files to two workers (`--dist loadfile --no-loadscope-reorder`), in
# collection order. The longest files (each a minute or more on 2 cores, most of it
# compilation) go first, so that none is started last with the other worker left idle.
_LONGEST_FIRST = (
    "tests/calibration/test_calibrate.py",
    "tests/tracking/test_tracking.py",
    "tests/frequency/test_frequency_control.py",
    "tests/auction/test_auction_equilibrium.py",
    "tests/core/test_reliability_library.py",
    "tests/tracking/test_tracking_continuation.py",
    "tests/frequency/test_frequency_dynamics.py",
    "tests/price/test_equilibrium.py",
    "tests/price/test_ensemble.py",
    "tests/price/test_riccati.py",
    "tests/insurance/test_insurance_solution.py",
    "tests/lq/test_vector_lq.py",
    "tests/test_notebooks.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    # Stable: the other files, and the tests within each file, keep their order.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))
