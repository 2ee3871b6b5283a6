"""The notebooks as pages of the documentation site, with their outputs.

A mkdocs hook (`hooks:` in mkdocs.yml): every `notebooks/NAME.ipynb` becomes the page
`notebooks/NAME.md`: Markdown cells as they are, code cells as Python blocks, text outputs as
plain blocks and figures as PNG files beside the page. The outputs come from the executed copy
`out/notebooks/NAME.ipynb` when it exists (`make docs` writes it by running this file:
`python docs/hooks/notebooks.py out/notebooks`, small sizes unless `MFTG_FULL=1`); otherwise
the stored notebook is shown, which holds no outputs, with a note saying so.
"""

import base64
from pathlib import Path
import sys

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "out" / "notebooks"


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _fence(text: str, lang: str = "") -> str:
    ticks = "```"
    while ticks in text:
        ticks += "`"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}\n"


def notebook_to_markdown(nb: dict, name: str) -> tuple[str, dict[str, bytes]]:
    """The Markdown of notebook `nb` (its JSON as a dict) and the figures it shows
    (`{file name: PNG bytes}`, linked from the Markdown by those names)."""
    parts, images = [], {}
    executed = any(c.get("outputs") for c in nb.get("cells", []) if c["cell_type"] == "code")
    if not executed:
        parts.append(
            "!!! note\n    This page shows the notebook without its outputs: run it, or build "
            "the site with `make docs`, which executes the notebooks first.\n"
        )
    for cell in nb.get("cells", []):
        source = _text(cell.get("source", ""))
        if cell["cell_type"] == "markdown":
            parts.append(source.rstrip() + "\n")
        elif cell["cell_type"] == "code":
            if source.strip():
                parts.append(_fence(source, "python"))
            for out in cell.get("outputs", []):
                kind = out.get("output_type")
                if kind == "stream":
                    parts.append(_fence(_text(out.get("text", ""))))
                elif kind in ("execute_result", "display_data"):
                    data = out.get("data", {})
                    if "image/png" in data:
                        fname = f"{name}_{len(images) + 1}.png"
                        images[fname] = base64.b64decode(_text(data["image/png"]))
                        parts.append(f"![figure {len(images)}]({fname})\n")
                    elif "text/plain" in data:
                        parts.append(_fence(_text(data["text/plain"])))
                elif kind == "error":
                    parts.append(_fence(f"{out.get('ename')}: {out.get('evalue')}"))
    return "\n".join(parts), images


def _pages(folder: Path) -> dict[str, tuple[str, dict[str, bytes]]]:
    import json

    pages = {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        executed = folder / path.name
        source = executed if executed.is_file() else path
        nb = json.loads(source.read_text())
        pages[path.stem] = notebook_to_markdown(nb, path.stem)
    return pages


def on_files(files, config):
    """mkdocs hook: add a page (and its figures) per notebook."""
    from mkdocs.structure.files import File

    for name, (text, images) in _pages(EXECUTED).items():
        files.append(File.generated(config, f"notebooks/{name}.md", content=text))
        for fname, png in images.items():
            files.append(File.generated(config, f"notebooks/{fname}", content=png))
    return files


def execute(folder: Path, timeout: int = 1200) -> None:
    """Run every notebook top to bottom and save the executed copies into `folder`."""
    from nbclient import NotebookClient
    import nbformat

    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        print(f"executing {path.name}", file=sys.stderr, flush=True)
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(folder)}},
        )
        client.execute()
        tmp = folder / f".{path.name}.tmp"
        nbformat.write(nb, tmp)
        tmp.replace(folder / path.name)


if __name__ == "__main__":
    execute(Path(sys.argv[1]) if len(sys.argv) > 1 else EXECUTED)
