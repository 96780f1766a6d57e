"""dummy_frame: schema-shaped rows from the schema alone that pass check_frame, for any valid schema."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox import Column, SchemaError, TableSchema, check_frame, dummy_frame
from synthetic import population_schemas


@pytest.mark.parametrize("name", ["households", "persons", "signals"])
def test_population_schemas(name: str) -> None:
    schema = population_schemas()[name]
    df = dummy_frame(schema, 3_000, seed=1)
    assert list(df.columns) == list(schema.names) and len(df) == 3_000
    check_frame(df, schema)
    for col in schema.categorical():
        if col.kind == "category":
            assert list(df[col.name].cat.categories) == list(col.categories)


def test_signals_dummy_uses_units_up_to_their_bound() -> None:
    schema = population_schemas()["signals"]
    df = dummy_frame(schema, 20_000, seed=3)
    per_unit = df.groupby("household_id").size()
    assert per_unit.max() <= schema.max_rows_per_unit and per_unit.max() > 24
    assert not df.duplicated(list(schema.primary_key)).any()


def test_seed_reproduces_and_none_varies() -> None:
    schema = population_schemas()["households"]
    pd.testing.assert_frame_equal(dummy_frame(schema, 100, seed=7), dummy_frame(schema, 100, seed=7))
    assert not dummy_frame(schema, 100).equals(dummy_frame(schema, 100))


def test_zero_rows_keep_dtypes() -> None:
    schema = population_schemas()["persons"]
    df = dummy_frame(schema, 0, seed=1)
    assert len(df) == 0 and list(df.columns) == list(schema.names)
    check_frame(df, schema)


def test_bad_n() -> None:
    with pytest.raises(SchemaError, match=r"n must be a whole number >= 0, got -1"):
        dummy_frame(population_schemas()["households"], -1)


def test_too_few_ids_for_unique_key() -> None:
    schema = TableSchema(
        "t",
        "t",
        "t",
        "household",
        "hid",
        1,
        (Column("hid", "id", "id", "id", lower=1, upper=10),),
        primary_key=("hid",),
    )
    with pytest.raises(SchemaError, match=r"too few ids for 11 dummy rows"):
        dummy_frame(schema, 11)


_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)


@st.composite
def columns(draw: st.DrawFn, name: str) -> Column:
    kind = draw(st.sampled_from(["int", "float", "bool", "category", "id"]))
    nullable = draw(st.booleans())
    if kind in ("int", "id"):
        lo = draw(st.integers(-1000, 1000))
        return Column(name, kind, name, name, lower=lo, upper=lo + draw(st.integers(0, 50)), nullable=nullable)
    if kind == "float":
        lo = draw(st.floats(-1e6, 1e6))
        return Column(name, kind, name, name, lower=lo, upper=lo + draw(st.floats(0, 1e6)), nullable=nullable)
    if kind == "bool":
        return Column(name, kind, name, name, nullable=nullable)
    cats = draw(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=6, unique=True))
    return Column(name, kind, name, name, categories=tuple(cats), nullable=nullable)


@st.composite
def schemas(draw: st.DrawFn) -> TableSchema:
    names = draw(st.lists(_names, min_size=1, max_size=6, unique=True).filter(lambda n: "unit" not in n))
    cols = [draw(columns(n)) for n in names]
    max_rows = draw(st.integers(1, 5))
    unit = Column("unit", "id", "unit", "unit", lower=1, upper=10**6)
    key: tuple[str, ...] = ()
    if max_rows == 1:
        key = ("unit",)
    elif draw(st.booleans()):
        finite = [c.name for c in cols if c.kind in ("category", "bool") and not c.nullable]
        if finite:
            key = ("unit", finite[0])
    return TableSchema("random", "r", "r", "household", "unit", max_rows, (unit, *cols), primary_key=key)


@settings(max_examples=60, deadline=None)
@given(schema=schemas(), n=st.integers(0, 300), seed=st.integers(0, 2**32))
def test_random_schemas_pass_check_frame(schema: TableSchema, n: int, seed: int) -> None:
    df = dummy_frame(schema, n, seed=seed)
    assert len(df) == n
    check_frame(df, schema)
    for col in schema.columns:
        if not col.nullable:
            assert not df[col.name].isna().any()
