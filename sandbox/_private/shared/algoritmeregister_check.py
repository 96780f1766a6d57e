"""Checking an Algoritmeregister draft against publication standard 1.0: lengths, values, forms, completeness.

The limits come from the field table (:mod:`.algoritmeregister_fields`). A length is every character of the plain
text, line breaks included, which is never less than the register's own count (it strips HTML tags first). The
date, URL and contact forms are those the standard's instructions ask for. Each :class:`Problem` names the field,
the number and the limit, and says which part to change: the author's text, or the request's title or purpose.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

from .algoritmeregister_fields import FIELDS, STANDARD_VERSION, RegisterField, field_spec
from .algoritmeregister_values import PARAGRAPH, Link, Part, Problem, RegisterDraft, Value, joined
from .errors import RegisterFieldError

__all__ = ["validate", "check", "summary"]

_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_FORMS = {
    "month": "a month written as YYYY-MM, such as 2025-01",
    "url": "a URL starting with https://",
    "contact": "an e-mail address or a URL starting with https://",
}


def _hidden(text: str) -> list[str]:
    """Control (but line break and tab), format (such as a right-to-left override) and separator characters."""
    return [
        f"U+{ord(c):04X}" for c in text if c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")
    ]


def _form_ok(fmt: str, text: str) -> bool:
    url = text.startswith("https://") and len(text) > len("https://") and not any(c.isspace() for c in text)
    return {"month": bool(_MONTH.match(text)), "url": url, "contact": url or bool(_EMAIL.match(text))}.get(fmt, True)


def _text_problems(where: str, spec: RegisterField, text: str, limit: int | None, fmt: str) -> list[Problem]:
    out = []
    hidden = _hidden(text)
    if hidden:
        out.append(
            Problem(
                where,
                "hidden",
                f"{where} contains control or formatting characters "
                f"({', '.join(hidden[:5])}); remove them (a reader would not see them).",
            )
        )
    if limit is not None and len(text) > limit:
        out.append(
            Problem(
                where,
                "too_long",
                f"{where} ({spec.label_nl}) is {len(text)} characters; the standard allows {limit}: shorten it.",
            )
        )
    if fmt and not _form_ok(fmt, text):
        out.append(Problem(where, "format", f"{where} ({spec.label_nl}) is {text[:60]!r}; write {_FORMS[fmt]}."))
    return out


def _too_long_message(spec: RegisterField, parts: Sequence[Part], total: int) -> str:
    limit = spec.max_length
    author = [p for p in parts if p.source == "author"]
    head = f"{spec.name} ({spec.label_nl}) is {total} characters; the standard allows {limit}"
    if not author:
        return f"{head}: shorten {spec.origin_en} to at most {limit} characters." if spec.origin_en else head + "."
    own = len(str(author[0].value))
    if len(author) == len(parts):
        return f"{head}: shorten register[{spec.name!r}] to at most {limit} characters."
    system = total - own
    if system - len(PARAGRAPH) >= int(limit or 0):
        return f"{head}: the sandbox's text from {spec.origin_en} alone takes {system - len(PARAGRAPH)}; shorten that."
    room = own - (total - int(limit or 0))
    return (
        f"{head}. The sandbox's text from {spec.origin_en} takes {system} of them (with the paragraph break); "
        f"shorten register[{spec.name!r}] from {own} to at most {room} characters."
    )


def _field_problems(spec: RegisterField, parts: Sequence[Part]) -> list[Problem]:
    value = joined(parts)
    name = spec.name
    if spec.kind == "text":
        problems = _text_problems(name, spec, str(value), spec.max_length, spec.fmt)
        return [
            Problem(name, "too_long", _too_long_message(spec, parts, len(str(value)))) if p.kind == "too_long" else p
            for p in problems
        ]
    if spec.kind == "choice":
        if value not in spec.allowed:
            return [
                Problem(
                    name,
                    "not_allowed",
                    f"{name} ({spec.label_nl}) is {value!r}; the standard allows "
                    f"{', '.join(repr(a) for a in spec.allowed)}.",
                )
            ]
        return []
    if spec.kind == "choices":
        assert isinstance(value, tuple)
        out = [
            Problem(
                f"{name}[{i}]",
                "not_allowed",
                f"{name} ({spec.label_nl}): {v!r} is not a permitted value; "
                f"use one of {', '.join(repr(a) for a in spec.allowed)}.",
            )
            for i, v in enumerate(value)
            if v not in spec.allowed
        ]
        dupes = sorted({str(v) for v in value if value.count(v) > 1})
        if dupes:
            out.append(Problem(name, "duplicate", f"{name} ({spec.label_nl}) lists {dupes} twice; list each once."))
        return out
    return _link_problems(spec, value)


def _link_problems(spec: RegisterField, value: Value) -> list[Problem]:
    items = spec.items
    assert items is not None
    out = []
    for i, entry in enumerate(value):
        assert isinstance(entry, Link)
        for key, text, limit, needed in (
            ("title", entry.title, items.title_max, items.title_required),
            ("link", entry.link, items.link_max, items.link_required),
        ):
            where = f"{spec.name}[{i}].{key}"
            if not text:
                if needed:
                    out.append(
                        Problem(where, "required", f"{where} is empty; each entry of {spec.label_nl} needs a {key}.")
                    )
                continue
            out += _text_problems(where, spec, text, limit, "url" if key == "link" else "")
    return out


def _consistency(values: Mapping[str, Value]) -> list[Problem]:
    out = []
    end, begin, status = values.get("end_date"), values.get("begin_date"), values.get("status")
    if end and status and status != "Buiten gebruik":
        out.append(
            Problem(
                "end_date",
                "consistency",
                f"end_date is {end!r} but status is {status!r}; the standard "
                "leaves end_date empty unless the status is 'Buiten gebruik'.",
            )
        )
    months = [v for v in (begin, end) if isinstance(v, str) and _MONTH.match(v)]
    if len(months) == 2 and months[1] < months[0]:
        out.append(Problem("end_date", "consistency", f"end_date {end!r} is before begin_date {begin!r}."))
    return out


def validate(draft: RegisterDraft, *, complete: bool = False) -> list[Problem]:
    """Check the draft against publication standard 1.0; return its problems (empty: it meets the standard).

    Every filled field is checked: maximum lengths (counted in characters, line breaks included), permitted
    values, link-list entries (title and link present where needed, their lengths, ``https://``), the month
    and contact forms, and no hidden characters. With ``complete``, a required field that nobody filled and a
    field lacking the author part it needs are problems too (by default they are only flagged on the draft).
    """
    out: list[Problem] = []
    for spec in FIELDS:
        if spec.name in draft.parts:
            out += _field_problems(spec, draft.parts[spec.name])
    out += _consistency(draft.values)
    if complete:
        for name in draft.missing_required:
            spec = field_spec(name)
            out.append(
                Problem(
                    name, "required", f"{name} ({spec.label_nl}) is required; give register[{name!r}]: {spec.hint_en}"
                )
            )
        for name in draft.incomplete:
            spec = field_spec(name)
            out.append(
                Problem(
                    name,
                    "incomplete",
                    f"{name} ({spec.label_nl}) needs the author's part; give register[{name!r}]: {spec.hint_en}",
                )
            )
    return out


def summary(problems: Sequence[Problem]) -> str:
    lines = "\n".join(f"  - {p.message}" for p in problems)
    return f"the Algoritmeregister draft does not meet publication standard {STANDARD_VERSION}:\n{lines}"


def check(draft: RegisterDraft, *, complete: bool = False) -> RegisterDraft:
    """Return ``draft`` if :func:`validate` finds nothing, else raise :class:`RegisterFieldError` listing them all."""
    problems = validate(draft, complete=complete)
    if problems:
        raise RegisterFieldError(summary(problems))
    return draft
