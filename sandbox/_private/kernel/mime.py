"""MIME types and output markers shared by the client's rich displays and the notebook scrubber.

A notebook output is *kept* when a run is stored (and may be saved from JupyterLab) only if it is plain
narrative text or if it carries one of the markers below. The client adds the markers to the MIME bundles of
the objects it displays, so the scrubber (:mod:`sandbox._private.kernel.studies.scrub`) can tell a DP result or a
dummy frame from a table that might hold protected rows.

The markers are a hygiene device against accidental leaks (a forgotten ``df.head()`` of real rows), not a
security boundary: the kernel never holds protected rows in the first place (DESIGN: the boundary).

How a display gets marked
-------------------------
- A DP result, fitted model, fairness audit or release request returns from ``_repr_mimebundle_`` a bundle
  with the key :data:`SANDBOX_RESULT_MIME` whose value is a small JSON object (at least ``{"kind": ...,
  "id": ...}``), next to its ``text/html`` and ``text/plain``: use :func:`result_bundle`. Objects that only
  have ``_repr_html_`` can instead define ``_sandbox_payload_()`` returning that JSON object; the IPython
  extension (``%load_ext sandbox``) then adds the marker. ``DPResult`` and ``FittedModel`` are marked by the
  extension by type.
- A dummy frame from ``dataset.dummy(n)`` carries ``frame.attrs[DUMMY_ATTR] = {"dataset": name}``; the
  extension displays it with the key :data:`SANDBOX_DUMMY_MIME` (see :func:`dummy_bundle`).
- A frame built from a vault result (``DPResult.to_pandas()``, ``AuditResult.by_group``/``disparities``) carries
  ``frame.attrs[RESULT_ATTR]``; the extension displays it with :data:`SANDBOX_RESULT_MIME`.
- A public schema is displayed by the extension with :data:`SANDBOX_PUBLIC_MIME`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "SANDBOX_RESULT_MIME",
    "SANDBOX_DUMMY_MIME",
    "SANDBOX_BUDGET_MIME",
    "SANDBOX_PUBLIC_MIME",
    "MARKER_MIMES",
    "DUMMY_ATTR",
    "RESULT_ATTR",
    "result_bundle",
    "dummy_bundle",
    "is_marked",
]

#: Key of a MIME bundle produced by a vault-minted result (DP statistic, model, audit, release request).
SANDBOX_RESULT_MIME = "application/vnd.sandbox.result+json"
#: Key of a MIME bundle produced by a dummy frame (generated from the public schema, never from rows).
SANDBOX_DUMMY_MIME = "application/vnd.sandbox.dummy+json"
#: Key of the budget display shown by the IPython extension after a cell that spent budget.
SANDBOX_BUDGET_MIME = "application/vnd.sandbox.budget+json"
#: Key of a display of public metadata (a dataset's public schema).
SANDBOX_PUBLIC_MIME = "application/vnd.sandbox.public+json"
#: Every marker that makes an output safe to keep.
MARKER_MIMES: frozenset[str] = frozenset(
    {SANDBOX_RESULT_MIME, SANDBOX_DUMMY_MIME, SANDBOX_BUDGET_MIME, SANDBOX_PUBLIC_MIME}
)
#: Key in ``DataFrame.attrs`` with which the client tags a dummy frame (``{"dataset": name}``); pandas keeps
#: ``attrs`` through ``head()``, selections and copies, and the IPython extension displays tagged frames
#: with :data:`SANDBOX_DUMMY_MIME`.
DUMMY_ATTR = "sandbox_dummy"
#: Key in ``DataFrame.attrs`` of a frame built from a vault result (``DPResult.to_pandas()``, an audit's
#: ``by_group`` / ``disparities``): ``{"kind", "id", "sha256", "dataset", "epsilon"}``; displayed with
#: :data:`SANDBOX_RESULT_MIME`.
RESULT_ATTR = "sandbox_result"


def _jsonable(payload: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(payload)
    json.dumps(out)  # raise now, in the kernel, rather than when the notebook is written
    return out


def result_bundle(payload: Mapping[str, Any], *, html: str, text: str) -> dict[str, Any]:
    """Build the MIME bundle of a vault-minted result.

    Parameters
    ----------
    payload : mapping
        JSON-serialisable description; should hold at least ``kind`` (``"statistic"``, ``"model"``,
        ``"audit"``, ``"release"``) and the vault's result ``id``.
    html, text : str
        The rich and the plain rendering.

    Returns
    -------
    dict
        A bundle for ``_repr_mimebundle_``.
    """
    return {SANDBOX_RESULT_MIME: _jsonable(payload), "text/html": html, "text/plain": text}


def dummy_bundle(frame: Any, *, dataset: str) -> dict[str, Any]:
    """Build the MIME bundle of a dummy frame (pandas or polars), marked so the scrubber keeps it.

    Parameters
    ----------
    frame : DataFrame
        The dummy frame; its own ``_repr_html_`` and ``repr`` are used.
    dataset : str
        Name of the dataset whose public schema generated it.

    Returns
    -------
    dict
        A bundle for ``_repr_mimebundle_``.
    """
    html_fn = getattr(frame, "_repr_html_", None)
    html = html_fn() if callable(html_fn) else None
    bundle: dict[str, Any] = {
        SANDBOX_DUMMY_MIME: {"dataset": dataset, "rows": len(frame)},
        "text/plain": "dummy data (from the public schema, not real rows)\n" + repr(frame),
    }
    if html:
        bundle["text/html"] = "<p><em>dummy data (generated from the public schema, not real rows)</em></p>" + html
    return bundle


def is_marked(data: Mapping[str, Any]) -> bool:
    """Whether an output's MIME bundle carries a sandbox marker."""
    return any(key in data for key in MARKER_MIMES)
