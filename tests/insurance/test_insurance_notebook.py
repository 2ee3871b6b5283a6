"""The insurance notebook, executed top to bottom: small sizes in `make test`, full sizes
(`MFTG_FULL=1`) in the slow tests."""

from pathlib import Path

from nbclient import NotebookClient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path, full):
    nb = nbformat.read(ROOT / "notebooks" / "insurance.ipynb", as_version=4)
    with pytest.MonkeyPatch.context() as mp:
        if full:
            mp.setenv("MFTG_FULL", "1")
        else:
            mp.delenv("MFTG_FULL", raising=False)
        client = NotebookClient(
            nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
        )
        client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert [o for o in outputs if "image/png" in o.get("data", {})], "the notebook shows figures"


def test_notebook_executes(tmp_path):
    _run(tmp_path, full=False)


@pytest.mark.slow
def test_notebook_full_size(tmp_path):
    _run(tmp_path, full=True)
