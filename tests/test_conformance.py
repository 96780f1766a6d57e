"""check_frame: every kind of mismatch is caught and named, with the offending count and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sandbox import Column, SchemaError, TableSchema, check_frame


def _schema(max_rows: int = 1, nullable: bool = False) -> TableSchema:
    return TableSchema(
        "t",
        "t",
        "t",
        "household",
        "hid",
        max_rows,
        (
            Column("hid", "id", "id", "id", lower=1, upper=100),
            Column("age", "int", "leeftijd", "age", lower=0, upper=105),
            Column("income", "float", "inkomen", "income", lower=0, upper=1e5, nullable=nullable),
            Column("poor", "bool", "arm", "poor"),
            Column("kind", "category", "soort", "kind", categories=("a", "b")),
        ),
        primary_key=("hid",) if max_rows == 1 else (),
    )


def _frame(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hid": np.arange(1, n + 1),
            "age": np.full(n, 40),
            "income": np.linspace(0, 1e5, n),
            "poor": np.zeros(n, dtype=bool),
            "kind": pd.Categorical(["a", "b"] * (n // 2) + ["a"] * (n % 2), categories=["a", "b"]),
        }
    )


def test_a_conforming_frame_passes() -> None:
    check_frame(_frame(), _schema())
    check_frame(_frame().assign(kind=lambda d: d["kind"].astype(str)), _schema())  # plain strings are fine


def test_missing_and_extra_columns() -> None:
    with pytest.raises(SchemaError, match=r"missing columns \['poor'\]: add them"):
        check_frame(_frame().drop(columns="poor"), _schema())
    with pytest.raises(SchemaError, match=r"extra columns \['nationality'\]: drop them"):
        check_frame(_frame().assign(nationality="nl"), _schema())


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("age", [40.5] * 5, r"column 'age' \(int\) has dtype float64; convert it to an integer dtype"),
        ("poor", [0, 1, 0, 1, 0], r"column 'poor' \(bool\) has dtype int64; convert it to a bool dtype"),
        ("kind", [1, 2, 1, 2, 1], r"column 'kind' \(category\) has dtype int64"),
        ("income", ["x"] * 5, r"column 'income' \(float\) has dtype"),
    ],
)
def test_wrong_dtype(column: str, values: list[object], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        check_frame(_frame().assign(**{column: values}), _schema())


def test_out_of_bounds_counts_values() -> None:
    df = _frame().assign(age=[40, 106, -1, 50, 200])
    with pytest.raises(
        SchemaError,
        match=r"column 'age': 3 values outside the public bounds \[0, 105\] "
        r"\(seen -1 to 200\); clip them",
    ):
        check_frame(df, _schema())


def test_infinite_float_is_out_of_bounds() -> None:
    with pytest.raises(SchemaError, match=r"column 'income': 1 values outside"):
        check_frame(_frame().assign(income=[1.0, 2.0, np.inf, 3.0, 4.0]), _schema())


def test_unknown_category() -> None:
    df = _frame().assign(kind=["a", "b", "c", "c", "zz"])
    with pytest.raises(
        SchemaError,
        match=r"column 'kind': 3 values are not a listed category \(for example "
        r"\['c', 'zz'\]\); allowed: \['a', 'b'\]",
    ):
        check_frame(df, _schema())


def test_nulls_only_where_allowed() -> None:
    df = _frame().assign(income=[1.0, np.nan, np.nan, 3.0, 4.0])
    with pytest.raises(SchemaError, match=r"column 'income': 2 missing values but the column is not nullable"):
        check_frame(df, _schema())
    check_frame(df, _schema(nullable=True))


def test_unit_contribution_and_primary_key() -> None:
    df = _frame().assign(hid=[1, 1, 1, 2, 3])
    with pytest.raises(SchemaError, match=r"1 units of 'hid' have more than max_rows_per_unit=2 rows \(up to 3\)"):
        check_frame(df, _schema(max_rows=2))
    with pytest.raises(SchemaError, match=r"have more than max_rows_per_unit=1|2 rows repeat the primary key"):
        check_frame(df, _schema())


def test_all_problems_reported_together() -> None:
    df = _frame().assign(age=[300] * 5, kind=["q"] * 5).drop(columns="poor")
    with pytest.raises(SchemaError, match=r"\(3 problems\).*missing columns.*'age'.*'kind'"):
        check_frame(df, _schema())


def test_not_a_frame() -> None:
    with pytest.raises(SchemaError, match="needs a pandas DataFrame, got list"):
        check_frame([1, 2], _schema())  # type: ignore[arg-type]
