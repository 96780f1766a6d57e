"""An Algoritmeregister publication draft for a model release, filled from what the sandbox knows.

Dutch government bodies publish their impactful algorithms in the Algoritmeregister. Every model release carries
a draft entry under publication standard 1.0 (the field table is in :mod:`.algoritmeregister_fields`, read from
MinBZK/Algoritmeregister ``backend/app/schemas/config/v1_0.json`` at be01f3a). This module is pure: plain
JSON-like dicts in, a frozen :class:`RegisterDraft` out, no I/O. Its parts: the field table
(``_fields``), the value objects (``_values``), the sandbox's Dutch texts (``_text``), the checks (``_check``)
and the page (``_html``); this module fills drafts, takes the author's fields and writes JSON.

The sandbox fills what its request, model spec, released fairness audit and policy say (name, source id, goal,
proportionality from the request; source data and technical working from the spec; risks from the audit and the
policy; human intervention from the policy's review rule; language and version from the standard). The author
gives the rest, at release time or as a study parameter (:func:`author_fields_help` lists them).

**The author rule.** An author's value never replaces what the sandbox wrote. On an author-only field it is the
value; on a field the sandbox writes (goal, proportionality, human intervention, risks, source data, technical
working, impact assessments) it is added after the sandbox's text as a paragraph of its own; on a field the
sandbox owns alone (name, source id, language, version) or the register assigns (``lars``, ``publication_dt``)
it is refused, with the message naming where the value comes from and what to change instead.

Fields nobody filled are listed in :attr:`RegisterDraft.unfilled`; fields whose author part the entry needs
(human intervention, risks) but lacks, in :attr:`RegisterDraft.incomplete`. :func:`validate` checks every value
against the standard's limits (maximum lengths, permitted values, link-list shapes, the date and URL forms its
instructions ask for); with ``complete=True`` also that nothing the standard requires is missing.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from . import algoritmeregister_text as txt
from .algoritmeregister_check import check, summary, validate
from .algoritmeregister_fields import (
    FIELD_NAMES,
    FIELDS,
    STANDARD_SOURCE,
    STANDARD_VERSION,
    RegisterField,
    author_fields_help,
    field_spec,
)
from .algoritmeregister_html import render_html
from .algoritmeregister_values import PARAGRAPH, Link, Part, Problem, RegisterDraft, Value
from .errors import RegisterFieldError, ReleaseError
from .policy import Policy

__all__ = [
    "Link",
    "Part",
    "Problem",
    "RegisterDraft",
    "draft_from_release",
    "normalise_author_fields",
    "check_author_fields",
    "validate",
    "check",
    "to_json",
    "to_html",
    "author_fields_help",
]


# -- author input ------------------------------------------------------------------------------------------------
def _refusal(spec: RegisterField) -> str:
    if spec.source == ("register",):
        return f"{spec.name!r} is assigned by the Algoritmeregister when it publishes the entry; leave it out."
    if spec.source == ("standard",):
        return f"{spec.name!r} is fixed by publication standard {STANDARD_VERSION}; leave it out."
    return (
        f"{spec.name!r} ({spec.label_nl}) is filled from {spec.origin_en}; change that instead of "
        f"register[{spec.name!r}]."
    )


def _author_value(spec: RegisterField, value: Any) -> Value | None:
    """Return the author's value in the draft's form, ``None`` if empty; refuse a wrong type."""
    if value is None:
        return None
    if spec.kind in ("text", "choice"):
        if not isinstance(value, str):
            raise RegisterFieldError(f"register[{spec.name!r}] must be a string, got {type(value).__name__}.")
        return value.strip() or None
    if spec.kind == "choices":
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise RegisterFieldError(
                f"register[{spec.name!r}] must be a list of strings from: {', '.join(spec.allowed)}."
            )
        return tuple(v.strip() for v in items if v.strip()) or None
    return _links(spec, value)


def _links(spec: RegisterField, value: Any) -> tuple[Link, ...] | None:
    example = '[{"title": "...", "link": "https://..."}] or [["title", "https://..."]]'
    if not isinstance(value, list | tuple):
        raise RegisterFieldError(f"register[{spec.name!r}] must be a list of title/link entries, as {example}.")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, Mapping):
            extra = set(item) - {"title", "link"}
            if extra:
                raise RegisterFieldError(
                    f"register[{spec.name!r}][{i}] has keys {sorted(extra)}; only 'title' and 'link'."
                )
            title, link = item.get("title", ""), item.get("link", "")
        elif isinstance(item, list | tuple) and len(item) in (1, 2):
            title, link = item[0], item[1] if len(item) == 2 else ""
        else:
            raise RegisterFieldError(f"register[{spec.name!r}][{i}] must be a title/link entry, as {example}.")
        if not isinstance(title, str) or not isinstance(link, str | None):
            raise RegisterFieldError(f"register[{spec.name!r}][{i}]: title and link must be strings.")
        out.append(Link(title.strip(), (link or "").strip()))
    return tuple(out) or None


def normalise_author_fields(author_fields: Mapping[str, Any] | None) -> dict[str, Value]:
    """Check the names and types of an author's fields; return the non-empty ones in the draft's form.

    Text fields take a string, ``category`` a list of strings (or one), link lists a list of
    ``{"title", "link"}`` entries (or ``[title, link]`` pairs). Empty strings and lists count as not given.

    Raises
    ------
    RegisterFieldError
        An unknown field (with the nearest name), a field the author may not give (saying where it comes
        from), or a value of the wrong type.
    """
    if author_fields is None:
        return {}
    if not isinstance(author_fields, Mapping):
        raise RegisterFieldError(
            f"register must be a mapping of field names to values, got {type(author_fields).__name__}."
        )
    out: dict[str, Value] = {}
    for name, value in author_fields.items():
        if name not in FIELD_NAMES:
            near = difflib.get_close_matches(str(name), list(FIELD_NAMES), n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            given = ", ".join(f.name for f in author_fields_help())
            raise RegisterFieldError(f"publication standard 1.0 has no field {name!r}; {hint}an author gives: {given}.")
        spec = field_spec(name)
        if not spec.author_may_give:
            raise RegisterFieldError(_refusal(spec))
        v = _author_value(spec, value)
        if v is not None:
            out[name] = v
    return out


def check_author_fields(author_fields: Mapping[str, Any] | None) -> dict[str, Value]:
    """:func:`normalise_author_fields`, then each value alone against the standard's limits (for the kernel).

    A value the sandbox adds to must also fit with the sandbox's text: :func:`validate` of the draft checks that.

    Raises
    ------
    RegisterFieldError
        As :func:`normalise_author_fields`, or a value over its limit, not permitted or of the wrong form.
    """
    values = normalise_author_fields(author_fields)
    problems = validate(RegisterDraft({n: (Part("author", v),) for n, v in values.items()}))
    if problems:
        raise RegisterFieldError(summary(problems))
    return values


# -- filling -----------------------------------------------------------------------------------------------------
def _request_text(request: Mapping[str, Any], key: str, *, required: bool) -> str:
    value = request.get(key) or ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ReleaseError(f"the release request has no {key!r} text; the register draft needs the request's {key}.")
    return value.strip()


def draft_from_release(
    request: Mapping[str, Any],
    spec: Mapping[str, Any],
    audit: Mapping[str, Any] | None,
    policy: Policy | Mapping[str, Any],
    author_fields: Mapping[str, Any] | None = None,
    *,
    column_labels: Mapping[str, str] | None = None,
) -> RegisterDraft:
    """Fill a draft from a model release and the author's fields (the author rule is in the module docstring).

    Parameters
    ----------
    request : mapping
        The release request as the gate shows it: ``id``, ``title``, ``purpose``; ``justification``, ``author``
        and ``created`` where known.
    spec : mapping
        ``ModelSpec.to_dict()``, or the fit query ``{"dataset", "spec", "epsilon"}`` (with ``version``).
    audit : mapping or None
        The released fairness audit, ``FairnessAudit.to_dict()`` of the DP audit (never exact numbers).
    policy : Policy or mapping
        The policy in force, or its ``model_dump(mode="json")`` with its ``sha256``.
    author_fields : mapping, optional
        The author's fields (see :func:`normalise_author_fields` and :func:`author_fields_help`).
    column_labels : mapping, optional
        Dutch labels of the columns (``{c.name: c.label_nl}`` of the public schema) for the texts.

    Returns
    -------
    RegisterDraft

    Raises
    ------
    ReleaseError
        A malformed request, spec or audit; :class:`RegisterFieldError` (a ``ReleaseError``) for author fields
        that :func:`normalise_author_fields` refuses.
    """
    if not isinstance(request, Mapping):
        raise ReleaseError(f"the release request must be a mapping, got {type(request).__name__}.")
    given = normalise_author_fields(author_fields)
    facts = txt.spec_facts(spec)
    pol = txt.policy_of(policy)
    aud = None if audit is None else txt.check_audit(audit)
    labels = dict(column_labels or {})
    system: dict[str, list[Part]] = {
        "name": [Part("request", _request_text(request, "title", required=True))],
        "source_id": [Part("request", _request_text(request, "id", required=True))],
        "goal": [Part("request", _request_text(request, "purpose", required=True))],
        "human_intervention": [Part("policy", txt.human_intervention_text(pol))],
        "risks": [Part("policy", txt.risks_policy_text(pol))],
        "source_data": [Part(s, t) for s, t in txt.source_data_texts(facts, pol, aud, labels)],
        "methods_and_models": [Part("spec", txt.methods_text(facts, pol, labels))],
        "lang": [Part("standard", "nld")],
        "standard_version": [Part("standard", STANDARD_VERSION)],
    }
    justification = _request_text(request, "justification", required=False)
    if justification:
        system["proportionality"] = [Part("request", justification)]
    if aud is not None:
        system["risks"].insert(0, Part("audit", txt.risks_audit_text(aud, labels)))
        system["impacttoetsen_grouping"] = [Part("audit", (Link(txt.assessment_title(aud)),))]
    parts = {name: _fitted(name, tuple(ps)) for name, ps in system.items()}
    for name, value in given.items():
        parts[name] = (*parts.get(name, ()), Part("author", value))
    for f in FIELDS:
        if f.default and f.name not in parts:
            parts[f.name] = (Part("default", f.default),)
    return RegisterDraft(parts, _provenance(request, facts, pol, aud))


#: Characters of a text field the sandbox leaves for the author's paragraph when its own text would fill it.
AUTHOR_ROOM = 500
_WRITTEN = ("spec", "audit", "policy")
_SHORTENED = " (Ingekort; de volledige fairness-audit en het beleid staan in de vrijgave.)"


def _shorten(text: str, room: int) -> str:
    """Keep the whole sentences of ``text`` that fit in ``room`` with the note that it was shortened."""
    if len(text) <= room:
        return text
    kept = ""
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        candidate = f"{kept} {sentence}".strip()
        if len(candidate) + len(_SHORTENED) > room:
            break
        kept = candidate
    return (kept + _SHORTENED).strip() if kept else text[: max(room - 1, 0)] + "…"


def _fitted(name: str, parts: tuple[Part, ...]) -> tuple[Part, ...]:
    """Shorten the sandbox's own text of a field to its limit (less :data:`AUTHOR_ROOM` where the author adds).

    A long audit (many protected attributes, intersections and flagged proxies, with the schema's long Dutch
    labels) must never make the draft break the standard by itself: the analyst cannot shorten the sandbox's text.
    The longest part the sandbox wrote is cut at a sentence end, and says so; the full audit is released beside
    the draft. Text from the request (title, purpose, justification) is never cut: the analyst shortens it.
    """
    spec = field_spec(name)
    if spec.max_length is None or not all(isinstance(p.value, str) for p in parts):
        return parts
    room = spec.max_length - (AUTHOR_ROOM if spec.author in ("adds", "must_add") else 0)
    total = sum(len(str(p.value)) for p in parts) + len(PARAGRAPH) * (len(parts) - 1)
    if total <= room:
        return parts
    written = [i for i, p in enumerate(parts) if p.source in _WRITTEN]
    if not written:
        return parts  # the analyst's own text (title, purpose): refused by validate, never cut
    longest = max(written, key=lambda i: len(str(parts[i].value)))
    keep = len(str(parts[longest].value)) - (total - room)
    out = list(parts)
    out[longest] = Part(parts[longest].source, _shorten(str(parts[longest].value), max(keep, 0)))
    return tuple(out)


def _provenance(
    request: Mapping[str, Any], facts: txt.SpecFacts, policy: Policy, audit: Mapping[str, Any] | None
) -> dict[str, str]:
    out = {
        "standard": f"Algoritmeregister publicatiestandaard {STANDARD_VERSION}",
        "standard_source": STANDARD_SOURCE,
        "request_id": str(request.get("id", "")),
        "request_author": str(request.get("author", "") or ""),
        "request_created": str(request.get("created", "") or ""),
        "model": f"{facts.spec.estimator} -> {facts.spec.target}",
        "dataset": f"{facts.dataset} {facts.version}".strip(),
        "policy": policy.name,
        "policy_sha256": policy.sha256,
    }
    if audit is not None:
        out["audit_verdict"] = str(audit["verdict"]["status"])
    return {k: v for k, v in out.items() if v}


# -- output ------------------------------------------------------------------------------------------------------
def _json_value(value: Value) -> Any:
    if isinstance(value, str):
        return value
    return [v.to_dict() if isinstance(v, Link) else v for v in value]


def to_json(draft: RegisterDraft, *, annotated: bool = False) -> str:
    """Return the draft as JSON under the standard's field names, in its order; an unfilled field is ``null``.

    Values are plain text. ``lars`` and ``publication_dt`` are left out (the register assigns them). With
    ``annotated``, the fields sit under ``"fields"`` beside ``sources``, ``unfilled``, ``incomplete``,
    ``problems`` and ``provenance``.
    """
    values = draft.values
    fields = {
        f.name: _json_value(values[f.name]) if f.name in values else None for f in FIELDS if f.source != ("register",)
    }
    if not annotated:
        return json.dumps(fields, ensure_ascii=False, indent=2)
    body = {
        "standard": f"Algoritmeregister publicatiestandaard {STANDARD_VERSION}",
        "standard_source": STANDARD_SOURCE,
        "fields": fields,
        "sources": {k: list(v) for k, v in draft.sources.items()},
        "unfilled": list(draft.unfilled),
        "missing_required": list(draft.missing_required),
        "incomplete": list(draft.incomplete),
        "problems": [{"field": p.field, "kind": p.kind, "message": p.message} for p in validate(draft)],
        "provenance": dict(draft.provenance),
    }
    return json.dumps(body, ensure_ascii=False, indent=2)


def to_html(draft: RegisterDraft, lang: str = "nl") -> str:
    """Return a self-contained readable page of the draft (``lang`` 'nl' or 'en'), unfilled fields flagged."""
    return render_html(draft, lang)
