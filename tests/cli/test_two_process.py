"""One ensemble as two JAX processes on this machine (loopback coordinator, gloo CPU
collectives): every statistic equals the one-process result bit for bit."""

import os
from pathlib import Path
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

WORKER = r"""
import sys
import jax
import numpy as np

out, n_proc, rank, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
jax.config.update("jax_enable_x64", True)
if n_proc > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=n_proc, process_id=rank
    )
import mftg_jax as mj
from mftg_jax.slides import scenario_game

# 5 batches: with two processes, process 1 has no batch of its own in the last round.
spec = mj.EnsembleSpec(
    n_paths=1000, n_common=2, n_steps=40, batch_size=100, dtype="float64", n_full_paths=3
)
res = mj.price.simulate(scenario_game(3), jax.random.key(7), spec)
arrays = {
    k: np.asarray(getattr(res, k))
    for k in res.__dataclass_fields__
    if k != "run"
}
np.savez(
    f"{out}/rank{rank}.npz",
    **arrays,
    n_batches=res.run.n_paths // 2 // res.run.batch_size,
    n_processes=jax.process_count(),
)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp: Path, n_proc: int, rank: int, port: int, name: str):
    script = tmp / "worker.py"
    script.write_text(WORKER)
    folder = tmp / name
    folder.mkdir(exist_ok=True)
    log = open(folder / f"rank{rank}.log", "wb")
    env = dict(
        os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder), str(n_proc), str(rank), str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return proc, log, folder


@pytest.mark.slow  # three processes compile the simulation (~1 min on a busy machine)
def test_two_processes_equal_one_bit_for_bit(tmp_path):
    port = _free_port()
    runs = [_launch(tmp_path, 1, 0, port, "one")]
    runs += [_launch(tmp_path, 2, r, port, "two") for r in (0, 1)]
    try:
        for proc, log, folder in runs:
            rc = proc.wait(600)
            log.close()
            assert rc == 0, next(folder.glob("*.log")).read_text()[-3000:]
    finally:
        for proc, *_ in runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    with np.load(tmp_path / "one" / "rank0.npz") as z:
        one = {k: z[k] for k in z.files}
    assert int(one["n_batches"]) == 5 and int(one["n_processes"]) == 1
    for rank in (0, 1):
        with np.load(tmp_path / "two" / f"rank{rank}.npz") as z:
            two = {k: z[k] for k in z.files}
        assert one.keys() == two.keys() and int(two["n_processes"]) == 2
        for k in set(one) - {"n_processes"}:
            assert one[k].dtype == two[k].dtype and one[k].shape == two[k].shape, k
            assert one[k].tobytes() == two[k].tobytes(), k
