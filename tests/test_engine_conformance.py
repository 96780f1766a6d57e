"""DuckDB and Spark give the same exact aggregates for every query shape (the plan is compiled once per dialect).

Both engines read the same Parquet files in place. For each shape (plain, grouped, value filters, numeric
conditions, ``is null``, joins with and without the household bound biting, a join of two many-row tables,
per-household counts and sums, bins, derived bools, every aggregate kind) the exact per-cell statistics must agree:
rows, households, rows in and truncated exactly, sums and top contributions up to float summation order
(relative 1e-9), the sorted values of a quantile exactly. Spark runs ``local[2]`` (Java 17: ``make test`` installs
Debian's openjdk-17-jre-headless when ``java`` is missing); the session starts once for the module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_dp_tables import households_frame, households_schema, persons_frame, persons_schema

import sandbox as sb
import synthetic
from sandbox._private.shared.plan import Derived, Join
from sandbox._private.shared.query import AggregateQuery
from sandbox._private.shared.schema import TableSchema
from sandbox._private.vault.dp.aggregates import Catalog, exact_cells
from sandbox._private.vault.dp.tabledata import TableData

TABLES = ("households", "persons", "signals")
K = 3


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("pyspark", reason="pyspark is a dev dependency: `make venv` installs it")
    root = synthetic.write_population(tmp_path_factory.mktemp("conf") / "pop", 600, seed=4)
    schemas = {t: TableSchema.load(root / "schema" / f"{t}.json") for t in TABLES}
    extra = tmp_path_factory.mktemp("hand")
    households_frame(300).to_parquet(extra / "hh.parquet")  # nullable savings, ids in random order
    persons_frame(120).to_parquet(extra / "pp.parquet")  # households not contiguous in the file
    out: dict[str, Any] = {"schemas": schemas, "hand_schemas": {"hh": households_schema(), "pp": persons_schema()}}
    for engine in ("duckdb", "spark"):
        check = engine == "duckdb"  # the checks run on Spark once, for "hh" below (they cost Spark jobs)
        tables = {t: TableData.load(root / f"{t}.parquet", schemas[t], engine=engine, validate=check) for t in TABLES}
        out[engine] = Catalog(tables, dict.fromkeys(TABLES, "pop"))
        hand = {
            "hh": TableData.load(extra / "hh.parquet", households_schema(), engine=engine),
            "pp": TableData.load(extra / "pp.parquet", persons_schema(), engine=engine, validate=check),
        }
        out[f"hand_{engine}"] = Catalog(hand)
    return out


J = (Join("households"),)
N_LATE = Derived("n_late", sb.household_count("signals", where=sb.col("month") >= 7))
AMOUNT = Derived("amount_hh", sb.household_sum("signals", "amount", upper=3_000))
N_KIDS = Derived("n_kids", sb.household_count("persons", where=sb.col("age") < 18))
AGE = Derived("age_group", sb.cut("age", [18, 30, 45, 67, 105]))
OLD = Derived("over_67", sb.col("age") > 67)

SHAPES: dict[str, AggregateQuery] = {
    "count": AggregateQuery("households", "count", epsilon=1.0),
    "sum by 2": AggregateQuery("households", "sum", "disposable_income", epsilon=1.0, by=("household_type", "housing")),
    "mean value filter": AggregateQuery(
        "households", "mean", "n_creditors", epsilon=1.0, where={"housing": ["social_rent"]}
    ),
    "variance numeric": AggregateQuery("households", "variance", "total_debt", epsilon=1.0, where=sb.col("age") > 67),
    "quantile": AggregateQuery("households", "quantile", "disposable_income", epsilon=1.0, q=0.5, by=("urbanisation",)),
    "histogram": AggregateQuery("persons", "histogram", "age", epsilon=1.0, bins=7, by=("gender",)),
    "persons bounded": AggregateQuery("persons", "mean", "age", epsilon=1.0, by=("migration_background",)),
    "persons ⨝ households": AggregateQuery(
        "persons", "mean", "poverty", epsilon=1.0, by=("migration_background",), joins=J
    ),
    "children in poverty": AggregateQuery(
        "persons", "count", epsilon=1.0, by=("household_type",), where=(sb.col("age") < 18) & sb.col("poverty"), joins=J
    ),
    "signals ⨝ households": AggregateQuery(
        "signals",
        "sum",
        "amount",
        epsilon=1.0,
        by=("household_type",),
        where=sb.col("registered_problematic_debt") & sb.col("month").between(7, 12),
        joins=J,
    ),
    "persons ⨝ signals": AggregateQuery(
        "persons", "count", epsilon=1.0, by=("creditor_type",), where=sb.col("age") >= 18, joins=(Join("signals"),)
    ),
    "per-household count": AggregateQuery(
        "households", "mean", "n_late", epsilon=1.0, by=("household_type",), derived=(N_LATE,)
    ),
    "per-household sum and kids": AggregateQuery(
        "households", "sum", "amount_hh", epsilon=1.0, where=sb.col("n_kids") >= 1, derived=(AMOUNT, N_KIDS)
    ),
    "bins and derived bool": AggregateQuery(
        "households", "mean", "n_creditors", epsilon=1.0, by=("age_group", "over_67"), derived=(AGE, OLD)
    ),
    "join with derived": AggregateQuery(
        "persons", "quantile", "n_late", epsilon=1.0, q=0.9, by=("gender",), joins=J, derived=(N_LATE,)
    ),
}

HAND: dict[str, AggregateQuery] = {
    "is null": AggregateQuery("hh", "count", epsilon=1.0, by=("region",), where=sb.col("savings").isna()),
    "negated with nulls": AggregateQuery("hh", "sum", "savings", epsilon=1.0, where=~(sb.col("savings") > 10_000)),
    "shuffled persons, bound": AggregateQuery("pp", "sum", "income", epsilon=1.0, by=("gender", "age_band")),
    "shuffled persons ⨝ hh": AggregateQuery("pp", "count", epsilon=1.0, by=("employed",), joins=(Join("hh"),)),
}


def _same(a: Any, b: Any) -> None:
    assert np.array_equal(a.rows, b.rows) and np.array_equal(a.units, b.units)
    assert (a.rows_in, a.rows_truncated) == (b.rows_in, b.rows_truncated)
    for name in ("total", "centred", "squares", "abs_total", "top1", "top2"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-6, err_msg=name)
    if a.values is not None:
        assert all(np.array_equal(u, v) for u, v in zip(a.values, b.values, strict=True))


def _both(catalogs: dict[str, Any], query: AggregateQuery, prefix: str = "") -> Any:
    """The exact statistics on DuckDB, after checking that Spark's are the same."""
    rs = query.resolve(catalogs[f"{prefix}schemas"])
    k = min(K, rs.schema.max_rows_per_unit)
    duck = exact_cells(query, rs, catalogs[f"{prefix}duckdb"], k)
    _same(duck, exact_cells(query, rs, catalogs[f"{prefix}spark"], k))
    assert duck.rows_used > 0
    return duck


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_duckdb_and_spark_agree_on_every_shape(catalogs: dict[str, Any], name: str) -> None:
    _both(catalogs, SHAPES[name])


