"""System tests through a real vault process: references at huge ε, stored answers, roles, no rows in responses.

One vault process serves the whole module, on a policy with a huge budget so that at ε = 1e6 every aggregate can
be compared with the exact pandas value on the same rows.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import MARKER_ID, MARKER_INCOME, URBANISATION, VaultProcess, register_population, write_policy

pytestmark = pytest.mark.system

HUGE = 1e6
MARKERS = (f"{MARKER_INCOME}", f"{MARKER_ID}", "187654.32")


@pytest.fixture(scope="module")
def vault(
    vault_factory: Callable[..., VaultProcess], small_population: Path, tmp_path_factory: pytest.TempPathFactory
) -> VaultProcess:
    policy = write_policy(
        tmp_path_factory.mktemp("policy") / "huge.yaml", epsilon_per_dataset=1e9, epsilon_per_query_max=HUGE
    )
    v = vault_factory(policy=policy)
    register_population(v.workspace, small_population, policy)
    return v.start()


@pytest.fixture(scope="module")
def frames(small_population: Path) -> dict[str, pd.DataFrame]:
    return {t: pd.read_parquet(small_population / f"{t}.parquet") for t in ("households", "persons")}


def _query(c: httpx.Client, **body: Any) -> dict[str, Any]:
    r = c.post("/v1/query", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def _cells(answer: dict[str, Any], *keys: str) -> dict[tuple[Any, ...], float]:
    return {tuple(row[k] for k in keys): row["value"] for row in answer["values"]["rows"]}


# -- references at huge epsilon ---------------------------------------------------------------------------------
def test_grouped_count_equals_pandas_including_empty_groups(vault: VaultProcess, frames: dict[str, Any]) -> None:
    with vault.client() as c:
        ans = _query(c, dataset="households", kind="count", by=["household_type", "urbanisation"], epsilon=HUGE)
    hh = frames["households"]
    got = _cells(ans, "household_type", "urbanisation")
    assert len(got) == 5 * 5  # every public key pair, also the never-seen urbanisation 'none'
    exact = hh.groupby(["household_type", "urbanisation"]).size()
    for (t, u), value in got.items():
        assert value == exact.get((t, u), 0), (t, u)
    assert all(v == 0 for (t, u), v in got.items() if u == "none")


@pytest.mark.parametrize("kind", ["sum", "mean", "variance"])
def test_magnitude_aggregates_equal_pandas(vault: VaultProcess, frames: dict[str, Any], kind: str) -> None:
    with vault.client() as c:
        ans = _query(c, dataset="households", kind=kind, column="income", by=["urbanisation"], epsilon=HUGE)
    hh = frames["households"]
    exact = getattr(hh.groupby("urbanisation")["income"], "var" if kind == "variance" else kind)(
        **({"ddof": 0} if kind == "variance" else {})
    )
    for (u,), value in _cells(ans, "urbanisation").items():
        if u == "none":
            continue
        assert value == pytest.approx(exact[u], rel=1e-4), u


def test_person_level_mean_equals_pandas_after_household_bound(vault: VaultProcess, frames: dict[str, Any]) -> None:
    with vault.client() as c:
        ans = _query(c, dataset="persons", kind="mean", column="age", by=["gender"], epsilon=HUGE)
    persons = frames["persons"]
    assert persons.groupby("household_id").size().max() <= 8  # nothing truncated: pandas is the exact reference
    exact = persons.groupby("gender")["age"].mean()
    for (g,), value in _cells(ans, "gender").items():
        assert value == pytest.approx(exact[g], abs=0.01)


def test_quantile_and_histogram(vault: VaultProcess, frames: dict[str, Any]) -> None:
    hh = frames["households"]
    with vault.client() as c:
        med = _query(c, dataset="households", kind="quantile", column="income", q=0.5, epsilon=HUGE)
        hist = _query(c, dataset="households", kind="histogram", column="n_persons", bins=7, epsilon=HUGE)
    (value,) = _cells(med).values()
    assert abs(value - hh["income"].median()) < 0.01 * hh["income"].median()
    counts, _ = np.histogram(hh["n_persons"], bins=7, range=(1, 8))
    assert [row["value"] for row in hist["values"]["rows"]] == counts.tolist()


# -- stored answers ---------------------------------------------------------------------------------------------
def test_repeated_query_returns_stored_answer_at_zero_cost(vault: VaultProcess) -> None:
    body = {
        "dataset": "households",
        "kind": "mean",
        "column": "income",
        "by": ["urbanisation", "household_type"],
        "epsilon": 0.5,
    }
    with vault.client() as c:
        first = _query(c, **body)
        spent = c.get("/v1/budget/households").json()["epsilon_spent"]
        again = _query(c, **{**body, "by": ["household_type", "urbanisation"]})  # a trivial rewrite
        after = c.get("/v1/budget/households").json()["epsilon_spent"]
        stored = c.get(f"/v1/results/{first['id']}").json()
    assert first["charged_epsilon"] == 0.5 and not first["reused"]
    assert again["reused"] and again["charged_epsilon"] == 0.0
    assert (again["id"], again["sha256"], again["values"]) == (first["id"], first["sha256"], first["values"])
    assert after == spent
    assert stored["sha256"] == first["sha256"] and stored["values"] == first["values"]
    canonical = json.dumps(first["values"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == first["sha256"]


def test_run_id_is_recorded(vault: VaultProcess) -> None:
    with vault.client() as c:
        r = c.post(
            "/v1/query",
            headers={"X-Sandbox-Run": "study-42:cell-3"},
            json={"dataset": "households", "kind": "count", "by": ["arrears"], "epsilon": 0.3},
        )
        bad = c.post(
            "/v1/query",
            headers={"X-Sandbox-Run": "no spaces allowed"},
            json={"dataset": "households", "kind": "count", "epsilon": 0.31},
        )
    assert r.json()["run_id"] == "study-42:cell-3"
    assert bad.status_code == 422 and "not a valid run id" in bad.json()["message"]


# -- auth ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "status", "pattern"),
    [
        (None, 401, "No token"),
        ("Bearer nonsense", 401, "Malformed token"),
        ("Basic sbx_" + "a" * 43, 401, "Malformed token"),
        ("Bearer sbx_" + "a" * 43, 401, "Unknown token"),
    ],
)
def test_bad_tokens_are_401(vault: VaultProcess, header: str | None, status: int, pattern: str) -> None:
    headers = {"Authorization": header} if header else {}
    r = httpx.get(vault.url + "/v1/datasets", headers=headers)
    assert r.status_code == status
    assert r.json()["error"] == "AuthError" and pattern in r.json()["message"]


def test_reviewer_may_read_but_not_query(vault: VaultProcess) -> None:
    with vault.client("reviewer") as c:
        assert c.get("/v1/budget/households").status_code == 200
        r = c.post("/v1/query", json={"dataset": "households", "kind": "count", "epsilon": 0.1})
    assert r.status_code == 403
    assert r.json() == {
        "error": "AuthError",
        "message": "Token 'test-reviewer' has role 'reviewer'; this endpoint needs analyst or admin. "
        "Use a token with that role.",
    }


# -- bad input: 4xx with a message naming the fix, ledger unchanged ---------------------------------------------------
_BAD: list[tuple[str, Any, int, str]] = [
    ("unknown dataset", {"dataset": "nope", "kind": "count", "epsilon": 0.1}, 404, r"No dataset 'nope'.*Register it"),
    (
        "unknown column",
        {"dataset": "households", "kind": "mean", "column": "incme", "epsilon": 0.1},
        422,
        r"no column 'incme'; its columns are: household_id, household_type",
    ),
    (
        "wrong type",
        {"dataset": "households", "kind": "mean", "column": "household_type", "epsilon": 0.1},
        422,
        r"mean needs a numeric column.*use one of: income",
    ),
    (
        "group by numeric",
        {"dataset": "households", "kind": "count", "by": ["income"], "epsilon": 0.1},
        422,
        r"Cannot group or filter by 'income'",
    ),
    ("epsilon 0", {"dataset": "households", "kind": "count", "epsilon": 0}, 422, r"epsilon: Input should be greater"),
    ("epsilon negative", {"dataset": "households", "kind": "count", "epsilon": -1}, 422, r"epsilon.*finite number > 0"),
    ("epsilon NaN string", {"dataset": "households", "kind": "count", "epsilon": "NaN"}, 422, r"epsilon.*finite"),
    ("epsilon Infinity string", {"dataset": "households", "kind": "count", "epsilon": "Infinity"}, 422, r"finite"),
    (
        "epsilon over cap",
        {"dataset": "households", "kind": "count", "epsilon": 2 * HUGE},
        422,
        r"exceeds the policy's per-query maximum of 1e\+06",
    ),
    ("unknown field", {"dataset": "households", "kind": "count", "epsilon": 0.1, "rows": True}, 422, r"rows: unknown"),
    (
        "bad where",
        {"dataset": "households", "kind": "count", "epsilon": 0.1, "where": {"urbanisation": ["moon"]}},
        422,
        r"not categories of 'urbanisation'",
    ),
]


def _ledger_state(vault: VaultProcess) -> tuple[float, int]:
    with vault.client() as c:
        b = c.get("/v1/budget/households").json()
    return b["epsilon_spent"], b["answers"]


@pytest.mark.parametrize(("case", "body", "status", "pattern"), _BAD, ids=[b[0] for b in _BAD])
def test_bad_query_is_4xx_naming_the_fix(vault: VaultProcess, case: str, body: Any, status: int, pattern: str) -> None:
    before = _ledger_state(vault)
    with vault.client() as c:
        r = c.post("/v1/query", json=body)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error", "message"}
    assert r.json()["message"] and __import__("re").search(pattern, r.json()["message"]), r.json()
    assert _ledger_state(vault) == before


@pytest.mark.parametrize(
    ("raw", "status", "pattern"),
    [
        (b'{"dataset": "households", "kind": "count", "epsilon": 1e999}', 422, "finite"),
        (b'{"dataset": "households", "kind": "count", "epsilon": NaN}', 422, "finite"),
        (b'{"dataset": "households", "kind": "count", "epsilon": -Infinity}', 422, "finite"),
        (b"this is not json", 400, "not valid JSON"),
        (b'{"dataset": "households", "kind": "count", "epsilon": 0.1', 400, "not valid JSON"),
    ],
)
def test_raw_bodies_overflow_nan_and_non_json(vault: VaultProcess, raw: bytes, status: int, pattern: str) -> None:
    before = _ledger_state(vault)
    with vault.client() as c:
        r = c.post("/v1/query", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == status and pattern in r.json()["message"], r.text
    assert _ledger_state(vault) == before


def test_unknown_estimator_and_oversized_body(vault: VaultProcess) -> None:
    before = _ledger_state(vault)
    with vault.client() as c:
        r = c.post(
            "/v1/fit",
            json={
                "dataset": "households",
                "epsilon": 0.5,
                "spec": {"estimator": "svm", "target": "arrears", "features": ["income"]},
            },
        )
        big = c.post("/v1/query", content=b"[" + b"1," * 600_000 + b"1]", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "Unknown estimator 'svm'; use one of: logistic_regression" in r.json()["message"]
    assert big.status_code == 413 and "limits.max_request_bytes of 1000000" in big.json()["message"]
    assert _ledger_state(vault) == before


def test_streamed_oversized_body_and_pickles_are_refused(vault: VaultProcess) -> None:
    before = _ledger_state(vault)
    chunks = (b" " * 65_536 for _ in range(40))  # 2.6 MB without a Content-Length header
    payload = pickle.dumps({"dataset": "households", "kind": "count", "epsilon": 0.1})
    with vault.client() as c:
        streamed = c.post("/v1/query", content=chunks, headers={"Content-Type": "application/json"})
        pickled = c.post("/v1/query", content=payload, headers={"Content-Type": "application/python-pickle"})
    assert streamed.status_code == 413 and "limits.max_request_bytes" in streamed.json()["message"]
    assert 400 <= pickled.status_code < 500 and pickled.json()["error"] == "QueryError"
    assert _ledger_state(vault) == before


def test_admin_may_query(vault: VaultProcess) -> None:
    with vault.client("admin") as c:
        r = c.post("/v1/query", json={"dataset": "households", "kind": "count", "by": ["arrears"], "epsilon": 0.7})
    assert r.status_code == 200 and r.json()["analyst"] == "test-admin"


def test_unknown_endpoint_and_method_are_json(vault: VaultProcess) -> None:
    with vault.client() as c:
        missing, wrong = c.get("/v1/rows"), c.get("/v1/query")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFoundError"
    assert wrong.status_code == 405 and "Method not allowed" in wrong.json()["message"]


# -- no response of any kind carries protected rows ----------------------------------------------------------------
_Call = tuple[str, Callable[[httpx.Client], httpx.Response], tuple[int, ...]]


def _calls(seed: dict[str, Any], model: dict[str, Any], state: dict[str, str]) -> dict[tuple[str, str], _Call]:
    """A valid call (role, call, accepted statuses) for every endpoint; the test fails if OpenAPI lists more.

    Endpoints mounted by other components (the release gate) are here too: no response may carry rows.
    """
    fit = {
        "dataset": "households",
        "epsilon": 1.0,
        "spec": {"estimator": "logistic_regression", "target": "arrears", "features": ["income", "urbanisation"]},
    }
    q = {"dataset": "households", "kind": "sum", "column": "income", "by": ["urbanisation"], "epsilon": 5.0}
    item = {"id": seed["id"], "sha256": seed["sha256"], "values": seed["values"]}
    release = {"items": [item], "title": "Households by type", "purpose": "System test of the vault boundary."}

    def create(c: httpx.Client) -> httpx.Response:
        r = c.post("/v1/releases", json=release)
        state["request_id"] = r.json().get("id", "req_0000000000000000")
        return r

    def req(suffix: str = "") -> str:
        return f"/v1/releases/{state['request_id']}{suffix}"

    ok = (200,)
    return {
        ("get", "/v1/health"): ("analyst", lambda c: c.get("/v1/health"), ok),
        ("get", "/v1/datasets"): ("analyst", lambda c: c.get("/v1/datasets"), ok),
        ("get", "/v1/datasets/{name}/schema"): ("analyst", lambda c: c.get("/v1/datasets/households/schema"), ok),
        ("get", "/v1/datasets/{name}/dummy"): (
            "analyst",
            lambda c: c.get("/v1/datasets/households/dummy", params={"n": 3000}),
            ok,
        ),
        ("post", "/v1/query"): ("analyst", lambda c: c.post("/v1/query", json=q), ok),
        ("post", "/v1/cost"): ("analyst", lambda c: c.post("/v1/cost", json=q), ok),
        ("post", "/v1/fit"): ("analyst", lambda c: c.post("/v1/fit", json=fit), ok),
        ("post", "/v1/fit/cost"): ("analyst", lambda c: c.post("/v1/fit/cost", json=fit), ok),
        ("get", "/v1/budget/{name}"): ("reviewer", lambda c: c.get("/v1/budget/households"), ok),
        ("get", "/v1/results/{result_id}"): ("admin", lambda c: c.get(f"/v1/results/{seed['id']}"), ok),
        ("post", "/v1/releases"): ("analyst", create, ok),
        ("get", "/v1/releases"): ("reviewer", lambda c: c.get("/v1/releases"), ok),
        ("get", "/v1/releases/{request_id}"): ("reviewer", lambda c: c.get(req()), ok),
        ("post", "/v1/releases/{request_id}/actions"): (
            "reviewer",
            lambda c: c.post(req("/actions"), json={"action": "comment", "comment": "Looks fine."}),
            ok,
        ),
        # retrying the release of a request that is not approved is refused; the refusal must not leak either
        ("post", "/v1/releases/{request_id}/release"): ("admin", lambda c: c.post(req("/release")), (200, 400, 409)),
        ("get", "/v1/verify"): ("admin", lambda c: c.get("/v1/verify"), ok),
        # the review page's fragments and the report of an audit item (this request's item is a table: 404)
        ("get", "/review/fragments/requests"): ("reviewer", lambda c: c.get("/review/fragments/requests"), ok),
        ("get", "/review/fragments/requests/{request_id}"): (
            "reviewer",
            lambda c: c.get(f"/review/fragments/requests/{state['request_id']}"),
            ok,
        ),
        ("get", "/v1/releases/{request_id}/items/{item_id}/report"): (
            "reviewer",
            lambda c: c.get(req(f"/items/{seed['id']}/report")),
            (404,),
        ),
        ("post", "/v1/releases/{request_id}/items/{item_id}/report-link"): (
            "reviewer",
            lambda c: c.post(req(f"/items/{seed['id']}/report-link")),
            (404,),
        ),
        ("get", "/v1/gate/flags"): ("reviewer", lambda c: c.get("/v1/gate/flags"), ok),
        ("post", "/v1/models/{model_id}/audit"): (
            "analyst",
            lambda c: c.post(f"/v1/models/{model['id']}/audit", json={"protected": ["household_type"]}),
            ok,
        ),
        ("get", "/v1/jobs"): ("analyst", lambda c: c.get("/v1/jobs"), ok),
        ("get", "/v1/jobs/{job_id}"): ("analyst", lambda c: c.get(f"/v1/jobs/{_a_job(c)}"), ok),
        ("delete", "/v1/jobs/{job_id}"): ("analyst", lambda c: c.delete(f"/v1/jobs/{_a_job(c)}"), ok),
        ("post", "/v1/review/login"): ("reviewer", lambda c: c.post("/v1/review/login"), ok),
        ("post", "/v1/review/session"): ("reviewer", lambda c: c.post("/v1/review/session"), ok),
    }


def _a_job(c: httpx.Client) -> str:
    """The id of one of the caller's jobs (the fit and the audit of this test made some)."""
    jobs = c.get("/v1/jobs").json()
    assert jobs, "the analyst's computations should be listed as jobs"
    return str(jobs[0]["id"])


