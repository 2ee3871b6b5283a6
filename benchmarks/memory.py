"""Memory of a streamed Monte Carlo run: peak resident memory against the batch size.

    python benchmarks/memory.py [--paths 10000000] [--steps 1000] [--batches 10000,100000,1000000]
                                [--quick] [--json]

Each batch size runs `mftg simulate --scenario 3` (equilibrium feedback, noise and jumps,
float32, statistics streamed over batches, no checkpoint) in its own process and reports that
process's peak resident set size (`getrusage`), its path-steps per second and the mean price
at t1 with its standard error, which must agree across batch sizes (the same paths whatever
the batching). The peak should grow with the batch, not with the number of paths.
"""

import argparse
import json
import os
import subprocess
import sys

_CHILD = r"""
import json, resource, sys, time
import mftg_jax.cli as cli
t = time.perf_counter()
code = cli.main(sys.argv[1:])
wall = time.perf_counter() - t
print(json.dumps({"code": code, "wall": wall,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def run(paths: int, steps: int, batch: int) -> dict:
    argv = ["simulate", "--scenario", "3", "--paths", str(paths), "--steps", str(steps)]
    argv += ["--batch", str(batch), "--no-checkpoint", "--json", "--seed", "0"]
    env = dict(os.environ, MFTG_COMPILE_CACHE="0")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, env=env
    )
    if out.returncode != 0:
        raise SystemExit(f"batch {batch}: {out.stderr.strip()[-400:]}")
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    head = json.loads(lines[-1])
    report = json.loads("\n".join(lines[:-1]))
    return {
        "batch": batch,
        "peak_rss_mb": head["maxrss_kb"] / 1024,
        "wall_s": head["wall"],
        "path_steps_per_second": report["path_steps_per_second"],
        "mean_p_t1": report["mean_p_t1"],
        "stderr_mean_p_t1": report["stderr_mean_p_t1"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=10_000_000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batches", default="10000,100000,1000000")
    ap.add_argument("--quick", action="store_true", help="10^6 paths x 100 steps")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    paths, steps = (1_000_000, 100) if args.quick else (args.paths, args.steps)
    rows = [run(paths, steps, int(b)) for b in args.batches.split(",")]
    if args.json:
        print(json.dumps({"paths": paths, "steps": steps, "rows": rows}))
        return
    print(f"Scenario 3, {paths} paths x {steps} steps, float32, streamed statistics")
    print(
        f"{'batch':>10s} {'peak RSS MB':>12s} {'wall s':>8s} {'path-steps/s':>13s} {'E p(t1)':>10s}"
    )
    for r in rows:
        print(
            f"{r['batch']:>10d} {r['peak_rss_mb']:>12.0f} {r['wall_s']:>8.1f} "
            f"{r['path_steps_per_second']:>13.3g} {r['mean_p_t1']:>10.5f} "
            f"+- {r['stderr_mean_p_t1']:.2g}"
        )


if __name__ == "__main__":
    main()
