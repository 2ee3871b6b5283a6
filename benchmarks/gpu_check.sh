#!/usr/bin/env bash
# The Monte Carlo benchmark table on a GPU: >= 10^7 paths x 1000 steps, float32, with jumps.
#
#   bash benchmarks/gpu_check.sh [PATHS] [STEPS]
#
# Needs a CUDA build of jaxlib (`pip install "jax[cuda12]"`) already installed: it installs
# nothing. NumPy is timed on 10^5 paths (its rate per path-step does not depend on the count).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
PATHS=${1:-10000000}
STEPS=${2:-1000}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if ! "$PY" -c "import jax, sys; sys.exit(0 if any(d.platform == 'gpu' for d in jax.devices()) else 1)" 2>/dev/null; then
  echo "no GPU visible to JAX (install a CUDA jaxlib, e.g. pip install 'jax[cuda12]'); stopping" >&2
  exit 1
fi
"$PY" benchmarks/monte_carlo.py --paths "$PATHS" --steps "$STEPS" --numpy-paths 100000 --repeats 3 "${@:3}"