def test_no_endpoint_returns_protected_rows(vault: VaultProcess) -> None:
    with vault.client() as c:
        openapi = c.get("/openapi.json").json()
        seed = _query(c, dataset="households", kind="count", by=["household_type"], epsilon=1.0)
        spec = {"estimator": "gaussian_nb", "target": "arrears", "features": ["income", "urbanisation"]}
        model = c.post("/v1/fit", json={"dataset": "households", "spec": spec, "epsilon": 1.0}).json()
    state: dict[str, str] = {}
    calls = _calls(seed, model, state)
    listed = {(m, p) for p, ops in openapi["paths"].items() for m in ops}
    assert listed == set(calls), f"every endpoint needs a case here: {sorted(listed ^ set(calls))}"
    texts = {}
    for key, (role, call, statuses) in calls.items():
        with vault.client(role) as c:
            r = call(c)
        assert r.status_code in statuses, (key, r.status_code, r.text[:500])
        texts[key] = r.text
    for key, text in texts.items():
        for marker in MARKERS:
            assert marker not in text, (key, marker)
    assert all('"private' not in t for t in texts.values())  # Answer.private stays in the ledger


def test_dummy_rows_follow_schema_not_data(vault: VaultProcess, frames: dict[str, Any]) -> None:
    with vault.client() as c:
        body = c.get("/v1/datasets/households/dummy", params={"n": 500, "seed": 1}).json()
        capped = c.get("/v1/datasets/households/dummy", params={"n": 2_000_000})
    dummy = pd.DataFrame(body["data"], columns=body["columns"])
    assert len(dummy) == 500 and list(dummy.columns) == list(frames["households"].columns)
    assert set(dummy["urbanisation"]) <= set(URBANISATION)
    assert dummy["income"].between(0, 200_000).all()
    real = set(frames["households"]["income"].round(2))
    assert len(real & set(dummy["income"].round(2))) <= 5  # schema-shaped, not copied rows
    assert capped.status_code == 422 and "limits.max_dummy_rows" in capped.json()["message"]


def test_generated_population_through_the_vault(population_vault: VaultProcess, generated_population: Path) -> None:
    hh = pd.read_parquet(generated_population / "households.parquet")
    with population_vault.client() as c:
        names = [d["name"] for d in c.get("/v1/datasets").json()]
        schema = c.get("/v1/datasets/households/schema").json()
        cat = next(col["name"] for col in schema["columns"] if col["kind"] == "category")
        r = c.post("/v1/query", json={"dataset": "households", "kind": "count", "by": [cat], "epsilon": 1.0})
    assert names == ["households", "persons", "signals"]
    assert r.status_code == 200
    got = {row[cat]: row["value"] for row in r.json()["values"]["rows"]}
    exact = hh[cat].astype(str).value_counts()
    for key, value in got.items():  # geometric noise at ε=1: |noise| < 15 with probability 1 - 1e-6
        assert abs(value - exact.get(key, 0)) < 15, key
