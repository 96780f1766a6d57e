"""Bounds: a query or model spec that supplies its own bounds, or makes the vault derive them from the rows.

Defence (DESIGN invariant 4): bounds, categories, classes and group keys come from the public schema or the
query, never from the protected rows; request bodies and model specs are closed schemas (unknown fields and
parameters are refused), and diffprivlib's PrivacyLeakWarning (its signal that it read bounds from the data) is
an error. A refused request leaves the ledger unchanged.

The in-process part checks the consequence: the *shape* of every answer (cells, classes, parameter sizes, error
or success) is the same on neighbouring tables D and D' = D + one household, even when that household carries a
class that no other household has, or is the only one with a value in a feature column. The models get their
classes from the schema and public anchor rows (``vault/dp/fitting.py``); diffprivlib's LogisticRegression and
GaussianNB took them from the rows until issue 10 (two strict xfails here then), and GaussianNB's priors were
exact fractions over the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl
import pytest

from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.modelspec import ModelSpec
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.query import AggregateQuery
from sandbox._private.shared.schema import Column
from sandbox._private.vault.dp.engine import DPEngine
from sandbox._private.vault.dp.fairness_audit import audit_model
from sandbox._private.vault.dp.tabledata import TableData

from ._dp_models import _frame, _schema
from ._vault_http import assert_clean_error, charges, spent

SUM = {"dataset": "households", "kind": "sum", "column": "income", "epsilon": 0.1}
QUERY_ATTEMPTS: dict[str, dict[str, Any]] = {
    "lower/upper": {**SUM, "lower": 0, "upper": 10},
    "bounds": {**SUM, "bounds": [0, 10]},
    "bounds from data": {**SUM, "bounds": "data"},
    "clip": {**SUM, "clip": False},
    "sensitivity": {**SUM, "sensitivity": 1e-9},
    "categories": {"dataset": "households", "kind": "count", "by": ["household_type"], "epsilon": 0.1,
                   "categories": {"household_type": "observed"}},
    "seed": {**SUM, "random_state": 1},
}  # fmt: skip
SPEC = {"estimator": "logistic_regression", "target": "arrears", "features": ["household_type", "income"]}
FIT_ATTEMPTS: dict[str, dict[str, Any]] = {
    "data_norm=None": {**SPEC, "params": {"data_norm": None}},
    "data_norm=1": {**SPEC, "params": {"data_norm": 1.0}},
    "bounds param": {**SPEC, "params": {"bounds": [[0, 0], [1, 1]]}},
    "bounds_X": {**SPEC, "estimator": "linear_regression", "target": "n_persons", "params": {"bounds_X": None}},
    "bounds_y": {**SPEC, "estimator": "linear_regression", "target": "n_persons", "params": {"bounds_y": None}},
    "spec-level bounds": {**SPEC, "bounds": {"income": [0, 10]}},
    "preprocessing from data": {**SPEC, "preprocessing": "standard_scaler"},
    "epsilon in params": {**SPEC, "params": {"epsilon": 1000.0}},
    "accountant": {**SPEC, "params": {"accountant": None}},
    "seed": {**SPEC, "params": {"random_state": 1}},
}


@pytest.mark.system
@pytest.mark.attack("bounds", defence="closed request schemas; bounds only from the public schema (invariant 4)")
def test_bounds_supplied_or_derived_are_refused(shared_vault: Any, attack_figure: Callable[[str], None]) -> None:
    vault = shared_vault
    before = len(charges(vault.workspace))
    with vault.client("analyst") as c:
        spent_before = spent(c, "households")
        for name, body in QUERY_ATTEMPTS.items():
            for path in ("/v1/query", "/v1/cost"):
                assert_clean_error(c.post(path, json=body), 422, match="unknown field", what=name)
        for name, spec in FIT_ATTEMPTS.items():
            r = c.post("/v1/fit", json={"dataset": "households", "spec": spec, "epsilon": 0.5})
            assert_clean_error(r, 422, match=r"(?i)unknown (field|parameter|preprocessing)", what=name)
        assert spent(c, "households") == spent_before
    assert len(charges(vault.workspace)) == before
    attack_figure(
        f"{len(QUERY_ATTEMPTS)} query and {len(FIT_ATTEMPTS)} model-spec attempts refused with 422; ledger unchanged"
    )


def _one_class_neighbours() -> tuple[TableData, TableData]:
    """D: 200 households, none in debt. D': D plus one household in debt (the only one)."""
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 4, size=(200, 3))
    y = np.zeros(200, dtype=bool)
    d = TableData.from_frame(_frame(codes, y), _schema(3, 4))
    d1 = TableData.from_frame(_frame(np.vstack([codes, [[0, 0, 0]]]), np.append(y, True)), _schema(3, 4))
    return d, d1


