"""The generated tables: schema conformance, consistent relations, referential integrity and determinism."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import synthetic
from sandbox import OutputPathError, ScenarioError, check_frame
from synthetic import generate_population, ground_truth_schema, population_schemas, write_population
from synthetic._generate import BLOCK_SIZE

N = 40_000


@pytest.fixture(scope="module")
def pop() -> synthetic.Population:
    return generate_population(N, seed=11)


def test_every_table_matches_its_schema(pop: synthetic.Population) -> None:
    for name, schema in population_schemas().items():
        check_frame(getattr(pop, name), schema)
    check_frame(pop.ground_truth, ground_truth_schema())
    assert set(population_schemas()) == {"households", "persons", "signals"}


def test_schema_contract(pop: synthetic.Population) -> None:
    hh = population_schemas()["households"]
    assert (hh.privacy_unit, hh.unit_column, hh.max_rows_per_unit) == ("household", "household_id", 1)
    for col in hh.columns:
        if col.kind in ("int", "float"):
            assert col.lower is not None and col.upper is not None
        if col.kind == "category":
            assert set(pop.households[col.name].astype(str).unique()) <= set(col.categories)
    assert hh.column("migration_background").categories == ("nederland", "europa", "buiten_europa")
    assert "ground_truth" not in population_schemas()
    assert all(p.privacy_unit == "household" for p in population_schemas().values())


def test_household_composition_is_consistent(pop: synthetic.Population) -> None:
    h = pop.households
    t = h["household_type"].astype(str)
    a, c = h["n_adults"], h["n_children"]
    assert ((a == 1) & (c == 0))[t == "single"].all()
    assert ((a == 2) & (c == 0))[t == "couple"].all()
    assert ((a == 2) & (c >= 1))[t == "couple_with_children"].all()
    assert ((a == 1) & (c >= 1))[t == "single_parent"].all()
    assert a[t == "other"].between(2, 4).all()


def test_income_source_rules(pop: synthetic.Population) -> None:
    h = pop.households
    src = h["income_source"].astype(str)
    assert (h["age"][src == "state_pension"] >= 67).all()
    assert (h["age"][src == "student"] < 30).all()
    assert (src == "state_pension").sum() > 0.15 * N  # the rule is exercised, not vacuous


def test_derived_columns_agree(pop: synthetic.Population) -> None:
    h = pop.households
    line = pop.scenario.targets.poverty_line
    below = h["disposable_income"] < line
    # Poor: below the line without a savings buffer of a year (CBS/SCP/Nibud); below it with one is not poor.
    assert (h["poverty"] == (below & (h["savings_buffer"] < line))).all()
    assert 0.05 < (below & ~h["poverty"]).mean() < 0.10  # the rule is exercised: most below the line are not poor
    edges = [18, 25, 35, 45, 55, 67, 200]
    expected_band = pd.cut(
        h["age"], edges, right=False, labels=list(population_schemas()["households"].column("age_band").categories)
    )
    assert (expected_band.astype(str) == h["age_band"].astype(str)).all()
    income_edges = [-1, 15_000, 20_000, 25_000, 35_000, 50_000, 75_000, 1e9]
    band = pd.cut(h["disposable_income"], income_edges, right=False, labels=False)
    assert (band.to_numpy() == h["income_band"].cat.codes.to_numpy()).all()
    assert ((h["total_debt"] > 0) == (h["n_creditors"] > 0)).all()


def test_persons_match_their_household(pop: synthetic.Population) -> None:
    h, p = pop.households.set_index("household_id"), pop.persons
    role = p["role"].astype(str)
    counts = (
        p.assign(adult=role.isin(["main_earner", "partner", "other_adult"]), child=role == "child")
        .groupby("household_id")[["adult", "child"]]
        .sum()
    )
    assert (counts["adult"] == h["n_adults"]).all() and (counts["child"] == h["n_children"]).all()
    main = p[role == "main_earner"].set_index("household_id")
    assert main.index.is_unique and len(main) == len(h)
    for col in ("gender", "age", "migration_background", "education_level", "language_proficiency", "disability"):
        assert (main[col].astype(str) == h.loc[main.index, col].astype(str)).all(), col
    children = p[role == "child"]
    parent_age = h.loc[children["household_id"], "age"].to_numpy()
    assert (children["age"].to_numpy() <= parent_age - 18).all()
    assert (p.groupby("household_id").size() <= population_schemas()["persons"].max_rows_per_unit).all()
    minors = p[p["age"] < 18]
    assert (minors["employment_status"].astype(str) == "minor").all()
    assert not minors["role"].astype(str).eq("main_earner").any()


def test_referential_integrity(pop: synthetic.Population) -> None:
    ids = pop.households["household_id"]
    assert ids.is_unique and ids.tolist() == list(range(1, N + 1))
    assert pop.persons["person_id"].is_unique
    assert pop.persons["household_id"].isin(ids).all()
    assert pop.signals["household_id"].isin(ids).all()
    assert (pop.ground_truth["household_id"].to_numpy() == ids.to_numpy()).all()


def test_arrears_summaries_match_the_signals(pop: synthetic.Population) -> None:
    h = pop.households.set_index("household_id")
    s = pop.signals
    assert not s.duplicated(["household_id", "month", "creditor_type"]).any()
    table = s.groupby(["household_id", "creditor_type"], observed=False).size().unstack(fill_value=0)
    table = table.reindex(h.index, fill_value=0)
    for creditor, col in [
        ("health_insurer", "arrears_health_insurance"),
        ("energy", "arrears_energy"),
        ("landlord", "arrears_landlord"),
        ("water", "arrears_water"),
    ]:
        assert (table[creditor] == h[col]).all(), creditor
    assert (table.sum(axis=1) == h["n_signals"]).all()
    assert (h["arrears_landlord"][h["housing"].astype(str) == "owner"] == 0).all()
    assert len(s) > 0


def test_ground_truth_and_label(pop: synthetic.Population) -> None:
    g, h = pop.ground_truth, pop.households
    truth = g["true_problematic_debt"].to_numpy()
    reg = h["registered_problematic_debt"].to_numpy()
    assert 0.5 < reg[truth].mean() < 1.0 and reg[~truth].mean() < 0.05
    assert "true_problematic_debt" not in h.columns


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_identical_bytes_across_workers_and_chunk_sizes(tmp_path: Path) -> None:
    n = 4 * BLOCK_SIZE + 1_000  # five blocks, the last partial
    a = write_population(tmp_path / "a", n, seed=5, workers=1, chunk_size=BLOCK_SIZE)
    b = write_population(tmp_path / "b", n, seed=5, workers=2, chunk_size=3 * BLOCK_SIZE)
    da, db = _digests(a), _digests(b)
    assert da == db and "households.parquet" in da and "ground_truth/ground_truth.parquet" in da
    c = write_population(tmp_path / "c", n, seed=6, workers=1)
    assert _digests(c)["households.parquet"] != da["households.parquet"]


def test_in_memory_equals_across_chunking() -> None:
    a = generate_population(2 * BLOCK_SIZE + 7, seed=3, chunk_size=1)
    b = generate_population(2 * BLOCK_SIZE + 7, seed=3, chunk_size=10**6)
    for name in ("households", "persons", "signals", "ground_truth"):
        assert getattr(a, name).equals(getattr(b, name)), name  # values and dtypes (assert_frame_equal is slow)
    assert not a.households.equals(generate_population(2 * BLOCK_SIZE + 7, seed=4).households)


def test_written_files_and_manifest(tmp_path: Path) -> None:
    out = write_population(tmp_path / "pop", 3_000, seed=1, workers=1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 1 and manifest["n_households"] == 3_000
    assert manifest["scenario"]["sha256"] == synthetic.load_scenario("default").sha256
    assert manifest["rows"]["households"] == 3_000
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    for name, schema in population_schemas().items():
        assert (out / "schema" / f"{name}.json").read_text() == schema.to_json()
        frame = pd.read_parquet(out / f"{name}.parquet")
        check_frame(frame, schema)
        assert manifest["rows"][name] == len(frame)
    assert (out / "ground_truth" / "ground_truth.parquet").is_file()
    assert not any(p.name.startswith(".pop.") for p in tmp_path.iterdir())
    assert synthetic.population_is_current(out, 3_000, seed=1)
    assert not synthetic.population_is_current(out, 3_000, seed=2)
    # protected data, ground truth included: only the generating account may read it
    modes = {p.relative_to(out).as_posix(): p.stat().st_mode & 0o777 for p in [out, *out.rglob("*")]}
    assert {m for rel, m in modes.items() if (out / rel).is_dir()} == {0o700}, modes
    assert {m for rel, m in modes.items() if (out / rel).is_file()} == {0o600}, modes


def test_earlier_population_is_replaced(tmp_path: Path) -> None:
    out = tmp_path / "pop"
    write_population(out, 1_000, seed=1, workers=1)
    write_population(out, 2_000, seed=1, workers=1)
    assert json.loads((out / "manifest.json").read_text())["n_households"] == 2_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pop"]


def test_output_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(OutputPathError, match=r"is a file: give a directory path"):
        write_population(target, 10, seed=1)


def test_unwritable_output_names_the_path_and_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match=r"Cannot write the population to '.*blocker/sub/pop'.*--out"):
        write_population(blocker / "sub" / "pop", 10, seed=1)


def test_foreign_directory_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("precious")
    with pytest.raises(OutputPathError, match=r"not empty and holds no population"):
        write_population(tmp_path / "mine", 10, seed=1)
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "precious"


def test_failure_leaves_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "pop"
    write_population(out, 1_000, seed=1, workers=1)
    before = _digests(out)
    real = synthetic._population.iter_chunks

    def failing(*args: object, **kwargs: object) -> Iterator[object]:
        gen = real(*args, **kwargs)  # type: ignore[arg-type]
        yield next(gen)
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(synthetic._population, "iter_chunks", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        write_population(out, 3 * BLOCK_SIZE, seed=2, workers=1, chunk_size=BLOCK_SIZE)
    assert _digests(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pop"]
    with pytest.raises(RuntimeError, match="disk full"):
        write_population(tmp_path / "new", 3 * BLOCK_SIZE, seed=2, workers=1, chunk_size=BLOCK_SIZE)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pop"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_households": -5}, r"n_households must be a whole number from 1"),
        ({"n_households": 0}, r"n_households must be a whole number from 1"),
        ({"seed": -1}, r"seed must be a whole number from 0"),
        ({"workers": 0}, r"workers must be a whole number from 1"),
        ({"chunk_size": 2.5}, r"chunk_size must be a whole number"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str, tmp_path: Path) -> None:
    args: dict[str, object] = {"n_households": 10, "seed": 1, "workers": 1, "chunk_size": 100} | kwargs
    with pytest.raises(ScenarioError, match=message):
        write_population(tmp_path / "x", **args)  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()


def test_ids_do_not_depend_on_other_blocks() -> None:
    small = generate_population(BLOCK_SIZE + 10, seed=4)
    ids = small.persons["person_id"].to_numpy()
    assert (ids // 10 == small.persons["household_id"].to_numpy()).all()
    assert np.all(np.diff(small.households["household_id"].to_numpy()) == 1)


@pytest.mark.parametrize("n", [1, 2, 17])
def test_tiny_populations(n: int) -> None:
    tiny = generate_population(n, seed=9)
    for name, schema in population_schemas().items():
        check_frame(getattr(tiny, name), schema)
    table = synthetic.calibration_summary(tiny)  # NaN where a group is empty, never a warning
    assert len(table) == 28 and table["produced"].notna().any()
