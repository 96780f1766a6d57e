"""The public schema of a protected table.

The schema is the only thing about a protected dataset that the analyst's kernel may see: column names, types,
bounds, categories, labels (Dutch and English), the privacy unit and the most rows one unit may contribute. The
vault takes every DP bound and every group key from here, never from the rows (DESIGN invariant 4), and dummy
data is generated from it alone.

A schema is stored as JSON (``format: sandbox.schema/1``); :meth:`TableSchema.load` and
:meth:`TableSchema.save` round-trip it exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from .errors import SchemaError
from .wire import NAME_RE

__all__ = ["Column", "ColumnKind", "PrivacyUnit", "TableSchema", "SCHEMA_FORMAT"]

SCHEMA_FORMAT = "sandbox.schema/1"
ColumnKind = Literal["id", "int", "float", "bool", "category"]
PrivacyUnit = Literal["household", "person"]
_KINDS: tuple[str, ...] = ("id", "int", "float", "bool", "category")
_UNITS: tuple[str, ...] = ("household", "person")
_NAME = NAME_RE


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SchemaError(
            f"{what} name {name!r} is not allowed: use 1-63 lower-case letters, digits or '_', "
            "starting with a letter (for example 'household_type')."
        )
    return name


@dataclass(frozen=True)
class Column:
    """One column of a public schema.

    Parameters
    ----------
    name : str
        Column name (lower-case identifier).
    kind : {"id", "int", "float", "bool", "category"}
        ``id`` columns link tables and are never aggregated; ``int`` and ``float`` need finite bounds;
        ``category`` needs its full list of categories.
    label_nl, label_en : str
        Human-readable labels in Dutch and English.
    lower, upper : float, optional
        Public bounds for ``id``, ``int`` and ``float`` columns (inclusive).
    categories : tuple of str
        Every allowed value of a ``category`` column, in display order.
    nullable : bool
        Whether missing values are allowed.
    description : str
        Free text for analysts and reviewers.
    category_labels_nl, category_labels_en : tuple of str
        Optional display labels of a category column's values, in the order of ``categories`` (reports and the
        review page show them; codes stay the values).
    """

    name: str
    kind: ColumnKind
    label_nl: str
    label_en: str
    lower: float | None = None
    upper: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = False
    description: str = ""
    category_labels_nl: tuple[str, ...] = ()
    category_labels_en: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_name(self.name, "Column")
        if self.kind not in _KINDS:
            raise SchemaError(f"Column {self.name!r} has kind {self.kind!r}; use one of {', '.join(_KINDS)}.")
        if not self.label_nl or not self.label_en:
            raise SchemaError(f"Column {self.name!r} needs both label_nl and label_en.")
        object.__setattr__(self, "categories", tuple(self.categories))
        if self.kind in ("id", "int", "float"):
            if self.lower is None or self.upper is None:
                raise SchemaError(
                    f"Column {self.name!r} ({self.kind}) has no bounds: give public 'lower' and 'upper' "
                    "in the schema; the vault never derives bounds from the data."
                )
            lo, hi = float(self.lower), float(self.upper)
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
                raise SchemaError(
                    f"Column {self.name!r} has bounds [{self.lower}, {self.upper}]: they must be finite "
                    "with lower <= upper."
                )
            if self.kind in ("id", "int") and (lo != int(lo) or hi != int(hi)):
                raise SchemaError(f"Column {self.name!r} ({self.kind}) needs whole-number bounds.")
            if self.categories:
                raise SchemaError(f"Column {self.name!r} ({self.kind}) cannot have categories.")
        else:
            if self.lower is not None or self.upper is not None:
                raise SchemaError(f"Column {self.name!r} ({self.kind}) cannot have bounds.")
        if self.kind == "category":
            if not self.categories:
                raise SchemaError(f"Column {self.name!r} is a category without categories: list them all.")
            if len(set(self.categories)) != len(self.categories):
                raise SchemaError(f"Column {self.name!r} lists a category twice: {list(self.categories)}.")
            if not all(isinstance(c, str) and c for c in self.categories):
                raise SchemaError(f"Column {self.name!r}: every category must be a non-empty string.")
        elif self.categories:
            raise SchemaError(f"Column {self.name!r} ({self.kind}) cannot have categories.")
        for lang in ("nl", "en"):
            labels = tuple(getattr(self, f"category_labels_{lang}"))
            object.__setattr__(self, f"category_labels_{lang}", labels)
            if labels and len(labels) != len(self.categories):
                raise SchemaError(
                    f"Column {self.name!r} has {len(labels)} category_labels_{lang} for {len(self.categories)} "
                    "categories; give one label per category, in the same order, or none."
                )

    def category_label(self, code: str, lang: str = "nl") -> str:
        """Return the display label of category ``code`` in ``lang`` ('nl' or 'en'); the code when there is none."""
        labels = self.category_labels_nl if lang == "nl" else self.category_labels_en
        if labels and code in self.categories:
            return labels[self.categories.index(code)]
        return code

    @property
    def is_numeric(self) -> bool:
        """Whether the column may be summed, averaged or used for quantiles."""
        return self.kind in ("int", "float", "bool")

    @property
    def bounds(self) -> tuple[float, float]:
        """Public ``(lower, upper)``; bool columns are bounded by ``(0, 1)``."""
        if self.kind == "bool":
            return (0.0, 1.0)
        if self.lower is None or self.upper is None:
            raise SchemaError(f"Column {self.name!r} ({self.kind}) has no bounds.")
        return (float(self.lower), float(self.upper))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, without empty optional fields."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "label_nl": self.label_nl,
            "label_en": self.label_en,
        }
        if self.lower is not None:
            out["lower"] = self.lower
            out["upper"] = self.upper
        if self.categories:
            out["categories"] = list(self.categories)
        if self.nullable:
            out["nullable"] = True
        if self.description:
            out["description"] = self.description
        if self.category_labels_nl:
            out["category_labels_nl"] = list(self.category_labels_nl)
        if self.category_labels_en:
            out["category_labels_en"] = list(self.category_labels_en)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        """Build a column from its JSON form; unknown keys are an error."""
        allowed = {
            "name",
            "kind",
            "label_nl",
            "label_en",
            "lower",
            "upper",
            "categories",
            "nullable",
            "description",
            "category_labels_nl",
            "category_labels_en",
        }
        if not isinstance(data, Mapping):
            raise SchemaError(f"A column must be a JSON object, got {type(data).__name__}.")
        extra = set(data) - allowed
        if extra:
            raise SchemaError(
                f"Column {data.get('name')!r} has unknown keys {sorted(extra)}; allowed: {sorted(allowed)}."
            )
        missing = {"name", "kind", "label_nl", "label_en"} - set(data)
        if missing:
            raise SchemaError(f"Column {data.get('name')!r} is missing {sorted(missing)}.")
        return cls(
            name=data["name"],
            kind=data["kind"],
            label_nl=data["label_nl"],
            label_en=data["label_en"],
            lower=data.get("lower"),
            upper=data.get("upper"),
            categories=tuple(data.get("categories", ())),
            nullable=bool(data.get("nullable", False)),
            description=str(data.get("description", "")),
            category_labels_nl=tuple(data.get("category_labels_nl", ())),
            category_labels_en=tuple(data.get("category_labels_en", ())),
        )


@dataclass(frozen=True)
class TableSchema:
    """The public schema of one protected table.

    Parameters
    ----------
    name : str
        Table name, e.g. ``"households"``.
    label_nl, label_en : str
        Table labels.
    privacy_unit : {"household", "person"}
        The unit whose addition or removal DP protects.
    unit_column : str
        The column that identifies the privacy unit (``household_id``).
    max_rows_per_unit : int
        The most rows one unit can have in this table (1 for a household table). Person-level queries bound
        each unit's contribution to the policy's maximum, which may not exceed this.
    columns : tuple of Column
        The columns, in order.
    primary_key : tuple of str
        Columns that identify a row.
    description : str
        Free text.
    """

    name: str
    label_nl: str
    label_en: str
    privacy_unit: PrivacyUnit
    unit_column: str
    max_rows_per_unit: int
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    description: str = ""
    _index: dict[str, Column] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        _check_name(self.name, "Table")
        object.__setattr__(self, "columns", tuple(self.columns))
        object.__setattr__(self, "primary_key", tuple(self.primary_key))
        if self.privacy_unit not in _UNITS:
            raise SchemaError(
                f"Table {self.name!r} has privacy_unit {self.privacy_unit!r}; use 'household' or 'person'."
            )
        if not self.columns:
            raise SchemaError(f"Table {self.name!r} has no columns.")
        index: dict[str, Column] = {}
        for col in self.columns:
            if not isinstance(col, Column):
                raise SchemaError(f"Table {self.name!r}: columns must be Column objects, got {col!r}.")
            if col.name in index:
                raise SchemaError(f"Table {self.name!r} defines column {col.name!r} twice.")
            index[col.name] = col
        object.__setattr__(self, "_index", index)
        if self.unit_column not in index:
            raise SchemaError(
                f"Table {self.name!r}: unit_column {self.unit_column!r} is not a column; add it or fix the name."
            )
        if index[self.unit_column].kind != "id":
            raise SchemaError(f"Table {self.name!r}: unit_column {self.unit_column!r} must have kind 'id'.")
        if (
            isinstance(self.max_rows_per_unit, bool)
            or not isinstance(self.max_rows_per_unit, int)
            or self.max_rows_per_unit < 1
        ):
            raise SchemaError(
                f"Table {self.name!r}: max_rows_per_unit must be a whole number >= 1, got {self.max_rows_per_unit!r}."
            )
        for key in self.primary_key:
            if key not in index:
                raise SchemaError(f"Table {self.name!r}: primary key column {key!r} is not a column.")

    # -- lookup -------------------------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Column names in order."""
        return tuple(c.name for c in self.columns)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def column(self, name: str) -> Column:
        """Return the column called ``name``; the error lists the columns that exist."""
        try:
            return self._index[name]
        except KeyError:
            raise SchemaError(
                f"Table {self.name!r} has no column {name!r}; its columns are: {', '.join(self.names)}."
            ) from None

    def categorical(self) -> tuple[Column, ...]:
        """Columns usable as group keys (categories and booleans)."""
        return tuple(c for c in self.columns if c.kind in ("category", "bool"))

    def numeric(self) -> tuple[Column, ...]:
        """Columns usable as aggregate values (int, float, bool)."""
        return tuple(c for c in self.columns if c.is_numeric)

    def group_keys(self, column: str) -> tuple[Any, ...]:
        """Return the public keys of a group-by column: its categories, or ``(False, True)`` for a bool."""
        col = self.column(column)
        if col.kind == "category":
            return col.categories
        if col.kind == "bool":
            return (False, True)
        raise SchemaError(
            f"Column {column!r} of table {self.name!r} is {col.kind}, not a category or bool: group by a "
            f"categorical column ({', '.join(c.name for c in self.categorical())})."
        )

    # -- serialisation ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``format: sandbox.schema/1``)."""
        return {
            "format": SCHEMA_FORMAT,
            "name": self.name,
            "label_nl": self.label_nl,
            "label_en": self.label_en,
            "privacy_unit": self.privacy_unit,
            "unit_column": self.unit_column,
            "max_rows_per_unit": self.max_rows_per_unit,
            "primary_key": list(self.primary_key),
            "description": self.description,
            "columns": [c.to_dict() for c in self.columns],
        }

    def to_json(self) -> str:
        """Canonical JSON text (sorted keys, two-space indent, trailing newline)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @property
    def sha256(self) -> str:
        """sha256 of :meth:`to_json`: identifies this exact schema."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSchema:
        """Build and validate a schema from its JSON form; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"A schema must be a JSON object, got {type(data).__name__}.")
        fmt = data.get("format")
        if fmt != SCHEMA_FORMAT:
            raise SchemaError(f"Schema format is {fmt!r}; this sandbox reads {SCHEMA_FORMAT!r}.")
        allowed = {
            "format",
            "name",
            "label_nl",
            "label_en",
            "privacy_unit",
            "unit_column",
            "max_rows_per_unit",
            "primary_key",
            "description",
            "columns",
        }
        extra = set(data) - allowed
        if extra:
            raise SchemaError(f"Schema has unknown keys {sorted(extra)}; allowed: {sorted(allowed)}.")
        missing = {"name", "label_nl", "label_en", "privacy_unit", "unit_column", "max_rows_per_unit", "columns"} - set(
            data
        )
        if missing:
            raise SchemaError(f"Schema is missing {sorted(missing)}.")
        cols = data["columns"]
        if not isinstance(cols, list):
            raise SchemaError("Schema 'columns' must be a list of column objects.")
        return cls(
            name=data["name"],
            label_nl=data["label_nl"],
            label_en=data["label_en"],
            privacy_unit=cast(PrivacyUnit, data["privacy_unit"]),
            unit_column=data["unit_column"],
            max_rows_per_unit=data["max_rows_per_unit"],
            columns=tuple(Column.from_dict(c) for c in cols),
            primary_key=tuple(data.get("primary_key", ())),
            description=str(data.get("description", "")),
        )

    @classmethod
    def from_json(cls, text: str) -> TableSchema:
        """Parse JSON text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"Schema is not valid JSON: {exc}.") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> TableSchema:
        """Read a schema file; the error names the path."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise SchemaError(f"Cannot read schema file {str(p)!r}: {exc.strerror}. Check the path.") from None
        try:
            return cls.from_json(text)
        except SchemaError as exc:
            raise SchemaError(f"{p}: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path``."""
        p = Path(path)
        p.write_text(self.to_json(), encoding="utf-8")
        return p

    def select(self, names: Iterable[str]) -> tuple[Column, ...]:
        """Return the named columns, in the order given (each checked to exist)."""
        return tuple(self.column(n) for n in names)
