"""The gate's HTTP endpoints mounted on the vault app (in-process TestClient): roles, bypasses, page."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox._private.vault.http.app import create_app
from sandbox._private.vault.ledger.ledger import ChargeRecord, ComputedAnswer, DatasetRecord
from sandbox._private.vault.server import open_service

with warnings.catch_warnings():
    # starlette 1.x asks for the `httpx2` package for its TestClient; plain httpx still works for these tests.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


class Vault:
    def __init__(self, root: Path) -> None:
        self.service = open_service(root)
        self.ledger = self.service.ledger
        self.dataset = self.ledger.add_dataset(
            DatasetRecord("households", 1, "f" * 64, "s" * 64, "{}", str(root), 10.0, 1e-6, "2026-11-29")
        )
        self.client = TestClient(create_app(self.service))
        self.tokens = {
            name: self.service.tokens.create(name, role)
            for name, role in [("alice", "analyst"), ("carol", "analyst"), ("bob", "reviewer"), ("erin", "reviewer")]
        }
        self.n = 0

    def h(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def charge(self, kind: str, public: dict[str, Any], private: dict[str, Any]) -> ChargeRecord:
        self.n += 1
        return self.ledger.charge(
            self.dataset,
            kind=kind,
            query_key=f"q{self.n}",
            query={"n": self.n},
            epsilon=0.25,
            delta=0.0,
            analyst="alice",
            run_id=None,
            compute=lambda: ComputedAnswer(public, private, "Laplace"),
        ).record

    def table(self, units: int = 40) -> ChargeRecord:
        public = {"kind": "count", "columns": ["city", "value"], "rows": [{"city": "utrecht", "value": units}]}
        return self.charge("aggregate", public, {"cells": [{"key": ["utrecht"], "rows": units, "units": units}]})

    def post_release(self, items: Any, who: str = "alice", title: str = "Tabel") -> Any:
        body = {"items": items, "title": title, "purpose": "test"}
        return self.client.post("/v1/releases", json=body, headers=self.h(who))


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault(tmp_path)


def ref(r: ChargeRecord) -> dict[str, str]:
    return {"id": r.id, "sha256": r.result_sha256}


def test_release_review_and_outbox_over_http(vault: Vault) -> None:
    resp = vault.post_release([ref(vault.table())])
    assert resp.status_code == 200, resp.text
    req = resp.json()
    assert req["status"] == "pending_review"
    listed = vault.client.get("/v1/releases", headers=vault.h("bob")).json()
    assert [r["id"] for r in listed] == [req["id"]]
    detail = vault.client.get(f"/v1/releases/{req['id']}", headers=vault.h("bob")).json()
    assert next(iter(detail["details"].values()))["ledger"]["epsilon"] == 0.25
    approve = {"action": "approve", "comment": "Read the table: purpose fits, no small cells, spend 0.25."}
    done = vault.client.post(f"/v1/releases/{req['id']}/actions", json=approve, headers=vault.h("bob"))
    assert done.status_code == 200 and done.json()["status"] == "released"
    check = vault.client.get("/v1/verify", headers=vault.h("bob")).json()
    assert check["ok"] is True and check["first_problem"] is None
    assert (vault.service.layout.workspace / "outbox" / f"rel-{req['id']}" / "manifest.json").is_file()


def test_analyst_token_cannot_take_reviewer_actions(vault: Vault) -> None:
    req = vault.post_release([ref(vault.table())]).json()
    for who in ("alice", "carol"):
        resp = vault.client.post(f"/v1/releases/{req['id']}/actions", json={"action": "approve"}, headers=vault.h(who))
        assert resp.status_code == 403
        assert "approve is a reviewer action" in resp.json()["message"]
    resp = vault.client.get("/v1/verify", headers=vault.h("alice"))
    assert resp.status_code == 403
    resp = vault.post_release([ref(vault.table(50))], who="bob")
    assert resp.status_code == 403


@pytest.mark.parametrize(
    ("items", "status", "match"),
    [
        ({"household_type": ["a"], "value": [1]}, 422, "items"),  # a DataFrame serialised as columns
        ([["a", 1], ["b", 2]], 400, "not a list"),
        ([{"id": "r_forged", "sha256": "0" * 64}], 400, "not minted by this vault"),
    ],
)
def test_bypasses_refused_over_http(vault: Vault, items: Any, status: int, match: str) -> None:
    resp = vault.post_release(items)
    assert resp.status_code == status, resp.text
    assert match in resp.json()["message"]


def test_title_with_path_escape_refused(vault: Vault) -> None:
    resp = vault.post_release([ref(vault.table())], title="../../etc/passwd")
    assert resp.status_code == 400 and "contains '../'" in resp.json()["message"]


def test_unknown_token_and_bad_ids(vault: Vault) -> None:
    assert vault.client.get("/v1/releases", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert vault.client.get("/v1/releases/req_0000000000000000", headers=vault.h("bob")).status_code == 404
    assert vault.client.get("/v1/releases/..%2F..%2Fetc", headers=vault.h("bob")).status_code in (404, 422)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        _json,
        st.fixed_dictionaries(
            {"items": st.lists(_json | st.fixed_dictionaries({"id": st.text(), "sha256": st.text()}), max_size=3)},
            optional={"title": st.text(), "purpose": st.text(), "justification": _json},
        ),
    ),
    action=st.fixed_dictionaries(
        {}, optional={"action": st.text(max_size=10) | st.sampled_from(["approve", "respond"]), "comment": st.text()}
    ),
)
def test_random_bodies_never_cause_a_server_error(vault: Vault, body: Any, action: Any) -> None:
    resp = vault.client.post("/v1/releases", json=body, headers=vault.h("alice"))
    assert resp.status_code < 500, resp.text
    assert set(resp.json()) >= ({"error", "message"} if resp.status_code >= 400 else {"id", "status"})
    resp = vault.client.post("/v1/releases/req_0123456789abcdef/actions", json=action, headers=vault.h("bob"))
    assert resp.status_code in (400, 403, 404, 422), resp.text
