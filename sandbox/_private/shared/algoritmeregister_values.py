"""The value objects of an Algoritmeregister draft: its fields' parts, link entries and the problems found.

A :class:`RegisterDraft` keeps, for each field of the standard, the parts its value is made of and who wrote each
(the sandbox's parts first, then the author's), so a check can say which part to shorten and a page can show who
wrote what. Build drafts with :func:`~.algoritmeregister.draft_from_release`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from .algoritmeregister_fields import FIELDS, field_spec
from .errors import ReleaseError

__all__ = ["Link", "Part", "Problem", "RegisterDraft", "Value", "PartSource", "ProblemKind", "joined", "PARAGRAPH"]

PartSource = Literal["request", "spec", "audit", "policy", "standard", "default", "author"]
ProblemKind = Literal[
    "too_long", "not_allowed", "format", "hidden", "duplicate", "consistency", "required", "incomplete"
]
PARAGRAPH = "\n\n"


@dataclass(frozen=True)
class Link:
    """One entry of a link list (legal bases, impact assessments, data sources): a title and a link."""

    title: str
    link: str = ""

    def to_dict(self) -> dict[str, str | None]:
        """Return the standard's item form; an absent link is ``None``."""
        return {"title": self.title, "link": self.link or None}


Value = str | tuple[str, ...] | tuple[Link, ...]


@dataclass(frozen=True)
class Part:
    """A piece of a field's value and who wrote it."""

    source: PartSource
    value: Value


@dataclass(frozen=True)
class Problem:
    """A way the draft falls short of the standard: the field (``risks``, ``lawful_basis_grouping[0].link``)."""

    field: str
    kind: ProblemKind
    message: str


@dataclass(frozen=True)
class RegisterDraft:
    """A draft entry: each field's parts (the sandbox's first, then the author's) and where the draft came from.

    Build it with :func:`draft_from_release`. ``values`` joins each field's parts (texts by a blank line, lists
    end to end); ``sources`` says who filled each field; ``unfilled`` and ``incomplete`` are the flags.
    """

    parts: Mapping[str, tuple[Part, ...]]
    provenance: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [n for n in self.parts if n not in _NAMES]
        if unknown:
            raise ReleaseError(f"the draft names fields {unknown} that publication standard 1.0 does not have.")
        for name, parts in self.parts.items():
            for part in parts:
                _check_shape(name, part)
        ordered = {f.name: tuple(self.parts[f.name]) for f in FIELDS if self.parts.get(f.name)}
        object.__setattr__(self, "parts", MappingProxyType(ordered))
        object.__setattr__(self, "provenance", MappingProxyType(dict(self.provenance)))

    @property
    def values(self) -> Mapping[str, Value]:
        """Each filled field's value, in the standard's order."""
        return MappingProxyType({name: joined(parts) for name, parts in self.parts.items()})

    @property
    def sources(self) -> Mapping[str, tuple[str, ...]]:
        """Who filled each filled field, in order of appearance.

        A source is ``request``, ``spec``, ``audit``, ``policy``, ``standard``, ``default`` or ``author``.
        """
        return MappingProxyType({n: tuple(dict.fromkeys(p.source for p in ps)) for n, ps in self.parts.items()})

    @property
    def unfilled(self) -> tuple[str, ...]:
        """Fields nobody filled (the register's own ``lars`` and ``publication_dt`` excepted)."""
        return tuple(f.name for f in FIELDS if f.name not in self.parts and f.source != ("register",))

    @property
    def incomplete(self) -> tuple[str, ...]:
        """Fields the sandbox wrote whose author part the entry needs but lacks."""
        return tuple(
            f.name
            for f in FIELDS
            if f.author == "must_add" and not any(p.source == "author" for p in self.parts.get(f.name, ()))
        )

    @property
    def missing_required(self) -> tuple[str, ...]:
        """Unfilled fields the standard requires."""
        return tuple(n for n in self.unfilled if field_spec(n).required)


_NAMES = frozenset(f.name for f in FIELDS)
_SHAPES = {"text": "a string", "choice": "a string", "choices": "a tuple of strings", "links": "a tuple of Link"}


def _check_shape(name: str, part: Part) -> None:
    spec = field_spec(name)
    v = part.value
    ok = {
        "text": isinstance(v, str),
        "choice": isinstance(v, str),
        "choices": isinstance(v, tuple) and all(isinstance(x, str) for x in v),
        "links": isinstance(v, tuple) and all(isinstance(x, Link) for x in v),
    }[spec.kind]
    if not ok or spec.source == ("register",):
        want = "nothing (the register assigns it)" if spec.source == ("register",) else _SHAPES[spec.kind]
        raise ReleaseError(f"the draft's {name!r} must hold {want}, got {type(v).__name__}.")


def joined(parts: Sequence[Part]) -> Value:
    """Join a field's parts: texts by a blank line, lists end to end."""
    if isinstance(parts[0].value, str):
        return PARAGRAPH.join(str(p.value) for p in parts)
    out: list[Any] = []
    for p in parts:
        out.extend(p.value)
    return tuple(out)
