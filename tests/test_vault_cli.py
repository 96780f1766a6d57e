"""``sandbox vault token create``, ``sandbox dataset add|add-population|list`` and ``sandbox budget``."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import households_schema, make_frames

from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.vault.ledger.ledger import Ledger
from sandbox._private.vault.tokens import TokenStore
from sandbox.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_token_create_prints_once_and_stores_only_its_hash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys, "vault", "token", "create", "--workspace", str(tmp_path), "--role", "reviewer", "--name", "rita"
    )
    token = out.strip()
    assert code == 0 and re.fullmatch(r"sbx_[A-Za-z0-9_-]{43}", token)
    layout = WorkspaceLayout(tmp_path.resolve())
    stored = layout.tokens.read_text()
    assert token not in stored and json.loads(stored)["tokens"][0]["role"] == "reviewer"
    assert layout.tokens.stat().st_mode & 0o777 == 0o600
    assert TokenStore(layout.tokens).authenticate(f"Bearer {token}").name == "rita"
    code, _, err = _run(
        capsys, "vault", "token", "create", "--workspace", str(tmp_path), "--role", "root", "--name", "x"
    )
    assert code == 2 and "'root' is not one of 'analyst', 'reviewer', 'admin'" in err


def test_dataset_add_parquet_and_csv_copies_and_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hh = make_frames(300)["households"]
    schema = households_schema().save(tmp_path / "hh.json")
    hh.to_parquet(tmp_path / "hh.parquet", index=False)
    hh.to_csv(tmp_path / "hh.csv", index=False)
    ws = str(tmp_path / "ws")
    code, out, err = _run(
        capsys, "dataset", "add", "households", str(tmp_path / "hh.parquet"), "--schema", str(schema), "--workspace", ws
    )
    assert code == 0, err
    assert out.startswith("registered households v1 in population households (tables households): ε budget 10")
    code, out, err = _run(
        capsys, "dataset", "add", "households", str(tmp_path / "hh.csv"), "--schema", str(schema), "--workspace", ws
    )
    assert code == 0 and "households v2" in out, err
    layout = WorkspaceLayout(Path(ws).resolve())
    v1, v2 = layout.dataset_dir("households", 1), layout.dataset_dir("households", 2)
    assert (v1 / "data.parquet").read_bytes() == (tmp_path / "hh.parquet").read_bytes()
    assert (v2 / "data.csv").read_bytes() == (tmp_path / "hh.csv").read_bytes()
    assert json.loads((v1 / "schema.json").read_text())["name"] == "households"
    code, out, _ = _run(capsys, "dataset", "list", "--workspace", ws)
    assert code == 0 and out.startswith("households\tv2\tpopulation households")
    code, out, _ = _run(capsys, "budget", "households", "--workspace", ws)
    assert code == 0 and "households v2 (population households: households): ε spent 0 of 10 (remaining 10)" in out


def test_dataset_add_refuses_bad_input_and_names_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hh = make_frames(100)["households"]
    hh.to_parquet(tmp_path / "hh.parquet", index=False)
    ws = str(tmp_path / "ws")
    unbounded = households_schema().to_dict()
    del unbounded["columns"][3]["lower"], unbounded["columns"][3]["upper"]
    (tmp_path / "nobounds.json").write_text(json.dumps(unbounded))
    code, _, err = _run(
        capsys,
        "dataset",
        "add",
        "households",
        str(tmp_path / "hh.parquet"),
        "--schema",
        str(tmp_path / "nobounds.json"),
        "--workspace",
        ws,
    )
    assert code == 2 and "'income' (float) has no bounds: give public 'lower' and 'upper'" in err

    bad = hh.assign(urbanisation="moon")
    bad.to_parquet(tmp_path / "bad.parquet", index=False)
    schema = str(households_schema().save(tmp_path / "hh.json"))
    code, _, err = _run(
        capsys, "dataset", "add", "households", str(tmp_path / "bad.parquet"), "--schema", schema, "--workspace", ws
    )
    assert code == 2 and "100 values are not among the schema's 5 categories" in err and "moon" not in err

    code, _, err = _run(
        capsys, "dataset", "add", "persons", str(tmp_path / "hh.parquet"), "--schema", schema, "--workspace", ws
    )
    assert code == 2 and "differs from the schema's table name 'households'" in err
    code, _, err = _run(
        capsys, "dataset", "add", "households", str(tmp_path / "nope.parquet"), "--schema", schema, "--workspace", ws
    )
    assert code == 2 and "does not exist" in err
    assert Ledger(WorkspaceLayout(Path(ws).resolve()).ledger).datasets() == []


def test_add_population_registers_three_tables_never_ground_truth(
    small_population: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    population = Path(shutil.copytree(small_population, tmp_path / "population"))
    pd.DataFrame({"household_id": [1]}).to_parquet(population / "ground_truth.parquet")
    ws = str(tmp_path / "ws")
    code, _, err = _run(capsys, "dataset", "add-population", str(population), "--workspace", ws)
    assert code == 0, err
    ledger = Ledger(WorkspaceLayout(Path(ws).resolve()).ledger)
    names = [d.name for d in ledger.datasets()]
    assert names == ["households", "persons", "signals"]
    assert [(p.name, p.tables) for p in ledger.populations()] == [("population", ("households", "persons", "signals"))]
    code, _, err = _run(capsys, "dataset", "add-population", str(tmp_path), "--workspace", ws)
    assert code == 2 and "is not a generated population" in err
    code, _, err = _run(
        capsys, "dataset", "add-population", str(population), "--workspace", ws, "--population", "other"
    )
    assert code == 2 and "belong to population 'population'" in err and "cannot move to 'other'" in err


def test_generated_population_registers_and_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import synthetic

    pop = tmp_path / "pop"
    synthetic.write_population(pop, 1500, seed=11)
    ws = tmp_path / "ws"
    code, out, err = _run(capsys, "dataset", "add-population", str(pop), "--workspace", str(ws))
    assert code == 0, err
    assert [line.split()[1] for line in out.splitlines()] == ["households", "persons", "signals"]
    assert out.splitlines()[-1].endswith(
        "in population population (tables households, persons, signals): ε budget 10, spent 0"
    )
    layout = WorkspaceLayout(ws.resolve())
    assert not any("ground_truth" in str(p) for p in layout.data.rglob("*"))
    for table in ("households", "persons", "signals"):
        stored = layout.dataset_dir(table, 1) / "data.parquet"
        assert stored.read_bytes() == (pop / f"{table}.parquet").read_bytes()
