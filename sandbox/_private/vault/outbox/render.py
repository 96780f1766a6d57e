"""Rendering released items as files: tables as CSV, Parquet and HTML; models and audits as JSON.

Every value is escaped in HTML; CSV uses Unix line ends; JSON has sorted keys, so equal content gives equal
files (and equal content-addressed names in the outbox).
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .files import ReleaseFile

__all__ = ["table_files", "table_html", "json_file", "html_file"]


def _csv_cell(value: Any) -> Any:
    return "" if value is None else value


def table_files(name: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[ReleaseFile]:
    """Render a table (public rows) as ``<name>.csv`` and ``<name>.parquet``."""
    import pyarrow as pa  # imported here: the vault's startup recovery should not pay for pyarrow
    import pyarrow.parquet as pq

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    table = pa.table({c: [row.get(c) for row in rows] for c in columns})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return [ReleaseFile(f"{name}.csv", buf.getvalue().encode()), ReleaseFile(f"{name}.parquet", sink.getvalue())]


def table_html(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Render a table as a small self-contained HTML page (every value escaped)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(_csv_cell(r.get(c))))}</td>" for c in columns) + "</tr>" for r in rows
    )
    t = html.escape(title)
    return (
        f'<!doctype html><html lang="nl"><head><meta charset="utf-8"><title>{t}</title></head>'
        f"<body><h1>{t}</h1><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></body></html>"
    )


def json_file(name: str, value: Any) -> ReleaseFile:
    """Make a JSON file (sorted keys, indented) from a JSON-ready value."""
    return ReleaseFile(name, (json.dumps(value, sort_keys=True, indent=2, allow_nan=False) + "\n").encode())


def html_file(name: str, page: str) -> ReleaseFile:
    """Make an HTML file from the text of a page."""
    return ReleaseFile(name, page.encode())
