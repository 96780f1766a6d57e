"""Rich, marked displays for the notebook: DP results, models, public schemas and dummy frames.

``%load_ext sandbox`` registers these with IPython's mime-bundle formatter. Each display carries its marker
(:mod:`sandbox._private.kernel.mime`), so the run store and the JupyterLab pre-save hook keep it:

- ``DPResult``, ``FittedModel``, ``AuditResult``, ``ReleaseRequest`` (and any object with
  ``_sandbox_payload_()``): their own HTML plus :data:`~sandbox._private.kernel.mime.SANDBOX_RESULT_MIME` with kind,
  id and sha256;
- ``TableSchema``: a table of columns, kinds, public bounds or categories, with
  :data:`~sandbox._private.kernel.mime.SANDBOX_PUBLIC_MIME`;
- a ``pandas.DataFrame`` tagged ``attrs[DUMMY_ATTR]`` by the client: :func:`~sandbox._private.kernel.mime.dummy_bundle`;
  one tagged ``attrs[RESULT_ATTR]`` (a vault result's table): the result marker.
  Untagged frames keep IPython's default display (and are refused when storing or saving).
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from sandbox._private.kernel.mime import DUMMY_ATTR, RESULT_ATTR, SANDBOX_PUBLIC_MIME, dummy_bundle, result_bundle
from sandbox._private.shared.schema import TableSchema

__all__ = [
    "register_formatters",
    "unregister_formatters",
    "result_display",
    "schema_display",
    "frame_display",
    "errorbar_plot",
    "ResultPlot",
]

_RESULT_TYPES = (
    ("sandbox._private.kernel.results", "DPResult"),
    ("sandbox._private.kernel.fitted", "FittedModel"),
    ("sandbox._private.kernel.budget", "Budget"),
    ("sandbox._private.kernel.results", "AuditResult"),
    ("sandbox._private.kernel.release", "ReleaseRequest"),
)


def _payload(obj: Any) -> dict[str, Any]:
    custom = getattr(obj, "_sandbox_payload_", None)
    if callable(custom):
        return dict(custom())
    return {
        "kind": str(getattr(obj, "kind", type(obj).__name__)),
        "id": str(getattr(obj, "id", "")),
        "sha256": str(getattr(obj, "sha256", "")),
        "dataset": str(getattr(obj, "dataset", "")),
        "epsilon": float(getattr(obj, "epsilon", 0.0)),
    }


def result_display(obj: Any, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """Mime bundle of a vault-minted result: its own HTML and text, with the result marker."""
    html_fn = getattr(obj, "_repr_html_", None)
    body = html_fn() if callable(html_fn) else f"<pre>{html.escape(repr(obj))}</pre>"
    return result_bundle(_payload(obj), html=body, text=repr(obj))


def _bounds(col: Any) -> str:
    if col.categories:
        return ", ".join(col.categories)
    if col.lower is not None:
        return f"[{col.lower:g}, {col.upper:g}]"
    return ""


def schema_display(schema: TableSchema, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """Mime bundle of a public schema: one row per column, marked as public metadata."""
    rows = "".join(
        f"<tr><td><code>{html.escape(c.name)}</code></td><td>{c.kind}</td><td>{html.escape(_bounds(c))}</td>"
        f"<td>{html.escape(c.label_nl)}</td><td>{html.escape(c.label_en)}</td></tr>"
        for c in schema.columns
    )
    head = (
        f"<p><b>{html.escape(schema.name)}</b> ({html.escape(schema.label_nl)}): public schema, privacy unit "
        f"{schema.privacy_unit}, at most {schema.max_rows_per_unit} row(s) per unit</p>"
    )
    table = (
        "<table><thead><tr><th>column</th><th>kind</th><th>public bounds / categories</th><th>label (nl)</th>"
        f"<th>label (en)</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    text = f"TableSchema {schema.name}: " + ", ".join(f"{c.name} ({c.kind})" for c in schema.columns)
    payload = {"schema": schema.name, "columns": len(schema.columns), "privacy_unit": schema.privacy_unit}
    return {SANDBOX_PUBLIC_MIME: payload, "text/html": head + table, "text/plain": text}


def frame_display(frame: Any, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
    """Mime bundle of a frame the client tagged (dummy rows, or a vault result's table); None for other frames."""
    attrs = getattr(frame, "attrs", {})
    result = attrs.get(RESULT_ATTR)
    if isinstance(result, dict):
        html_fn = getattr(frame, "_repr_html_", None)
        body = html_fn() if callable(html_fn) else f"<pre>{html.escape(repr(frame))}</pre>"
        note = f"<p><em>from vault result <code>{html.escape(str(result.get('id', '?')))}</code> (DP)</em></p>"
        return result_bundle({**result, "frame": True}, html=note + (body or ""), text=repr(frame))
    tag = attrs.get(DUMMY_ATTR)
    if not isinstance(tag, dict):
        return None
    return dummy_bundle(frame, dataset=str(tag.get("dataset", "?")))


def register_formatters(ipython: Any) -> None:
    """Register the displays above with ``ipython``'s mime-bundle formatter."""
    formatter = ipython.display_formatter.mimebundle_formatter
    for module, name in _RESULT_TYPES:
        formatter.for_type_by_name(module, name, result_display)
    formatter.for_type(TableSchema, schema_display)
    formatter.for_type(pd.DataFrame, frame_display)


def unregister_formatters(ipython: Any) -> None:
    """Remove the displays registered by :func:`register_formatters`."""
    formatter = ipython.display_formatter.mimebundle_formatter
    for module, name in _RESULT_TYPES:
        formatter.deferred_printers.pop((module, name), None)
        formatter.type_printers = {
            t: f for t, f in formatter.type_printers.items() if (t.__module__, t.__name__) != (module, name)
        }
    formatter.type_printers.pop(TableSchema, None)
    formatter.type_printers.pop(pd.DataFrame, None)


class ResultPlot:
    """A chart drawn from a DP result's public values only, displayed as PNG with the result marker.

    Build it with :func:`errorbar_plot`; it shows each group's DP value with its 95% error bar.
    """

    def __init__(self, png: bytes, payload: dict[str, Any], title: str) -> None:
        self.png = png
        self.payload = payload
        self.title = title

    def __repr__(self) -> str:
        return f"ResultPlot({self.title})"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        import base64

        bundle = result_bundle({**self.payload, "figure": "errorbar"}, html="", text=repr(self))
        del bundle["text/html"]
        bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        return bundle


def errorbar_plot(result: Any, *, title: str | None = None, xlabel: str | None = None) -> ResultPlot:
    """Plot a grouped DP result (``DPResult``) as points with 95% error bars, one row per group.

    Parameters
    ----------
    result : DPResult
        A grouped count, sum, mean, variance or quantile; its ``ci95`` (or ``error95``) gives the bars.
    title, xlabel : str, optional
        Chart title and value-axis label (default: the query).

    Returns
    -------
    ResultPlot
        Displays as a PNG that keeps the result's marker, so it survives storing and saving.
    """
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    frame = result.to_pandas()
    keys = [c for c in frame.columns if c not in ("value", "noise_scale", "ci95", "ci95_low", "ci95_high", "error95")]
    labels = frame[keys].astype(str).agg(" / ".join, axis=1) if keys else frame.index.astype(str)
    err = frame["ci95"] if "ci95" in frame else frame.get("error95")
    if {"ci95_low", "ci95_high"} <= set(frame.columns) and frame[["ci95_low", "ci95_high"]].notna().all().all():
        # asymmetric intervals; a noisy count may lie below its interval's lower end of 0
        err = [(frame["value"] - frame["ci95_low"]).clip(lower=0), (frame["ci95_high"] - frame["value"]).clip(lower=0)]
    query = dict(result.query)
    title = title or f"{query.get('kind')}({query.get('column') or ''}) on {result.dataset}, ε={result.epsilon:g}"
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(frame) + 1.2))
    ax.errorbar(frame["value"], range(len(frame)), xerr=err, fmt="o", capsize=3)
    ax.set_yticks(range(len(frame)), list(labels))
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel or "DP value (bars: 95% error)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return ResultPlot(buf.getvalue(), _payload(result), title)
