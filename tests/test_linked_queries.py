"""Linked questions against their exact pandas reference at epsilon = 1e6: joins, per-household values, numeric
conditions and bins, on a generated population, using the four questions of issue 12.

At epsilon = 1e6 the noise is tiny but not zero: each comparison allows 25 noise standard deviations (as reported
by the engine; P(fail) < 1e-10 per cell) plus float rounding; counts are compared exactly. The reference applies
the same household bound in pandas (the first k rows of each household in file order, in a join in the order of
the base table and then the joined one), and the private per-cell statistics (households, top contributions) are
compared with pandas exactly.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

import sandbox as sb
import synthetic
from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.plan import Derived, Join
from sandbox._private.shared.policy import BudgetRules, ContributionRules, Policy
from sandbox._private.shared.query import AggregateQuery
from sandbox._private.shared.schema import TableSchema
from sandbox._private.vault.dp.engine import Catalog, DPEngine
from sandbox._private.vault.dp.tabledata import TableData

EPS = 1e6
K = 4  # rows per household under ENGINE's policy: persons (up to 7) and signals (up to 48) are both bounded
ENGINE = DPEngine(
    Policy(
        budget=BudgetRules(epsilon_per_dataset=1e7, epsilon_per_query_max=EPS),
        contribution=ContributionRules(max_rows_per_unit=K),
    )
)
TABLES = ("households", "persons", "signals")


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = synthetic.write_population(tmp_path_factory.mktemp("linked") / "pop", 4_000, seed=12)
    schemas = {t: TableSchema.load(root / "schema" / f"{t}.json") for t in TABLES}
    tables = {t: TableData.load(root / f"{t}.parquet", schemas[t]) for t in TABLES}
    frames = {t: pd.read_parquet(root / f"{t}.parquet") for t in TABLES}
    for f in frames.values():  # plain strings, like the engine's group keys
        for c in f.columns:
            if isinstance(f[c].dtype, pd.CategoricalDtype):
                f[c] = f[c].astype(str)
    return {"catalog": Catalog(tables, dict.fromkeys(TABLES, "pop")), "frames": frames, "schemas": schemas}


def _answer(population: dict[str, Any], query: AggregateQuery) -> Any:
    return ENGINE.answer(query, population["catalog"])


def _rows(answer: Any, by: tuple[str, ...]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[b] for b in by): r for r in answer.public["rows"]}


def _close(dp: float, exact: float, noise_scale: float) -> bool:
    return abs(dp - exact) <= 25 * noise_scale + 1e-9 * max(1.0, abs(exact))


def _bounded(frame: pd.DataFrame, k: int = K) -> pd.DataFrame:
    """The first k rows of each household in the frame's order."""
    return frame.groupby("household_id", sort=False).head(k)


def _join(left: pd.DataFrame, right: pd.DataFrame, suffix: str = "_households") -> pd.DataFrame:
    """Inner join on the household key in the left table's order (right's clashing columns get the suffix)."""
    clash = [c for c in right.columns if c in left.columns and c != "household_id"]
    return left.merge(right.rename(columns={c: c + suffix for c in clash}), on="household_id", how="inner", sort=False)


def _check_mean(answer: Any, ref: pd.DataFrame, by: tuple[str, ...], column: str) -> None:
    rows = _rows(answer, by)
    means = ref.groupby(list(by))[column].mean() if by else pd.Series({(): ref[column].mean()})
    assert len(means) > 1 or not by
    for key, exact in means.items():
        row = rows[key if isinstance(key, tuple) else (key,)]
        assert _close(row["value"], float(exact), row["noise_scale"]), (key, row, exact)


# -- question 1: share of persons in poverty by migration background (persons ⨝ households) -----------------------


def test_share_of_persons_in_poverty_by_migration_background(population: dict[str, Any]) -> None:
    f = population["frames"]
    q = AggregateQuery(
        "persons", "mean", "poverty", epsilon=EPS, by=("migration_background",), joins=(Join("households"),)
    )
    answer = _answer(population, q)
    # persons has at most 7 rows per household and households 1: the join has at most 7, of which k are kept
    assert answer.public["rows_per_unit"] == K
    ref = _join(_bounded(f["persons"]), f["households"][["household_id", "poverty", "migration_background"]])
    _check_mean(answer, ref.assign(poverty=ref.poverty.astype(float)), ("migration_background",), "poverty")
    cells = {tuple(c["key"]): c for c in answer.private["cells"]}
    for mb, sub in ref.groupby("migration_background"):
        assert cells[(mb,)]["rows"] == len(sub)
        assert cells[(mb,)]["units"] == sub.household_id.nunique()  # households, not persons
        per_hh = sub.groupby("household_id").poverty.sum().sort_values(ascending=False).to_numpy()
        assert cells[(mb,)]["top1"] == per_hh[0] and cells[(mb,)]["top2"] == per_hh[1]
    # the household's own migration background is there too, under the join's suffix
    by_hh = _answer(
        population,
        AggregateQuery(
            "persons", "count", epsilon=EPS, by=("migration_background_households",), joins=(Join("households"),)
        ),
    )
    counts = ref.groupby("migration_background_households").size()
    assert {r["migration_background_households"]: r["value"] for r in by_hh.public["rows"]} == counts.to_dict()


