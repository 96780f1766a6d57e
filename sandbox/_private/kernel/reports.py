"""The fairness reports of a release request, written for its author when ``ws.release`` makes the request.

For every fairness audit among the released items, :func:`write_request_reports` writes the audit's report in
Dutch and in English to ``workspace/reports/<request id>/<audit id>_fairness_report_<lang>.html``, headed by what
it belongs to (:class:`sandbox.fairness.ReportMetadata`: request, model, target, features, dataset version, author
and the sha256 of the policy the vault judges under) and with the public schema's labels of the protected
attributes and their groups in the report's language (Dutch category names in the Dutch report).

Everything here is post-processing of what the analyst already holds: the DP audit the vault returned (its
``values``), the model's fit query, the request's public view, the public schema and the vault's ``/v1/health``.
No reviewer finding and no exact figure enters a report. The files are the author's own copy; the reviewers read
the same reports rendered by the vault (``sandbox.Reviewer.report``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sandbox._private.shared.errors import OutputPathError
from sandbox._private.shared.schema import TableSchema

__all__ = ["REPORT_LANGS", "request_reports", "write_request_reports"]

#: Languages of the reports written at submission.
REPORT_LANGS = ("nl", "en")
SchemaOf = Callable[[str], "TableSchema | None"]


def _labels(schema: TableSchema | None, attributes: Sequence[str], lang: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``(category labels per attribute, attribute labels)`` from the schema, in ``lang``."""
    if schema is None:
        return {}, {}
    columns = {c.name: c for c in schema.columns}
    cats: dict[str, dict[str, str]] = {}
    names: dict[str, str] = {}
    for a in attributes:
        col = columns.get(a)
        if col is None:
            continue
        label = col.label_nl if lang == "nl" else col.label_en
        if label and label != a:
            names[a] = label
        if col.categories:
            cats[a] = {str(code): col.category_label(str(code), lang) for code in col.categories}
    return cats, names


def _metadata(view: Mapping[str, Any], audit: Any, model: Any, policy_sha256: str) -> dict[str, Any]:
    values = audit.values
    query = getattr(model, "query", None) or {}
    spec = query.get("spec") or {}
    features = [str(f) for f in spec.get("features") or values.get("model_features") or ()]
    estimator = str(spec.get("estimator") or "")
    return {
        "request": f"{view.get('id', '')} · {view.get('title', '')}",
        "model": f"{audit.model_id} · {estimator}".strip(" ·"),
        "target": str(spec.get("target") or ""),
        "features": features,
        "dataset": str(values.get("dataset") or audit.dataset),
        "dataset_version": str(values.get("version") or audit.version),
        "author": str(view.get("author", "")),
        "policy_sha256": policy_sha256,
    }


def request_reports(
    view: Mapping[str, Any], items: Sequence[Any], schema_of: SchemaOf, policy_sha256: str
) -> dict[str, str]:
    """Render the reports of every audit among ``items``: ``{file name: page}`` (Dutch and English each).

    Parameters
    ----------
    view : mapping
        The request as the vault returned it (``id``, ``title``, ``author``).
    items : sequence
        The released items as the kernel holds them (audits are ``AuditResult``, models ``FittedModel``).
    schema_of : callable
        Public schema of a dataset name (``None`` when there is none).
    policy_sha256 : str
        The vault's policy (``/v1/health``).
    """
    by_id = {str(getattr(i, "id", "")): i for i in items}
    pages: dict[str, str] = {}
    for audit in items:
        if getattr(audit, "kind", None) != "audit":
            continue
        model = by_id.get(str(audit.model_id))
        metadata = _metadata(view, audit, model, policy_sha256)
        attributes = sorted({str(a) for facet in audit.values.get("facets") or () for a in facet})
        schema = schema_of(metadata["dataset"])
        for lang in REPORT_LANGS:
            labels, names = _labels(schema, attributes, lang)
            page = audit.audit.to_html(lang, metadata=metadata, labels=labels, attribute_labels=names)
            pages[f"{audit.id}_fairness_report_{lang}.html"] = page
    return pages


def write_request_reports(folder: Path, pages: Mapping[str, str]) -> list[Path]:
    """Write ``pages`` into ``folder`` (created); each file is written whole or not at all. Return the paths.

    Raises
    ------
    OutputPathError
        The folder cannot be created or written, naming it.
    """
    if not pages:
        return []
    out = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, page in pages.items():
            target = folder / name
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(page)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            out.append(target)
    except OSError as exc:
        raise OutputPathError(
            f"cannot write the fairness reports to {str(folder)!r}: {exc.strerror}; make the workspace's reports "
            "folder writable (the request itself was made)."
        ) from None
    return out