def _shape(fit: Callable[[], Any]) -> Any:
    """What an attacker sees of the outcome besides the noisy numbers: error type, classes, parameter sizes."""
    try:
        public = fit().public
    except QueryError as exc:
        return ("refused", type(exc).__name__)
    except Exception as exc:  # any other error is itself an observable outcome
        return ("error", type(exc).__name__)
    sizes = {k: np.shape(v) for k, v in public["params"].items() if not isinstance(v, dict | str)}
    return (tuple(str(c) for c in public.get("classes") or ()), sorted(sizes.items()))


@pytest.mark.attack("bounds", defence="model classes and shapes from the schema, not the rows (invariant 4)")
@pytest.mark.parametrize(
    "estimator",
    [
        "logistic_regression",
        "gaussian_nb",
        "random_forest",
        "linear_regression",
    ],
)
def test_model_shape_does_not_reveal_a_lone_household(estimator: str, attack_figure: Callable[[str], None]) -> None:
    d, d1 = _one_class_neighbours()
    spec = ModelSpec(estimator, target="debt", features=("c0", "c1", "c2"))
    engine = DPEngine(Policy())
    on_d, on_d1 = _shape(lambda: engine.fit(spec, d, 1.0)), _shape(lambda: engine.fit(spec, d1, 1.0))
    same = "identical" if on_d == on_d1 else "DIFFER"
    attack_figure(f"{estimator}: outcome on D and D' {same}: {on_d[0]!s:.30} vs {on_d1[0]!s:.30}")
    assert on_d == on_d1, f"{estimator}: D gives {on_d}, D' gives {on_d1}: the lone household is revealed"


@pytest.mark.attack("bounds", defence="answer cells from the schema, not the rows (invariant 4)")
@pytest.mark.parametrize("kind", ["count", "sum", "mean", "variance", "quantile", "histogram"])
def test_answer_shape_does_not_reveal_a_lone_household(kind: str, attack_figure: Callable[[str], None]) -> None:
    d, d1 = _one_class_neighbours()
    extra: dict[str, Any] = {"q": 0.5} if kind == "quantile" else {"bins": 3} if kind == "histogram" else {}
    column = None if kind == "count" else "debt"
    query = AggregateQuery("mia", kind, column, by=("c0", "debt"), epsilon=1.0, **extra)  # type: ignore[arg-type]
    engine = DPEngine(Policy())
    a, b = engine.answer(query, d).public, engine.answer(query, d1).public
    keys = [c for c in a["columns"] if c not in ("value", "noise_scale", "ci95", "ci95_low", "ci95_high")]
    assert [[r[k] for k in keys] for r in a["rows"]] == [[r[k] for k in keys] for r in b["rows"]]
    assert len(a["rows"]) == 4 * 2 * (3 if kind == "histogram" else 1)
    attack_figure(f"{kind}: the same {len(a['rows'])} cells on D and D' (the lone household's cell included)")


def _lone_value_neighbours() -> tuple[TableData, TableData]:
    """D: 200 households whose nullable feature ``x`` is empty everywhere. D': one more household that fills it."""
    schema = _schema(2, 3)
    cols = [
        *schema.columns[:-1],
        Column("x", "float", "x", "x", lower=0.0, upper=1.0, nullable=True),
        schema.columns[-1],
    ]
    schema = replace(schema, columns=tuple(cols))
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 3, size=(200, 2))
    y = rng.random(200) < 0.3

    def table(n_extra: int) -> TableData:
        frame = _frame(
            np.vstack([codes, np.zeros((n_extra, 2), dtype=np.int64)]), np.append(y, [True] * n_extra)
        ).with_columns(pl.Series("x", [None] * 200 + [1.0] * n_extra, dtype=pl.Float64))
        return TableData.from_frame(frame.select([c.name for c in cols]), schema)

    return table(0), table(1)


