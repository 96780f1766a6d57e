"""Small hand-made protected tables for the DP engine tests, and the tests of TableData itself.

Other ``test_dp_*`` modules import the builders from here. The person table has households of 1-6 persons, in
shuffled row order, so that sorting by household and the per-household bound (``k = 3`` under
:func:`engine_policy`) both matter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from sandbox._private.shared.errors import SchemaError
from sandbox._private.shared.policy import BudgetRules, ContributionRules, Policy
from sandbox._private.shared.schema import Column, TableSchema
from sandbox._private.vault.dp.tabledata import TableData

HOUSEHOLD_TYPES = ("single", "couple", "couple_children", "single_parent", "other")
REGIONS = ("north", "south", "west")  # "west" never occurs: an empty group
GENDERS = ("female", "male", "x")
AGE_BANDS = ("0-17", "18-64", "65+")
K = 3  # rows per household kept under engine_policy()


def _c(name: str, kind: str, **kw: Any) -> Column:
    return Column(name=name, kind=kind, label_nl=name, label_en=name, **kw)  # type: ignore[arg-type]


def households_schema() -> TableSchema:
    return TableSchema(
        name="households",
        label_nl="Huishoudens",
        label_en="Households",
        privacy_unit="household",
        unit_column="household_id",
        max_rows_per_unit=1,
        columns=(
            _c("household_id", "id", lower=1, upper=10_000_000),
            _c("household_type", "category", categories=HOUSEHOLD_TYPES),
            _c("region", "category", categories=REGIONS),
            _c("income", "float", lower=0, upper=200_000),
            _c("n_children", "int", lower=0, upper=10),
            _c("arrears", "bool"),
            _c("debt", "bool"),
            _c("debt_level", "category", categories=("none", "low", "high")),
            _c("nationality", "category", categories=("nl", "other")),
            _c("savings", "float", lower=0, upper=50_000, nullable=True),
        ),
    )


def persons_schema() -> TableSchema:
    return TableSchema(
        name="persons",
        label_nl="Personen",
        label_en="Persons",
        privacy_unit="household",
        unit_column="household_id",
        max_rows_per_unit=12,
        columns=(
            _c("household_id", "id", lower=1, upper=10_000_000),
            _c("person_id", "id", lower=1, upper=100_000_000),
            _c("gender", "category", categories=GENDERS),
            _c("age_band", "category", categories=AGE_BANDS),
            _c("income", "float", lower=-5_000, upper=150_000),
            _c("employed", "bool"),
        ),
    )


def households_frame(n: int = 1_500, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arrears = rng.random(n) < 0.3
    income = np.round(rng.gamma(4.0, 9_000.0, n).clip(0, 200_000), 2)
    debt = rng.random(n) < (0.05 + 0.45 * arrears + 0.2 * (income < 20_000))
    savings = np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0, 50_000, n))
    return pd.DataFrame(
        {
            "household_id": rng.permutation(np.arange(1, n + 1)) * 7,
            "household_type": rng.choice(HOUSEHOLD_TYPES, n, p=[0.35, 0.25, 0.25, 0.1, 0.05]),
            "region": rng.choice(REGIONS[:2], n),
            "income": income,
            "n_children": rng.integers(0, 5, n),
            "arrears": arrears,
            "debt": debt,
            "debt_level": np.where(debt, np.where(rng.random(n) < 0.4, "high", "low"), "none"),
            "nationality": rng.choice(("nl", "other"), n, p=[0.8, 0.2]),
            "savings": savings,
        }
    )


def persons_frame(n_households: int = 600, seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n_households)
    hh = np.repeat(np.arange(1, n_households + 1) * 11, sizes)
    n = hh.size
    frame = pd.DataFrame(
        {
            "household_id": hh,
            "person_id": np.arange(1, n + 1),
            "gender": rng.choice(GENDERS[:2], n),
            "age_band": rng.choice(AGE_BANDS, n),
            "income": np.round(rng.uniform(-5_000, 150_000, n), 2),
            "employed": rng.random(n) < 0.6,
        }
    )
    return frame.iloc[rng.permutation(n)].reset_index(drop=True)  # households are not contiguous on disk


def engine_policy(eps_max: float = 1e6, k: int = K) -> Policy:
    return Policy(
        budget=BudgetRules(epsilon_per_dataset=max(10.0, eps_max), epsilon_per_query_max=eps_max),
        contribution=ContributionRules(max_rows_per_unit=k),
    )


def truncate(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Reference household bound: the first k rows of each household in source order."""
    return frame.groupby("household_id", sort=False).head(k)