# -- question 2: children in poverty -----------------------------------------------------------------------------


def test_children_in_poverty(population: dict[str, Any]) -> None:
    f = population["frames"]
    ref = _join(_bounded(f["persons"]), f["households"][["household_id", "poverty", "household_type"]])
    children = ref[ref.age < 18]
    share = _answer(
        population,
        AggregateQuery(
            "persons", "mean", "poverty", epsilon=EPS, where=sb.col("age") < 18, joins=(Join("households"),)
        ),
    )
    row = share.public["rows"][0]
    assert _close(row["value"], float(children.poverty.mean()), row["noise_scale"])
    count = _answer(
        population,
        AggregateQuery(
            "persons",
            "count",
            epsilon=EPS,
            by=("household_type",),
            where=(sb.col("age") < 18) & sb.col("poverty"),
            joins=(Join("households"),),
        ),
    )
    expected = children[children.poverty].groupby("household_type").size()
    got = {r["household_type"]: r["value"] for r in count.public["rows"]}
    assert {k: v for k, v in got.items() if v} == expected.to_dict()
    assert count.private["rows_in"] == len(_join(f["persons"], f["households"][["household_id"]]))


# -- question 3: arrears signals in the months before a registration of problematic debt, by household type -----


def test_signals_before_registration_by_household_type(population: dict[str, Any]) -> None:
    f = population["frames"]
    hh = f["households"][["household_id", "household_type", "registered_problematic_debt"]]
    # signals ⨝ households: up to 48 rows per household, k = 2 kept (file order) before the filter
    engine = DPEngine(
        Policy(
            budget=BudgetRules(epsilon_per_dataset=1e7, epsilon_per_query_max=EPS),
            contribution=ContributionRules(max_rows_per_unit=2),
        )
    )
    q = AggregateQuery(
        "signals",
        "count",
        epsilon=EPS,
        by=("household_type", "creditor_type"),
        where=sb.col("registered_problematic_debt") & sb.col("month").between(7, 12),
        joins=(Join("households"),),
    )
    answer = engine.answer(q, population["catalog"])
    ref = _join(_bounded(f["signals"], 2), hh)
    sub = ref[ref.registered_problematic_debt & ref.month.between(7, 12)]
    expected = sub.groupby(["household_type", "creditor_type"]).size()
    got = {k: r["value"] for k, r in _rows(answer, ("household_type", "creditor_type")).items() if r["value"]}
    assert got == expected.to_dict() and sum(got.values()) > 10
    assert answer.private["rows_truncated"] == len(f["signals"]) - len(_bounded(f["signals"], 2))
    assert answer.private["rows_truncated"] > 0  # the bound bites
    # the same question per household: signals in the second half-year as a derived column of households
    n_late = sb.household_count("signals", where=sb.col("month") >= 7)
    q2 = AggregateQuery(
        "households",
        "mean",
        "n_late",
        epsilon=EPS,
        by=("household_type",),
        where=sb.col("registered_problematic_debt"),
        derived=(Derived("n_late", n_late),),
    )
    per_hh = f["signals"][f["signals"].month >= 7].groupby("household_id").size()
    href = f["households"].assign(n_late=f["households"].household_id.map(per_hh).fillna(0).astype(float))
    _check_mean(_answer(population, q2), href[href.registered_problematic_debt], ("household_type",), "n_late")


# -- question 4: the number of creditors of households whose main earner is over 67 --------------------------------


def test_creditors_of_households_whose_main_earner_is_over_67(population: dict[str, Any]) -> None:
    h = population["frames"]["households"]
    old = h[h.age > 67]
    for kind, ref in (("mean", float(old.n_creditors.mean())), ("sum", float(old.n_creditors.sum()))):
        row = _answer(
            population, AggregateQuery("households", kind, "n_creditors", epsilon=EPS, where=sb.col("age") > 67)
        ).public["rows"][0]
        assert _close(row["value"], ref, row["noise_scale"]), (kind, row, ref)
    # asked through persons: main earners over 67, one row per household (role filter), household's creditors
    q = AggregateQuery(
        "persons",
        "mean",
        "n_creditors",
        epsilon=EPS,
        where=(sb.col("role") == "main_earner") & (sb.col("age") > 67),
        joins=(Join("households"),),
    )
    p = _join(_bounded(population["frames"]["persons"]), h[["household_id", "n_creditors"]])
    row = _answer(population, q).public["rows"][0]
    exact = float(p[(p.role == "main_earner") & (p.age > 67)].n_creditors.mean())
    assert _close(row["value"], exact, row["noise_scale"])


