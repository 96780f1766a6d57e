"""Notebook output hygiene: which outputs may be stored, and a scrubber that drops the others.

The rule (one function, :func:`classify_output`, used by the run store and by the JupyterLab pre-save hook):

=====================================================  ========================================================
output                                                 verdict
=====================================================  ========================================================
a display carrying a sandbox marker                    kept: a vault-minted result, a dummy frame or the
(:data:`~sandbox._private.kernel.mime.MARKER_MIMES`)          budget display (see :mod:`sandbox._private.kernel.mime`)
an error (name, message, traceback)                    kept: a reviewer must see why a run failed
stream or ``text/plain`` / ``text/markdown`` text      kept, unless it looks like a table dump (below)
``text/html``                                          kept, unless it holds a ``<table>`` or its text looks
                                                       like a table dump
images, JSON, widgets and any other MIME type          dropped: an unmarked plot or payload may show rows
=====================================================  ========================================================

Text "looks like a table dump" when it has a pandas or polars frame footer (``[5 rows x 3 columns]``,
``shape: (5, 3)``, a Series' ``dtype:`` line), a 2-D array print, a frame header right-aligned over a row
with an index in front (even a single row), or three or more consecutive lines whose tokens line up in
columns, the way every frame repr does. The rule errs towards dropping: a dropped output is
replaced by a one-line placeholder that says why and how to keep it (display the sandbox result itself).

The markers are a hygiene device against accidental leaks, not a security boundary (see ``mime``).
"""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox._private.kernel.mime import is_marked

__all__ = ["Finding", "classify_output", "looks_tabular", "find_protected_outputs", "scrub_notebook"]

_FOOTERS = (
    re.compile(r"\[\d+ rows x \d+ columns\]"),  # pandas DataFrame
    re.compile(r"^shape: \(\d+,( \d+)?\)", re.MULTILINE),  # polars DataFrame / Series
    re.compile(r"^(Name: .*, )?(dtype|Length: \d+, dtype): \w+", re.MULTILINE),  # pandas Series
    re.compile(r"array\(\[\[.*\],\s*\[.*\],\s*\[", re.DOTALL),  # numpy 2-D array with 3+ rows
)
_TOKEN = re.compile(r"\S+")
_TAG = re.compile(r"<[^>]+>")
_TEXT_MIMES = ("text/plain", "text/markdown")
_MIN_TABLE_LINES = 3
PLACEHOLDER_PREFIX = "[sandbox] output removed"


@dataclass(frozen=True)
class Finding:
    """An output that may show protected data.

    Parameters
    ----------
    cell_index : int
        Index of the cell in the notebook (from 0).
    output_index : int
        Index of the output within the cell (from 0).
    reason : str
        Why it is refused, in words a reader can act on.
    execution_count : int or None
        The number JupyterLab shows in the cell's prompt (``[7]``), if the cell ran.
    """

    cell_index: int
    output_index: int
    reason: str
    execution_count: int | None = None

    def describe(self) -> str:
        """One line for an error message, naming the cell as JupyterLab shows it: ``cell [7] (3rd cell) ...``."""
        n = self.cell_index + 1
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        where = f"{n}{suffix} cell from the top"
        prompt = f"cell [{self.execution_count}] ({where})" if self.execution_count is not None else f"the {where}"
        output = f", output {self.output_index + 1}" if self.output_index else ""
        return f"{prompt}{output}: {self.reason}"


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _aligned(prev: list[re.Match[str]], cur: list[re.Match[str]]) -> bool:
    if len(prev) != len(cur) or len(cur) < 2:
        return False
    return all(a.start() == b.start() or a.end() == b.end() for a, b in zip(prev, cur, strict=True))


def _frame_header(prev: list[re.Match[str]], cur: list[re.Match[str]]) -> bool:
    """Tell whether ``prev`` is a frame header (no index label) right-aligned over the row ``cur``."""
    if len(cur) != len(prev) + 1 or not prev:
        return False
    return all(a.end() == b.end() for a, b in zip(prev, cur[1:], strict=True))


def looks_tabular(text: str) -> bool:
    """Whether ``text`` looks like a printed table of rows (see the module docstring)."""
    if any(p.search(text) for p in _FOOTERS):
        return True
    run, prev = 1, None
    for line in text.splitlines():
        tokens = list(_TOKEN.finditer(line))
        if prev is not None and _frame_header(prev, tokens):
            return True
        run = run + 1 if prev is not None and _aligned(prev, tokens) else 1
        if run >= _MIN_TABLE_LINES:
            return True
        prev = tokens
    return False


def _classify_bundle(data: Mapping[str, Any]) -> str | None:
    if is_marked(data):
        return None
    for mime, value in data.items():
        if mime == "text/html":
            body = _text(value)
            if re.search(r"<table\b", body, re.IGNORECASE):
                return "an HTML table not marked as a sandbox result or dummy data"
            if looks_tabular(html.unescape(_TAG.sub(" ", body))):
                return "HTML text that looks like a table of rows"
        elif mime in _TEXT_MIMES:
            if looks_tabular(_text(value)):
                return "text that looks like a data frame or table of rows"
        else:
            return f"a {mime} output not marked as a sandbox result (plots and payloads may show rows)"
    return None


def classify_output(output: Mapping[str, Any]) -> str | None:
    """Return why ``output`` may show protected data, or None if it may be kept."""
    kind = output.get("output_type")
    if kind == "error":
        return None
    if kind == "stream":
        text = _text(output.get("text", ""))
        return "printed text that looks like a table of rows" if looks_tabular(text) else None
    if kind in ("display_data", "execute_result"):
        return _classify_bundle(output.get("data", {}))
    return f"an output of unknown type {kind!r}"


def find_protected_outputs(nb: Mapping[str, Any]) -> list[Finding]:
    """Every output of ``nb`` (a dict or nbformat node) that :func:`classify_output` refuses."""
    findings = []
    for ci, cell in enumerate(nb.get("cells", [])):
        count = cell.get("execution_count")
        for oi, output in enumerate(cell.get("outputs", []) or []):
            reason = classify_output(output)
            if reason is not None:
                findings.append(Finding(ci, oi, reason, count if isinstance(count, int) else None))
    return findings


def _placeholder(reason: str) -> dict[str, Any]:
    text = f"{PLACEHOLDER_PREFIX} when storing: {reason}. Display the sandbox result itself to keep it.\n"
    return {"output_type": "stream", "name": "stderr", "text": text}


def scrub_notebook(nb: Mapping[str, Any]) -> tuple[dict[str, Any], list[Finding]]:
    """Return a copy of ``nb`` with refused outputs replaced by a placeholder, and what was dropped.

    Widget state in the notebook metadata is dropped as well (it can hold any data a widget showed).
    """
    out = copy.deepcopy(dict(nb))
    findings = find_protected_outputs(out)
    by_cell: dict[int, dict[int, str]] = {}
    for f in findings:
        by_cell.setdefault(f.cell_index, {})[f.output_index] = f.reason
    for ci, reasons in by_cell.items():
        outputs = out["cells"][ci]["outputs"]
        out["cells"][ci]["outputs"] = [_placeholder(reasons[i]) if i in reasons else o for i, o in enumerate(outputs)]
    metadata = out.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("widgets", None)
    return out, findings
