"""One budget per population, through the vault's service and the ``sandbox`` commands.

One household is in the households, persons and signals tables, so a charge on any of them lowers the one
budget; registering a table again restores nothing; adding a table to a population is an admin action that the
journal records; the budget-exceeded error names the real options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import households_schema, make_frames, write_policy

from sandbox._private.shared.errors import BudgetExceededError, SchemaError
from sandbox._private.shared.schema import TableSchema
from sandbox._private.vault.outbox.journal import read_entries
from sandbox._private.vault.server import open_service
from sandbox.cli import main

BUDGET_KEYS = {
    "dataset", "version", "epsilon_total", "epsilon_spent", "epsilon_remaining", "delta_total", "delta_spent",
    "delta_remaining", "answers", "analyst", "analyst_epsilon_spent", "analyst_epsilon_limit",
}  # fmt: skip


@pytest.fixture
def vault(small_population: Path, tmp_path: Path) -> tuple[Any, Any]:
    policy = write_policy(tmp_path / "p.yaml", epsilon_per_dataset=2.0, epsilon_per_query_max=1.0)
    svc = open_service(tmp_path / "ws", policy=policy)
    svc.registry.add_population(small_population)
    svc.tokens.create("ann", "analyst")
    return svc, svc.tokens.list()[0]


def _ask(svc: Any, caller: Any, table: str, eps: float, by: list[str] | None = None) -> dict[str, Any]:
    return dict(svc.query({"dataset": table, "kind": "count", "by": by or [], "epsilon": eps}, caller, None))


def test_a_charge_on_any_table_lowers_the_one_budget(vault: tuple[Any, Any]) -> None:
    svc, ann = vault
    spent = 0.0
    for table, eps in (("households", 0.5), ("persons", 0.3), ("signals", 0.2)):
        out = _ask(svc, ann, table, eps)
        spent += eps
        assert out["epsilon_remaining"] == pytest.approx(2.0 - spent)
        for other in ("households", "persons", "signals"):
            b = svc.budget(other, ann)
            assert b["epsilon_spent"] == pytest.approx(spent) and b["population"] == "population"
    b = svc.budget("signals", ann)
    assert set(b) >= BUDGET_KEYS and b["tables"] == ["households", "persons", "signals"]
    assert b["answers"] == 3 and b["analyst_epsilon_spent"] == pytest.approx(1.0)
    assert {d["name"]: d["population"] for d in svc.datasets()} == dict.fromkeys(
        ("households", "persons", "signals"), "population"
    )


def test_budget_exceeded_names_the_real_options(vault: tuple[Any, Any]) -> None:
    svc, ann = vault
    _ask(svc, ann, "households", 1.0)
    _ask(svc, ann, "persons", 0.9)
    with pytest.raises(BudgetExceededError) as err:
        _ask(svc, ann, "signals", 0.2)
    message = str(err.value)
    assert "population 'population' (tables households, persons, signals)" in message
    assert "requested ε=0.2, remaining ε=0.1, short by 0.1" in message
    assert "Reuse a stored answer" in message and "smaller epsilon" in message
    assert "privacy officer (the vault's admin)" in message
    assert "regist" not in message and "new version" not in message and "reviewer" not in message
    again = _ask(svc, ann, "households", 1.0)  # the same question: its stored answer, free
    assert again["reused"] and again["charged_epsilon"] == 0.0


def test_reregistration_restores_nothing(vault: tuple[Any, Any], small_population: Path) -> None:
    svc, ann = vault
    _ask(svc, ann, "households", 1.0)
    _ask(svc, ann, "persons", 1.0)
    assert svc.budget("households", ann)["epsilon_remaining"] == 0.0
    rec = svc.registry.add(
        "households", small_population / "households.parquet", small_population / "schema" / "households.json"
    )
    assert rec.version == 2 and rec.population == "population"
    assert svc.budget("households", ann)["epsilon_remaining"] == 0.0
    again = svc.registry.add_population(small_population)  # the whole population again: still nothing
    assert {r.version for r in again} == {3, 2} and svc.budget("signals", ann)["epsilon_remaining"] == 0.0
    with pytest.raises(BudgetExceededError):
        _ask(svc, ann, "households", 0.1)
    with pytest.raises(SchemaError, match=r"belongs to population 'population'.*cannot move to 'fresh'"):
        svc.registry.add(
            "persons", small_population / "persons.parquet", small_population / "schema" / "persons.json",
            population="fresh",
        )  # fmt: skip


def test_adding_a_table_to_a_population_is_journalled_and_checked(vault: tuple[Any, Any], tmp_path: Path) -> None:
    svc, ann = vault
    _ask(svc, ann, "persons", 0.5)
    frame = make_frames(200)["households"]
    frame.to_parquet(tmp_path / "extra.parquet", index=False)
    extra = TableSchema.from_dict({**households_schema().to_dict(), "name": "extra"})
    extra.save(tmp_path / "extra.json")
    rec = svc.registry.add("extra", tmp_path / "extra.parquet", tmp_path / "extra.json", population="population")
    assert rec.population == "population" and rec.epsilon_budget == 2.0
    assert svc.budget("extra", ann)["epsilon_spent"] == pytest.approx(0.5)  # it joins the spent budget
    added = [e for e in read_entries(svc.layout.journal) if e.type == "population.table_added"][-1]
    assert added.payload["dataset"] == "extra" and added.payload["epsilon_spent"] == pytest.approx(0.5)
    assert added.payload["tables_before"] == ["households", "persons", "signals"]

    person = TableSchema.from_dict({**households_schema().to_dict(), "name": "people", "privacy_unit": "person"})
    person.save(tmp_path / "people.json")
    frame.to_parquet(tmp_path / "people.parquet", index=False)
    with pytest.raises(SchemaError, match=r"protected per 'person', but population 'population' per 'household'"):
        svc.registry.add("people", tmp_path / "people.parquet", tmp_path / "people.json", population="population")
    alone = svc.registry.add("people", tmp_path / "people.parquet", tmp_path / "people.json")
    assert alone.population == "people" and svc.budget("people", ann)["epsilon_spent"] == 0.0


def test_per_analyst_limit_counts_per_population(small_population: Path, tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "p.yaml", epsilon_per_dataset=5.0, epsilon_per_analyst=1.0)
    svc = open_service(tmp_path / "ws", policy=policy)
    svc.registry.add_population(small_population)
    svc.tokens.create("ann", "analyst")
    ann = svc.tokens.list()[0]
    _ask(svc, ann, "households", 0.6)
    with pytest.raises(BudgetExceededError, match=r"analyst budget on population 'population'.*remaining ε=0\.4"):
        _ask(svc, ann, "persons", 0.6)
    assert svc.budget("signals", ann)["analyst_epsilon_spent"] == pytest.approx(0.6)


def test_cli_set_budget_is_the_privacy_officers_journalled_decision(
    vault: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    svc, ann = vault
    _ask(svc, ann, "households", 1.0)
    ws = str(svc.layout.workspace)
    assert (
        main(["ledger", "set-budget", "population", "--epsilon", "3", "--by", "po", "--reason", "x", "--workspace", ws])
        == 2
    )
    capsys.readouterr()
    reason = "DPIA 2026-04 allows a total of 3 for the arrears study"
    args = ["ledger", "set-budget", "population", "--epsilon", "3", "--by", "po", "--reason", reason, "--workspace", ws]
    assert main(args) == 0
    assert "ε budget 2 -> 3 (spent 1, remaining 2)" in capsys.readouterr().out
    event = read_entries(svc.layout.journal)[-1]
    assert event.type == "population.budget_set" and event.actor == "po" and event.payload["reason"] == reason
    assert svc.budget("persons", ann)["epsilon_remaining"] == pytest.approx(2.0)