# -- tests of TableData -----------------------------------------------------------------------------------------


def test_codes_follow_schema_order_and_columns_come_in_unit_then_file_order() -> None:
    frame = persons_frame()
    t = TableData.from_frame(frame, persons_schema())
    assert t.n_rows == len(frame)
    assert t.n_units == frame.household_id.nunique()
    sizes = frame.groupby("household_id").size()
    assert t.profile.max_rows == sizes.max() and t.profile.contiguous is False  # shuffled: households interleave
    order = np.argsort(frame.household_id.to_numpy(), kind="stable")
    genders = np.asarray(GENDERS)[t.codes["gender"]]
    assert np.array_equal(genders, frame.gender.to_numpy()[order])
    assert np.array_equal(t.numeric("employed"), frame.employed.to_numpy()[order].astype(float))
    assert not t.codes["gender"].flags.writeable
    sorted_frame = frame.iloc[order]
    assert TableData.from_frame(sorted_frame, persons_schema()).profile.contiguous is True


def test_a_unit_with_more_rows_than_the_schema_allows_is_refused_with_counts() -> None:
    frame = persons_frame(50)
    big = frame.iloc[[0] * 13].assign(person_id=np.arange(10**7, 10**7 + 13))
    with pytest.raises(SchemaError, match=r"1 units of 'household_id' have more than max_rows_per_unit=12 rows"):
        TableData.from_frame(pd.concat([frame, big]), persons_schema())


def test_parquet_and_csv_load_to_the_same_arrays(tmp_path: Any) -> None:
    frame = households_frame(200)
    schema = households_schema()
    frame.to_parquet(tmp_path / "h.parquet")
    frame.to_csv(tmp_path / "h.csv", index=False)
    a = TableData.load(tmp_path / "h.parquet", schema)
    b = TableData.load(tmp_path / "h.csv", schema)
    c = TableData.from_frame(pl.from_pandas(frame), schema)
    assert a.fingerprint() == b.fingerprint() == c.fingerprint()
    assert np.isnan(a.values["savings"]).sum() == frame.savings.isna().sum()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda f: f.assign(income=f.income.where(f.index != 3, 250_000.0)), r"1 values lie outside the public bounds"),
        (lambda f: f.assign(region=f.region.where(f.index != 5, "east")), r"1 values are not among the schema's 3"),
        (lambda f: f.assign(income=f.income.where(f.index > 1, np.nan)), r"2 missing values.*not nullable"),
        (lambda f: f.drop(columns=["arrears"]), r"lacks schema columns \['arrears'\]"),
        (lambda f: f.assign(secret=1), r"columns \['secret'\] that the schema does not list"),
        (lambda f: f.assign(n_children=f.n_children + 0.5), r"int in the schema but has fractional"),
    ],
)
def test_data_that_breaks_the_schema_is_refused_with_counts_not_values(mutate: Any, match: str) -> None:
    frame = mutate(households_frame(50))
    with pytest.raises(SchemaError, match=match) as info:
        TableData.from_frame(frame, households_schema())
    assert "250000" not in str(info.value) and "east" not in str(info.value)


def test_unreadable_file_names_the_fix(tmp_path: Any) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(SchemaError, match=r"neither \.parquet nor \.csv"):
        TableData.load(bad, households_schema())
