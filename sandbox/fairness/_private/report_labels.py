"""What a report belongs to (:class:`ReportMetadata`) and how it names attributes and groups (:class:`DisplayNames`).

The audit itself keeps the schema's codes (``buiten_europa``); a report for people shows labels (``buiten
Europa``), taken from the schema by the caller, in the report's language. Intersections are labelled part by part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sandbox._private.shared.errors import FairnessInputError

from .rules import FACET_SEP

__all__ = ["ReportMetadata", "DisplayNames", "as_metadata"]


@dataclass(frozen=True)
class ReportMetadata:
    """Which release request, model, data and policy a fairness report belongs to (all optional).

    Parameters
    ----------
    request : str
        Release request id (and title, if wanted).
    model : str
        Model id or name.
    target : str
        The model's target column.
    features : sequence of str
        The model's features.
    dataset : str
        Dataset name.
    dataset_version : str
        Dataset version.
    author : str
        The analyst who asks for the release.
    policy_sha256 : str
        sha256 of the policy the release is judged under. When it is not the policy the audit applied, the report
        says so in red at the top (a reviewer must not read an audit under one policy as passing another).
    """

    request: str = ""
    model: str = ""
    target: str = ""
    features: tuple[str, ...] = ()
    dataset: str = ""
    dataset_version: str = ""
    author: str = ""
    policy_sha256: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "features":
                if isinstance(value, str) or not isinstance(value, Sequence):
                    raise FairnessInputError(f"metadata features must be a list of names, got {value!r}")
                value = tuple(str(v) for v in value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)  # a version number
            elif not isinstance(value, str):
                raise FairnessInputError(f"metadata {f.name} must be text, got {type(value).__name__} {value!r}")
            object.__setattr__(self, f.name, value)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ReportMetadata:
        """Build from a mapping with the field names; an unknown key is an error naming the known ones."""
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise FairnessInputError(f"unknown report metadata {unknown}; the fields are {known}")
        return cls(**dict(data))

    def items(self) -> list[tuple[str, str]]:
        """Return the fields that are set, as ``(name, text)`` in display order."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            text = ", ".join(value) if f.name == "features" else value
            if text:
                out.append((f.name, text))
        return out


def as_metadata(metadata: ReportMetadata | Mapping[str, Any] | None) -> ReportMetadata | None:
    """Validate the report's metadata (a mapping takes the field names of :class:`ReportMetadata`)."""
    if metadata is None or isinstance(metadata, ReportMetadata):
        return metadata
    if not isinstance(metadata, Mapping):
        raise FairnessInputError(f"metadata must be a ReportMetadata or a mapping, got {type(metadata).__name__}")
    return ReportMetadata.from_mapping(metadata)


def _check_map(name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise FairnessInputError(f"{name} must be a mapping of names to labels, got {type(value).__name__}")
    out = {}
    for k, v in value.items():
        if not isinstance(v, str) or not v:
            raise FairnessInputError(f"{name}[{k!r}] must be a non-empty label, got {v!r}")
        out[str(k)] = v
    return out


@dataclass(frozen=True)
class DisplayNames:
    """Labels of attributes and of their categories for a report (codes stay where no label is given)."""

    attributes: Mapping[str, str]
    categories: Mapping[str, Mapping[str, str]]

    @classmethod
    def build(
        cls, labels: Mapping[str, Mapping[str, str]] | None, attribute_labels: Mapping[str, str] | None
    ) -> DisplayNames:
        """Validate the label maps the caller gives (``None``: no labels)."""
        cats: dict[str, dict[str, str]] = {}
        if labels is not None:
            if not isinstance(labels, Mapping):
                raise FairnessInputError(
                    f"labels must map each attribute to {{category: label}}, got {type(labels).__name__}"
                )
            cats = {str(a): _check_map(f"labels[{a!r}]", m) for a, m in labels.items()}
        attrs = {} if attribute_labels is None else _check_map("attribute_labels", attribute_labels)
        return cls(attrs, cats)

    def facet(self, name: str) -> str:
        """Display name of an attribute or intersection (``"gender × migration_background"``)."""
        return FACET_SEP.join(self.attributes.get(a, a) for a in name.split(FACET_SEP))

    def group(self, facet: str, group: str) -> str:
        """Display label of a group of ``facet`` (each part by its own attribute)."""
        attrs, parts = facet.split(FACET_SEP), group.split(FACET_SEP)
        if len(attrs) != len(parts):
            return group  # 'overall' and other non-group labels
        return FACET_SEP.join(self.categories.get(a, {}).get(p, p) for a, p in zip(attrs, parts, strict=True))
