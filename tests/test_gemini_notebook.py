"""notebooks/gemini_context_cache.ipynb runs the LangChain flow against the fake Gemini API.

(``tests/test_notebooks.py`` runs it too, for errors; this checks what it shows.)
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "gemini_context_cache.ipynb"


def test_notebook_shows_one_create_and_a_recreation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    text = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "'creates': 1, 'reuses': 1, 'inline_calls': 0" in text
    assert "estimated saving: " in text
    assert "recreations: 1" in text
    assert "released: True" in text