@pytest.mark.attack("bounds", defence="a fit never fails for lack of rows: public anchor rows (invariant 10)")
@pytest.mark.parametrize("estimator", ["logistic_regression", "gaussian_nb", "random_forest", "linear_regression"])
def test_a_fit_on_no_rows_succeeds_like_a_fit_on_one(estimator: str, attack_figure: Callable[[str], None]) -> None:
    d, d1 = _lone_value_neighbours()
    target = "x" if estimator == "linear_regression" else "debt"
    features = ("c0", "c1") if estimator == "linear_regression" else ("c0", "x")
    spec = ModelSpec(estimator, target=target, features=features)  # a regression on x: D has no target at all
    engine = DPEngine(Policy())
    on_d, on_d1 = _shape(lambda: engine.fit(spec, d, 1.0)), _shape(lambda: engine.fit(spec, d1, 1.0))
    attack_figure(f"{estimator}: {'identical' if on_d == on_d1 else 'DIFFER'} on a design of 0 and of 1 rows")
    assert on_d == on_d1, f"{estimator}: D gives {on_d}, D' gives {on_d1}"
    assert on_d[0] != "error" and on_d[0] != "refused"


@pytest.mark.attack("bounds", defence="naive Bayes priors from noisy counts of every schema class (invariant 10)")
def test_naive_bayes_priors_are_not_fractions_of_the_row_count(attack_figure: Callable[[str], None]) -> None:
    """diffprivlib 0.6.6 forces its noisy class counts to sum to the exact row count, and leaves an absent class at
    prior 0; with 20 fits on D (no household in debt) the vault's priors of 'True' are never 0 and their counts
    never sum to the 201 rows of the design (200 households and the one anchor row per class of the vault)."""
    d, _ = _one_class_neighbours()
    spec = ModelSpec("gaussian_nb", target="debt", features=("c0", "c1", "c2"))
    engine = DPEngine(Policy())
    totals, zero_priors = [], 0
    for _ in range(20):
        model = engine.fit(spec, d, 1.0).model
        totals.append(float(model.class_count_.sum()))
        zero_priors += int(model.class_prior_[1] == 0.0)
    attack_figure(f"20 fits: prior(True) = 0 in {zero_priors}; class counts summed to {sorted(set(totals))[:5]}...")
    assert zero_priors == 0
    assert len(set(totals)) > 1, "the noisy class counts always sum to the same number: the row count leaks"


@pytest.fixture(scope="module")
def neighbour_service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from neighbours.population import write_neighbours

    from sandbox._private.vault.server import open_service

    root = tmp_path_factory.mktemp("failures")
    _, d1 = write_neighbours(root / "population", n=200)
    svc = open_service(root / "ws")
    svc.registry.add_population(d1)
    return svc


_FAILING = {
    "query": ("sandbox._private.vault.dp.engine.DPEngine.answer", 0.3),
    "fit": ("sandbox._private.vault.dp.engine.DPEngine.fit", 1.0),
    "audit": ("sandbox._private.vault.dp.fairness_audit.compute_audit", 0.5),
}


@pytest.mark.attack("error oracle", defence="a failed computation keeps its charge (reserve before compute)")
@pytest.mark.parametrize("what", sorted(_FAILING))
def test_a_failed_computation_is_charged(
    what: str, neighbour_service: Any, monkeypatch: pytest.MonkeyPatch, attack_figure: Callable[[str], None]
) -> None:
    """A computation that fails in the vault (here made to fail, as a failure that depended on one household would
    on D') still spends its ε, every time: probing for the failure is never free."""
    from sandbox._private.vault.tokens import TokenInfo

    svc, who = neighbour_service, TokenInfo(f"prober-{what}", "analyst", "", "")
    model = svc.fit({"dataset": "households", "epsilon": 1.0, "spec": {"estimator": "logistic_regression",
                     "target": "eviction", "features": ["household_type"]}}, who, None)  # fmt: skip
    target, eps = _FAILING[what]

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("numerical failure that only the lone household triggers")

    monkeypatch.setattr(target, failing)
    calls = {
        "query": lambda i: svc.query({"dataset": "households", "kind": "count", "epsilon": eps + i * 1e-6}, who, None),
        "fit": lambda i: svc.fit({"dataset": "households", "epsilon": eps + i * 1e-6, "spec": {"estimator":
                                  "gaussian_nb", "target": "eviction", "features": ["urbanisation"]}}, who, None),
        "audit": lambda i: audit_model(svc, model["id"], None, eps + i * 1e-6, who, None),
    }  # fmt: skip
    before = svc.budget("households", who)["analyst_epsilon_spent"]
    for i in range(3):
        with pytest.raises(RuntimeError, match="numerical failure"):
            calls[what](i)
    spent = svc.budget("households", who)["analyst_epsilon_spent"] - before
    attack_figure(f"{what}: 3 failed computations charged ε={spent:.6f} (3 x {eps})")
    assert spent == pytest.approx(3 * eps, abs=1e-5)
