from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox import Column, SchemaError, TableSchema


def _schema(**over: object) -> TableSchema:
    base: dict[str, object] = dict(
        name="households",
        label_nl="Huishoudens",
        label_en="Households",
        privacy_unit="household",
        unit_column="household_id",
        max_rows_per_unit=1,
        columns=(
            Column("household_id", "id", "Huishouden", "Household", lower=0, upper=10**9),
            Column("income", "float", "Inkomen", "Income", lower=0, upper=250_000),
            Column("housing", "category", "Woning", "Housing", categories=("owner", "social_rent")),
            Column("poverty", "bool", "Arm", "Poor"),
        ),
        primary_key=("household_id",),
    )
    base.update(over)
    return TableSchema(**base)  # type: ignore[arg-type]


def test_round_trip_json(tmp_path: Path) -> None:
    s = _schema()
    p = s.save(tmp_path / "s.json")
    back = TableSchema.load(p)
    assert back == s
    assert back.sha256 == s.sha256
    assert json.loads(p.read_text())["format"] == "sandbox.schema/1"


def test_group_keys_come_from_schema() -> None:
    s = _schema()
    assert s.group_keys("housing") == ("owner", "social_rent")
    assert s.group_keys("poverty") == (False, True)
    with pytest.raises(SchemaError, match="not a category or bool"):
        s.group_keys("income")


def test_missing_bounds_refused() -> None:
    with pytest.raises(SchemaError, match="has no bounds"):
        Column("income", "float", "Inkomen", "Income")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(lower=5, upper=1), "lower <= upper"),
        (dict(lower=0, upper=float("inf")), "finite"),
    ],
)
def test_bad_bounds(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        Column("income", "float", "Inkomen", "Income", **kwargs)


def test_unknown_column_lists_columns() -> None:
    with pytest.raises(SchemaError, match="its columns are: household_id, income"):
        _schema().column("nationality")


def test_unknown_keys_refused() -> None:
    d = _schema().to_dict()
    d["columns"][1]["secret_bounds_from_data"] = True
    with pytest.raises(SchemaError, match="unknown keys"):
        TableSchema.from_dict(d)


def test_unit_column_must_be_id() -> None:
    with pytest.raises(SchemaError, match="must have kind 'id'"):
        _schema(unit_column="income")


def test_duplicate_category_refused() -> None:
    with pytest.raises(SchemaError, match="twice"):
        Column("housing", "category", "Woning", "Housing", categories=("owner", "owner"))


@given(
    cats=st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6, unique=True),
    lo=st.integers(-1000, 1000),
    width=st.integers(0, 1000),
)
def test_round_trip_property(cats: list[str], lo: int, width: int) -> None:
    s = _schema(
        columns=(
            Column("household_id", "id", "H", "H", lower=0, upper=10),
            Column("x", "int", "X", "X", lower=lo, upper=lo + width),
            Column("c", "category", "C", "C", categories=tuple(cats)),
        )
    )
    assert TableSchema.from_json(s.to_json()) == s


def test_category_labels_are_optional_aligned_and_round_trip() -> None:
    from sandbox._private.shared.schema import Column

    col = Column(
        "tenure",
        "category",
        "woonsituatie",
        "tenure",
        categories=("owner", "renter"),
        category_labels_nl=("eigenaar", "huurder"),
        category_labels_en=("owner", "tenant"),
    )
    assert col.category_label("renter") == "huurder" and col.category_label("renter", "en") == "tenant"
    assert col.category_label("unknown") == "unknown"
    assert Column.from_dict(col.to_dict()) == col
    bare = Column("x", "category", "x", "x", categories=("a", "b"))
    assert "category_labels_nl" not in bare.to_dict() and bare.category_label("a") == "a"
    with pytest.raises(SchemaError, match=r"has 1 category_labels_nl for 2 categories; give one label per category"):
        Column("x", "category", "x", "x", categories=("a", "b"), category_labels_nl=("a",))
