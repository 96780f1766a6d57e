"""The neighbouring populations of the harness: D, and D' = D plus one household that is unique everywhere.

D is a small population in the generator's layout (``households``, ``persons``, ``signals`` + ``schema/``). In D
one category of every category (and bool) column is empty, and one nullable column is empty altogether. The lone
household :data:`LONE` of D' takes exactly those values: it is the only household of its type, urbanisation,
migration background, gender, disability, debt status and eviction status, the only one with savings recorded,
and its numbers sit at the schema bounds (income, savings and household size at the top; its eight persons at
the oldest age and highest income, with the only lodger). Every count restricted to its categories is 0 on D and
1 on D'; every model of ``eviction`` or ``debt_status`` has a class only that household has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sandbox._private.shared.schema import Column, TableSchema

__all__ = ["LONE", "LONE_PERSON", "CATEGORY_WHERE", "write_neighbours", "schemas"]

HOUSEHOLD_TYPES = ("single", "couple", "couple_children", "single_parent", "institutional")
URBANISATION = ("very_strong", "strong", "moderate", "little", "none")
MIGRATION = ("dutch", "western", "non_western", "unknown")
GENDERS = ("female", "male", "x")
DEBT_STATUS = ("none", "light", "severe", "lone")
ROLES = ("head", "partner", "child", "lodger")
INCOME_MAX, SAVINGS_MAX = 200_000.0, 500_000.0
LONE_ID = 999_999_937

#: The lone household of D' (its row of ``households``).
LONE: dict[str, Any] = {
    "household_id": LONE_ID,
    "household_type": "institutional",
    "urbanisation": "none",
    "migration_background": "unknown",
    "gender": "x",
    "disability": True,
    "debt_status": "lone",
    "eviction": True,
    "arrears": True,
    "income": INCOME_MAX,
    "savings": SAVINGS_MAX,
    "n_persons": 8,
}
#: Its persons: eight of them at the top of every bound, one of them the only lodger.
LONE_PERSON: dict[str, Any] = {"household_id": LONE_ID, "age": 110, "income": INCOME_MAX}
#: ``where`` restricting a household query to the lone household's categories (0 households in D, 1 in D').
CATEGORY_WHERE: dict[str, list[Any]] = {
    c: [LONE[c]]
    for c in ("household_type", "urbanisation", "migration_background", "gender", "disability", "debt_status")
}


def _c(name: str, kind: str, **kw: Any) -> Column:
    return Column(name=name, kind=kind, label_nl=name, label_en=name, **kw)  # type: ignore[arg-type]


def schemas() -> dict[str, TableSchema]:
    """The public schemas of the three tables (the same for D and D')."""
    households = TableSchema(
        name="households", label_nl="Huishoudens", label_en="Households", privacy_unit="household",
        unit_column="household_id", max_rows_per_unit=1, primary_key=("household_id",),
        columns=(
            _c("household_id", "id", lower=1, upper=1_000_000_000),
            _c("household_type", "category", categories=HOUSEHOLD_TYPES),
            _c("urbanisation", "category", categories=URBANISATION),
            _c("migration_background", "category", categories=MIGRATION),
            _c("gender", "category", categories=GENDERS),
            _c("disability", "bool"),
            _c("debt_status", "category", categories=DEBT_STATUS),
            _c("eviction", "bool"),
            _c("arrears", "bool"),
            _c("income", "float", lower=0.0, upper=INCOME_MAX),
            _c("savings", "float", lower=0.0, upper=SAVINGS_MAX, nullable=True),
            _c("n_persons", "int", lower=1, upper=8),
        ),
    )  # fmt: skip
    persons = TableSchema(
        name="persons", label_nl="Personen", label_en="Persons", privacy_unit="household",
        unit_column="household_id", max_rows_per_unit=8, primary_key=("person_id",),
        columns=(
            _c("person_id", "id", lower=1, upper=1_000_000_000),
            _c("household_id", "id", lower=1, upper=1_000_000_000),
            _c("role", "category", categories=ROLES),
            _c("age", "int", lower=0, upper=110),
            _c("income", "float", lower=0.0, upper=INCOME_MAX),
        ),
    )  # fmt: skip
    signals = TableSchema(
        name="signals", label_nl="Signalen", label_en="Signals", privacy_unit="household",
        unit_column="household_id", max_rows_per_unit=12,
        columns=(
            _c("household_id", "id", lower=1, upper=1_000_000_000),
            _c("month", "int", lower=1, upper=12),
            _c("arrears_energy", "bool"),
        ),
    )  # fmt: skip
    return {"households": households, "persons": persons, "signals": signals}


def _d_frames(n: int, seed: int) -> dict[str, pd.DataFrame]:
    rng = np.random.Generator(np.random.SFC64(seed))
    ids = np.arange(1, n + 1, dtype=np.int64) * 7
    n_persons = rng.integers(1, 6, n)
    hh = pd.DataFrame(
        {
            "household_id": ids,
            "household_type": rng.choice(HOUSEHOLD_TYPES[:-1], n),
            "urbanisation": rng.choice(URBANISATION[:-1], n),
            "migration_background": rng.choice(MIGRATION[:-1], n, p=[0.6, 0.15, 0.25]),
            "gender": rng.choice(GENDERS[:-1], n),
            "disability": np.zeros(n, dtype=bool),
            "debt_status": rng.choice(DEBT_STATUS[:-1], n, p=[0.6, 0.3, 0.1]),
            "eviction": np.zeros(n, dtype=bool),
            "arrears": rng.random(n) < 0.3,
            "income": np.round(rng.gamma(2.0, 14_000.0, n).clip(0, 150_000), 2),
            "savings": pd.Series([None] * n, dtype="float64"),
            "n_persons": n_persons,
        }
    )
    pid = np.repeat(ids, n_persons)
    persons = pd.DataFrame(
        {
            "person_id": np.arange(1, len(pid) + 1, dtype=np.int64),
            "household_id": pid,
            "role": rng.choice(ROLES[:-1], len(pid)),
            "age": rng.integers(0, 95, len(pid)),
            "income": np.round(rng.gamma(1.5, 10_000.0, len(pid)).clip(0, 120_000), 2),
        }
    )
    signals = pd.DataFrame(
        {
            "household_id": np.repeat(ids, 2),
            "month": np.tile([1, 2], n),
            "arrears_energy": rng.random(2 * n) < 0.1,
        }
    )
    return {"households": hh, "persons": persons, "signals": signals}


def _with_lone(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    hh = pd.concat([frames["households"], pd.DataFrame([LONE])], ignore_index=True)
    hh["savings"] = hh["savings"].astype("float64")
    first = int(frames["persons"]["person_id"].max()) + 1
    lone_persons = pd.DataFrame(
        [{"person_id": first + i, **LONE_PERSON, "role": "lodger" if i == 7 else "head"} for i in range(8)]
    )
    persons = pd.concat([frames["persons"], lone_persons[frames["persons"].columns]], ignore_index=True)
    lone_signals = pd.DataFrame({"household_id": [LONE_ID] * 12, "month": range(1, 13), "arrears_energy": [True] * 12})
    signals = pd.concat([frames["signals"], lone_signals], ignore_index=True)
    return {"households": hh, "persons": persons, "signals": signals}


def write_neighbours(root: Path, n: int = 300, seed: int = 20261210) -> tuple[Path, Path]:
    """Write D and D' under ``root`` (``root/d`` and ``root/d_prime``) in the generator's layout."""
    d = _d_frames(n, seed)
    out = []
    for name, frames in (("d", d), ("d_prime", _with_lone(d))):
        folder = root / name
        (folder / "schema").mkdir(parents=True, exist_ok=True)
        for table, schema in schemas().items():
            frames[table].to_parquet(folder / f"{table}.parquet", index=False)
            schema.save(folder / "schema" / f"{table}.json")
        out.append(folder)
    return out[0], out[1]
