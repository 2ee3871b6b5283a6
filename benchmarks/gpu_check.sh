#!/usr/bin/env bash
# Every benchmark on a GPU, at sizes for one accelerator; the Monte Carlo table at 10^7 paths x
# 1000 steps, float32, with jumps.
#
#   bash benchmarks/gpu_check.sh [PATHS] [STEPS]        # JSON copies in $OUT (default out/gpu)
#
# Needs a CUDA build of jaxlib already installed (`pip install -U "jax[cuda12]"` or
# `"jax[cuda13]"`, matching the driver that `nvidia-smi` reports): it installs nothing and
# stops unless JAX sees a GPU. NumPy and SciPy baselines run on the host CPU, on subsets (their
# rates per path-step or per solve do not depend on the count). A benchmark that fails is
# reported and the others still run; the exit status is then 1.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
PATHS=${1:-10000000}
STEPS=${2:-1000}
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if ! "$PY" -c "import jax, sys; sys.exit(0 if any(d.platform == 'gpu' for d in jax.devices()) else 1)" 2>/dev/null; then
  echo "no GPU visible to JAX (install a CUDA jaxlib, e.g. pip install -U 'jax[cuda12]'); stopping" >&2
  exit 1
fi
status=0
bench() {
  local name=$1
  shift
  echo "== $name: $*"
  if "$PY" "$@" --json > "$OUT/$name.json"; then
    "$PY" -c "import json, sys; d = json.load(open(sys.argv[1])); print(json.dumps(d, indent=1)[:4000])" "$OUT/$name.json"
  else
    echo "$name failed" >&2
    status=1
  fi
}
bench monte_carlo benchmarks/monte_carlo.py --paths "$PATHS" --steps "$STEPS" --numpy-paths 100000 --repeats 3
# The fraction of the memory-bandwidth bound: each path-step reads and writes at least the
# float32 price of its path (8 bytes) when the state lives in device memory between steps.
# BANDWIDTH_GBS overrides the peak bandwidth looked up from the GPU's name.
"$PY" - "$OUT/monte_carlo.json" <<'PYEOF' || status=1
import json, os, subprocess, sys
d = json.load(open(sys.argv[1]))
name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                      capture_output=True, text=True).stdout.strip() if os.path.exists("/usr/bin/nvidia-smi") else ""
peaks = {"H200": 4800, "H100 NVL": 3900, "H100 PCIe": 2000, "H100": 3350, "A100": 2039, "L4": 300}
gbs = float(os.environ.get("BANDWIDTH_GBS") or next((v for k, v in peaks.items() if k in name), 0))
rate = d["engine_f32_path_steps_per_s"]
print(f"engine float32: {rate:.3g} path-steps/s on {name or 'this GPU'}")
if gbs:
    bound = gbs * 1e9 / 8
    print(f"memory-bandwidth bound at {gbs:g} GB/s and 8 bytes per path-step: {bound:.3g} path-steps/s; "
          f"the engine reaches {rate / bound:.3f} of it")
else:
    print("peak bandwidth unknown for this GPU: set BANDWIDTH_GBS")
PYEOF
bench riccati benchmarks/riccati.py --games 100000 --scipy-games 300
bench riccati_stiff benchmarks/riccati_stiff.py
bench calibration benchmarks/calibration.py
bench memory benchmarks/memory.py --paths "$PATHS" --steps "$STEPS"
exit $status