# -- bins, derived sums, numeric conditions ------------------------------------------------------------------------


@pytest.mark.parametrize("right", [False, True])
def test_bins_with_public_edges_equal_pandas_cut(population: dict[str, Any], right: bool) -> None:
    h = population["frames"]["households"]
    edges = [18, 30, 45, 67, 105]
    q = AggregateQuery(
        "households",
        "mean",
        "n_creditors",
        epsilon=EPS,
        by=("age_group",),
        derived=(Derived("age_group", sb.cut("age", edges, right=right)),),
    )
    answer = _answer(population, q)
    cut = pd.cut(h.age, edges, right=right, include_lowest=True)
    if not right:  # pandas keeps [67, 105) open at 105; ours closes the last bin
        cut = pd.cut(h.age.clip(upper=104.5), edges, right=False)
    labels = [r["age_group"] for r in answer.public["rows"]]
    assert labels == (
        ["[18, 30)", "[30, 45)", "[45, 67)", "[67, 105]"]
        if not right
        else ["[18, 30]", "(30, 45]", "(45, 67]", "(67, 105]"]
    )
    means = h.groupby(cut, observed=False).n_creditors.mean().to_numpy()
    for row, exact in zip(answer.public["rows"], means, strict=True):
        assert _close(row["value"], float(exact), row["noise_scale"])


def test_per_household_sum_with_a_clip_and_a_histogram_of_a_derived_count(population: dict[str, Any]) -> None:
    f = population["frames"]
    s, h = f["signals"], f["households"]
    total = sb.household_sum("signals", "amount", where=sb.col("creditor_type") != "energy", upper=5_000)
    q = AggregateQuery(
        "households",
        "mean",
        "arrears_amount",
        epsilon=EPS,
        by=("housing",),
        derived=(Derived("arrears_amount", total),),
    )
    per_hh = s[s.creditor_type != "energy"].groupby("household_id").amount.sum()
    ref = h.assign(arrears_amount=h.household_id.map(per_hh).fillna(0.0).clip(upper=5_000))
    _check_mean(_answer(population, q), ref, ("housing",), "arrears_amount")
    hist = AggregateQuery(
        "households",
        "histogram",
        "n_sig",
        epsilon=EPS,
        bins=4,
        derived=(Derived("n_sig", sb.household_count("signals", upper=8)),),
    )
    counts = h.household_id.map(s.groupby("household_id").size()).fillna(0).clip(upper=8)
    expected, _ = np.histogram(counts, bins=np.linspace(0, 8, 5))
    assert [r["value"] for r in _answer(population, hist).public["rows"]] == expected.tolist()


def test_numeric_conditions_and_their_boolean_combinations(population: dict[str, Any]) -> None:
    p = population["frames"]["persons"]
    bp = _bounded(p)
    cases = [
        (sb.col("age").between(18, 66), bp.age.between(18, 66)),
        ((sb.col("age") < 18) | (sb.col("age") >= 67), (bp.age < 18) | (bp.age >= 67)),
        (~(sb.col("age") <= 30) & (sb.col("gender") == "female"), ~(bp.age <= 30) & (bp.gender == "female")),
        (sb.col("age").isin([0, 1, 2]) | sb.col("age").isna(), bp.age.isin([0, 1, 2])),
        (sb.col("age") != 40, bp.age != 40),
    ]
    for cond, mask in cases:
        got = _answer(population, AggregateQuery("persons", "count", epsilon=EPS, where=cond)).public["rows"][0][
            "value"
        ]
        assert got == int(mask.sum()), cond


def test_is_null_on_a_nullable_column_and_a_derived_bool_as_group_and_filter() -> None:
    from test_dp_tables import households_frame, households_schema

    frame = households_frame()
    table = TableData.from_frame(frame, households_schema())
    engine = DPEngine(Policy(budget=BudgetRules(epsilon_per_dataset=1e7, epsilon_per_query_max=EPS)))
    missing = engine.answer(AggregateQuery("households", "count", epsilon=EPS, where=sb.col("savings").isna()), table)
    assert missing.public["rows"][0]["value"] == int(frame.savings.isna().sum()) > 0
    low = engine.answer(AggregateQuery("households", "count", epsilon=EPS, where=~(sb.col("savings") >= 1_000)), table)
    assert low.public["rows"][0]["value"] == int((~(frame.savings >= 1_000)).sum())  # missing savings pass the ~
    q = AggregateQuery(
        "households",
        "count",
        epsilon=EPS,
        by=("low_income",),
        where=sb.col("low_income") & sb.col("arrears"),
        derived=(Derived("low_income", sb.col("income") < 20_000),),
    )
    rows = {r["low_income"]: r["value"] for r in engine.answer(q, table).public["rows"]}
    assert rows == {False: 0, True: int(((frame.income < 20_000) & frame.arrears).sum())}


