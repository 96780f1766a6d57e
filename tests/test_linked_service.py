"""Linked questions through the vault's service: one charge per joined question, equivalent questions from the
store, refusals before anything is charged, the engine of a dataset, and the fairness audit of a model whose
features come from a join.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import write_policy

import sandbox as sb
import synthetic
from sandbox._private.shared.errors import QueryError, SchemaError
from sandbox._private.vault.dp.fairness_audit import audit_model
from sandbox._private.vault.server import open_service


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.write_population(tmp_path_factory.mktemp("svc") / "pop", 1_500, seed=21)


@pytest.fixture()
def service(population: Path, tmp_path: Path) -> tuple[Any, Any]:
    svc = open_service(tmp_path / "ws", policy=write_policy(tmp_path / "p.yaml", epsilon_per_dataset=10.0))
    svc.registry.add_population(population)
    svc.tokens.create("ann", "analyst")
    return svc, svc.tokens.list()[0]


JOIN = {"join": [{"table": "households"}]}


def _q(**kw: Any) -> dict[str, Any]:
    return {"dataset": "persons", "kind": "mean", "column": "poverty", "epsilon": 0.5, **JOIN, **kw}


def test_a_joined_question_is_one_charge_and_its_equivalents_come_from_the_store(service: tuple[Any, Any]) -> None:
    svc, ann = service
    first = svc.query(_q(where=(sb.col("age") < 18).to_dict(), by=["gender"]), ann, None)
    assert first["charged_epsilon"] == 0.5 and not first["reused"]
    assert len(svc.ledger.charges()) == 1
    assert svc.ledger.charges()[0].dataset == "persons"  # charged once, against the query's population (base)
    # one budget per population: the households table shows the same, single charge (not two, not none)
    assert svc.budget("households", ann)["epsilon_spent"] == svc.budget("persons", ann)["epsilon_spent"] == 0.5
    same = [
        _q(where=(sb.col("age") <= 17).to_dict(), by=["gender"]),
        _q(where=(~(sb.col("age") >= 18)).to_dict(), by=["gender"]),
        _q(where=(sb.col("age") < 18).to_dict(), by=["gender"], join=[{"table": "households", "on": "household_id"}]),
        _q(
            where={"op": "==", "column": "child", "value": True},  # the bool column alone
            by=["gender"],
            derive=[{"name": "child", "condition": (sb.col("age") < 18).to_dict()}],
        ),
    ]
    for body in same:
        again = svc.query(body, ann, None)
        assert again["id"] == first["id"] and again["charged_epsilon"] == 0.0 and again["reused"], body
    assert len(svc.ledger.charges()) == 1
    other = svc.query(_q(where=(sb.col("age") < 19).to_dict(), by=["gender"]), ann, None)
    assert other["id"] != first["id"] and other["charged_epsilon"] == 0.5


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (_q(join=[{"table": "households", "on": "person_id"}]), r"joined only on the privacy unit's key"),
        (_q(where={"op": "<", "column": "gender", "value": 3}), r"'<' orders numbers, but 'gender' is category"),
        (_q(derive=[{"name": "band", "bin": "age", "edges": [-5, 18, 105]}]), r"outside the public bounds \[0, 105\]"),
        (_q(derive=[{"name": "gender", "condition": (sb.col("age") > 3).to_dict()}]), r"'gender' clashes"),
        (_q(join=[{"table": "ground_truth"}]), r"No dataset 'ground_truth'; registered: households, persons, signals"),
    ],
)
def test_bad_linked_questions_are_refused_and_nothing_is_charged(
    service: tuple[Any, Any], body: dict[str, Any], match: str
) -> None:
    svc, ann = service
    with pytest.raises((QueryError, SchemaError, LookupError), match=match):
        svc.cost(body)
    with pytest.raises((QueryError, SchemaError, LookupError), match=match):
        svc.query(body, ann, None)
    assert svc.ledger.charges() == []


def test_a_join_with_a_dataset_of_another_population_is_refused(service: tuple[Any, Any], population: Path) -> None:
    svc, ann = service
    svc.registry.add("extra", population / "households.parquet", _renamed_schema(population, "extra"))
    body = _q(join=[{"table": "extra"}])
    with pytest.raises(QueryError, match=r"'extra' belongs to population 'extra', but 'persons' to 'population'"):
        svc.query(body, ann, None)
    assert svc.ledger.charges() == []


def _renamed_schema(population: Path, name: str) -> Path:
    data = json.loads((population / "schema" / "households.json").read_text())
    data["name"] = name
    out = population.parent / f"{name}.json"
    out.write_text(json.dumps(data))
    return out


def test_the_engine_of_a_dataset_is_recorded_at_registration(service: tuple[Any, Any], population: Path) -> None:
    svc, _ = service
    rec = svc.registry.ledger.dataset("persons")
    assert json.loads((Path(rec.path).parent / "engine.json").read_text()) == {"engine": "duckdb"}
    with pytest.raises(
        SchemaError, match=r"Unknown engine 'hadoop'; register the dataset with engine 'duckdb' or 'spark'"
    ):
        svc.registry.add(
            "households", population / "households.parquet", population / "schema" / "households.json", engine="hadoop"
        )


def test_a_model_with_features_from_a_join_is_fitted_and_audited_in_the_vault(service: tuple[Any, Any]) -> None:
    svc, ann = service
    spec = sb.ModelSpec(
        "logistic_regression",
        target="registered_problematic_debt",
        features=["income_band", "signals_late", "age_group"],
    )
    derive = [
        {"name": "signals_late", "count": "signals", "where": (sb.col("month") >= 7).to_dict(), "upper": 12},
        {"name": "age_group", "bin": "age", "edges": [18, 30, 45, 67, 105], "labels": None},
    ]
    body = {"dataset": "households", "spec": spec.to_dict(), "epsilon": 1.0, "derive": derive}
    fit = svc.fit(body, ann, None)
    params = fit["values"]
    assert params["relation"]["derive"][0]["name"] == "signals_late"
    assert "signals_late" in params["feature_names"] and any(f.startswith("age_group") for f in params["feature_names"])
    audit = audit_model(svc, fit["id"], None, None, ann, None)
    assert audit["kind"] == "audit" and audit["charged_epsilon"] > 0
    values = audit["values"]
    assert values["model_id"] == fit["id"] and "signals_late" in json.dumps(values)  # the proxy check saw it
    with pytest.raises(QueryError, match=r"Models are fitted on one row per privacy unit.*household_count"):
        svc.fit({"dataset": "persons", "spec": spec.to_dict(), "epsilon": 1.0, **JOIN}, ann, None)