@pytest.mark.parametrize("name", sorted(HAND))
def test_duckdb_and_spark_agree_on_nulls_and_file_order(catalogs: dict[str, Any], name: str) -> None:
    duck = _both(catalogs, HAND[name], "hand_")
    if name.startswith("shuffled persons"):
        assert duck.rows_truncated > 0  # the bound bites, in file order, on both engines


def test_spark_is_never_imported_for_duckdb_datasets(tmp_path: Path) -> None:
    """The vault imports pyspark only for a dataset registered with engine 'spark' (checked in a fresh process)."""
    import subprocess
    import sys

    households_frame(50).to_parquet(tmp_path / "h.parquet")
    households_schema().save(tmp_path / "h.json")
    code = (
        "import sys\n"
        "from sandbox._private.shared.schema import TableSchema\n"
        "from sandbox._private.shared.query import AggregateQuery\n"
        "from sandbox._private.shared.policy import Policy\n"
        "from sandbox._private.vault.dp.engine import DPEngine\n"
        "from sandbox._private.vault.dp.tabledata import TableData\n"
        f"t = TableData.load({str(tmp_path / 'h.parquet')!r}, TableSchema.load({str(tmp_path / 'h.json')!r}))\n"
        "DPEngine(Policy()).answer(AggregateQuery('households', 'count', epsilon=1.0), t)\n"
        "assert 'pyspark' not in sys.modules, 'pyspark was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