# -- bad input: refused before anything is computed, naming the fix -------------------------------------------------


@pytest.mark.parametrize(
    ("query", "match"),
    [
        (dict(joins=(Join("households", on="person_id"),)), r"joined only on the privacy unit's key 'household_id'"),
        (dict(joins=(Join("persons"),)), r"'persons' is already in the query; join each table once"),
        (dict(joins=(Join("nowhere"),)), r"there is no dataset 'nowhere'"),
        (dict(where=sb.col("gender") < 3), r"'<' orders numbers, but 'gender' is category; compare it with =="),
        (dict(where=sb.col("age") == "old"), r"'age' is a number \(int\); compare it with a number"),
        (dict(where=sb.col("person_id") > 5), r"'person_id' is an id column; ids link tables and are never filtered"),
        (
            dict(derived=(Derived("band", sb.cut("age", [0, 18, 120])),)),
            r"bin edges \[120.0\] lie outside the public bounds \[0, 105\]",
        ),
        (
            dict(derived=(Derived("band", sb.cut("gender", [0, 1])),)),
            r"bin needs a numeric column, but 'gender' is category",
        ),
        (dict(derived=(Derived("age", sb.col("age") > 3),)), r"derived column 'age' clashes with a column"),
        (
            dict(derived=(Derived("n", sb.household_count("signals", where=sb.col("month") > "may")),)),
            r"'month' is a number",
        ),
    ],
)
def test_bad_linked_queries_are_refused_with_the_fix(
    population: dict[str, Any], query: dict[str, Any], match: str
) -> None:
    q = AggregateQuery("persons", "count", epsilon=1.0, **query)
    with pytest.raises(QueryError, match=match):
        ENGINE.cost(q, population["catalog"])
    with pytest.raises(QueryError, match=match):
        ENGINE.answer(q, population["catalog"])


def test_a_join_with_a_table_of_another_population_is_refused(population: dict[str, Any]) -> None:
    cat = population["catalog"]
    other = Catalog(cat.tables, {**cat.populations, "households": "another"})
    q = AggregateQuery("persons", "count", epsilon=1.0, joins=(Join("households"),))
    with pytest.raises(QueryError, match=r"'households' belongs to population 'another', but 'persons' to 'pop'"):
        ENGINE.cost(q, other)
    d = AggregateQuery("persons", "count", epsilon=1.0, derived=(Derived("n", sb.household_count("households")),))
    with pytest.raises(QueryError, match=r"a query links only the tables of one population"):
        ENGINE.cost(d, other)


# -- equivalent questions share a canonical key ---------------------------------------------------------------------


def test_equivalent_linked_questions_share_one_key(population: dict[str, Any]) -> None:
    schemas = population["schemas"]

    def key(**kw: Any) -> str:
        return AggregateQuery(
            "persons", "mean", "poverty", epsilon=0.5, joins=(Join("households"),), **kw
        ).canonical_key(schemas)

    assert key(where=(sb.col("age") < 18)) == key(where=sb.col("age") <= 17) == key(where=~(sb.col("age") >= 18))
    assert key(where=sb.col("age").between(18, 64)) == key(where=(sb.col("age") >= 18) & (sb.col("age") < 65))
    assert key(where=sb.col("gender") == "female") == key(where={"gender": ["female"]})
    assert key(where=sb.col("age") >= 0) == key()  # the schema's own bound filters nothing
    assert key(where=sb.col("child"), derived=(Derived("child", sb.col("age") < 18),)) == key(where=sb.col("age") < 18)
    unused = (Derived("n", sb.household_count("signals")),)
    assert key(derived=unused) == key()  # a derived column the question does not use changes nothing
    assert key(where=sb.col("age") < 18) != key(where=sb.col("age") < 19)
    explicit = AggregateQuery(
        "persons", "mean", "poverty", epsilon=0.5, joins=(Join("households", "household_id", "_households"),)
    )
    assert explicit.canonical_key(schemas) == key()
    hh = AggregateQuery("households", "count", epsilon=0.5, where={"household_type": ["single"]})
    assert hh.canonical_form(schemas)["format"] == "sandbox.query/1"  # first-format shapes keep their keys
    assert math.isfinite(len(key()))
