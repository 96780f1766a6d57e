"""The Algoritmeregister draft of a model release, built by the gate and written to the outbox with the model.

Every model item of a release request gets a draft entry under publication standard 1.0
(:mod:`sandbox._private.shared.algoritmeregister`). The gate builds it when the request is created, from what the
analyst sent (title, purpose, justification and the ``register`` author fields), the model's fit query (its
spec, dataset, version and ε), the **released DP audit** of that model (its ``public_json``, the values the analyst
already holds), the public schema's Dutch labels and the policy in force. Nothing comes from the reviewer-only
exact findings or from any row, so the draft and its flags are public: they are the same on a dataset and on that
dataset with one household added.

A draft that breaks the standard's limits (an author text that no longer fits beside the sandbox's, a title
over the 100 characters of ``name``) refuses the request with :class:`RegisterFieldError` (HTTP 422) before
anything is charged or stored. A draft that meets the limits but leaves fields unfilled goes ahead: its unfilled
and incomplete fields are listed in the gate report's ``register`` section as warnings, and the pages in the
outbox mark them "nog in te vullen". At release, :func:`register_files` rebuilds the draft from the stored request
(the same inputs give the same draft) and renders ``algoritmeregister.json`` (the standard's field names),
``algoritmeregister.html`` (Dutch) and ``algoritmeregister_en.html``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sandbox._private.shared.algoritmeregister import (
    RegisterDraft,
    check,
    check_author_fields,
    draft_from_release,
    to_html,
    to_json,
)
from sandbox._private.shared.errors import QueryError, RegisterFieldError, ReleaseError
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.schema import TableSchema
from sandbox._private.vault.ledger.ledger import ChargeRecord
from sandbox._private.vault.outbox.files import ReleaseFile

from .dp_sdc import parsed

__all__ = ["REGISTER_FORMAT", "model_drafts", "register_report", "register_files", "author_fields_of"]

#: Format of the ``register`` section of a gate report.
REGISTER_FORMAT = "sandbox.register/1"
SchemaOf = Callable[[ChargeRecord], "TableSchema | None"]


def _audits_by_model(records: Sequence[ChargeRecord]) -> dict[str, ChargeRecord]:
    out = {}
    for r in records:
        if r.kind == "audit":
            model_id = parsed(r.public_json).get("model_id") or parsed(r.query_json).get("model_id")
            if isinstance(model_id, str):
                out[model_id] = r
    return out


def _labels(schema: TableSchema | None) -> dict[str, str]:
    return {} if schema is None else {c.name: c.label_nl for c in schema.columns if c.label_nl}


def _draft(
    model: ChargeRecord,
    audit: ChargeRecord | None,
    request: Mapping[str, Any],
    policy: Policy,
    author_fields: Mapping[str, Any] | None,
    schema: TableSchema | None,
) -> RegisterDraft:
    spec = {**parsed(model.query_json), "version": str(model.version)}
    values = None if audit is None else dict(parsed(audit.public_json))  # the released DP audit, never findings
    draft = draft_from_release(request, spec, values, policy, author_fields, column_labels=_labels(schema))
    return check(draft)


def model_drafts(
    records: Sequence[ChargeRecord],
    request: Mapping[str, Any],
    policy: Policy,
    author_fields: Mapping[str, Any] | None,
    schema_of: SchemaOf,
) -> tuple[dict[str, RegisterDraft], list[str]]:
    """Build and check the draft of every model item; return ``({model id: draft}, warnings)``.

    A model whose fit query or audit the library cannot read (results stored before the gate read them) gets a
    warning instead of a draft.

    Raises
    ------
    RegisterFieldError
        Author fields given for a request without a model, or a draft that breaks the standard's limits.
    """
    fields = check_author_fields(author_fields)
    models = [r for r in records if r.kind == "model"]
    if fields and not models:
        raise RegisterFieldError(
            "register=... describes a model in the Algoritmeregister, and this request has no model item: leave "
            "register out, or release the model (with its fairness audit) in this request."
        )
    audits = _audits_by_model(records)
    drafts: dict[str, RegisterDraft] = {}
    warnings: list[str] = []
    for m in models:
        try:
            drafts[m.id] = _draft(m, audits.get(m.id), request, policy, author_fields, schema_of(m))
        except RegisterFieldError:
            raise
        except (ReleaseError, QueryError, KeyError, TypeError, ValueError) as exc:
            warnings.append(f"model {m.id}: no Algoritmeregister draft can be built ({exc})")
    return drafts, warnings


def _names(names: Sequence[str]) -> str:
    return ", ".join(names)


def register_report(
    author_fields: Mapping[str, Any] | None, drafts: Mapping[str, RegisterDraft], warnings: Sequence[str] = ()
) -> dict[str, Any]:
    """Return the gate report's ``register`` section: the author's fields, each draft's flags and the warnings.

    Every flag depends only on the analyst's input, the schema, the policy and the DP outputs (module docstring).
    """
    models = []
    out_warnings = list(warnings)
    for model_id, draft in drafts.items():
        entry = {
            "model_id": model_id,
            "unfilled": list(draft.unfilled),
            "missing_required": list(draft.missing_required),
            "incomplete": list(draft.incomplete),
        }
        models.append(entry)
        if draft.missing_required:
            out_warnings.append(
                f"Algoritmeregister draft of {model_id}: the standard requires {_names(draft.missing_required)}; "
                "give them in ws.release(..., register={...}) (sb.author_fields_help() lists the fields)"
            )
        if draft.incomplete:
            out_warnings.append(
                f"Algoritmeregister draft of {model_id}: {_names(draft.incomplete)} need your own paragraph "
                "beside the sandbox's text (register={...})"
            )
        optional = [n for n in draft.unfilled if n not in draft.missing_required]
        if optional:
            out_warnings.append(
                f"Algoritmeregister draft of {model_id}: not filled in (nog in te vullen): {_names(optional)}"
            )
    return {
        "format": REGISTER_FORMAT,
        "fields": dict(author_fields or {}),
        "models": models,
        "warnings": out_warnings,
    }


def author_fields_of(gate: Mapping[str, Any]) -> dict[str, Any]:
    """Return the author fields stored in a gate report (``{}`` for a request made without any)."""
    section = gate.get("register")
    fields = section.get("fields") if isinstance(section, Mapping) else None
    return dict(fields) if isinstance(fields, Mapping) else {}


def register_files(
    records: Sequence[ChargeRecord],
    request: Mapping[str, Any],
    policy: Policy,
    author_fields: Mapping[str, Any] | None,
    schema_of: SchemaOf,
) -> list[ReleaseFile]:
    """Render the draft of every model item as JSON and Dutch and English pages (one model: plain names)."""
    drafts, _ = model_drafts(records, request, policy, author_fields, schema_of)
    files = []
    for model_id, draft in drafts.items():
        prefix = "" if len(drafts) == 1 else f"{model_id}_"
        files += [
            ReleaseFile(f"{prefix}algoritmeregister.json", (to_json(draft) + "\n").encode()),
            ReleaseFile(f"{prefix}algoritmeregister.html", to_html(draft, "nl").encode()),
            ReleaseFile(f"{prefix}algoritmeregister_en.html", to_html(draft, "en").encode()),
        ]
    return files
