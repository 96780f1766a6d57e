"""Smuggling and self-approval: getting something out of the sandbox that the vault did not mint, or unreviewed.

Defence (DESIGN invariants 1 and 8): the gate accepts only results the vault recorded in the ledger, matched by id
*and* content hash (and values, when sent), belonging to the requesting analyst; raw tables, forged ids, altered
values and pickles are refused before a request exists. A reviewer account with the author's name cannot approve
the author's request, and an analyst token cannot approve at all.

The attack goes through the shared ``sandbox vault serve`` process, which mounts the gate's router.
"""

from __future__ import annotations

import base64
import copy
import pickle
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ._vault_http import assert_clean_error


def _smuggled(result: dict[str, Any]) -> dict[str, list[Any]]:
    """Release bodies' ``items`` that must all be refused."""
    altered = copy.deepcopy(result)
    altered["values"]["rows"][0]["value"] += 1
    raw = {"household_type": ["single", "couple"], "value": [412, 398]}
    return {
        "raw table": [raw],
        "pickle": [base64.b64encode(pickle.dumps(raw)).decode()],
        "forged id": [{"id": "r_" + "A" * 24, "sha256": "0" * 64}],
        "real id, wrong hash": [{"id": result["id"], "sha256": "0" * 64}],
        "real id and hash, altered values": [
            {"id": result["id"], "sha256": result["sha256"], "values": altered["values"]}
        ],
        "nested list": [[result["id"], result["sha256"]]],
    }


@pytest.mark.system
@pytest.mark.attack("smuggling", defence="gate takes only ledger results by id and sha256 (invariant 1)")
def test_smuggled_and_self_approved_releases_are_refused(
    shared_vault: Any, attack_figure: Callable[[str], None]
) -> None:
    vault = shared_vault
    who = {"alice": ("analyst", "alice"), "alice-as-reviewer": ("reviewer", "alice"), "bob": ("analyst", "bob"),
           "rita": ("reviewer", "rita")}  # fmt: skip

    def client(name: str) -> httpx.Client:
        return vault.client(*who[name])

    with client("alice") as alice, client("bob") as bob:
        q = {"dataset": "households", "kind": "count", "by": ["household_type"], "epsilon": 0.5}
        result = alice.post("/v1/query", json=q).json()
        release = {"title": "Huishoudens per type", "purpose": "attack test"}
        for name, items in _smuggled(result).items():
            r = alice.post("/v1/releases", json={**release, "items": items})
            assert_clean_error(r, (400, 404, 409, 422), what=name)
        ref = {"id": result["id"], "sha256": result["sha256"]}
        r = bob.post("/v1/releases", json={**release, "items": [ref]})
        assert_clean_error(r, (400, 403, 409, 422), what="another analyst's result")
        assert alice.get("/v1/releases", params={"closed": True}).json() == []
        created = alice.post("/v1/releases", json={**release, "items": [ref]})
        assert created.status_code == 200, created.text
        rid = created.json()["id"]
        approve = {"action": "approve", "comment": "Checked the table: purpose, SDC and spend are fine."}
        with client("alice-as-reviewer") as same_person:
            r = same_person.post(f"/v1/releases/{rid}/actions", json=approve)
            assert_clean_error(r, (400, 403, 409, 422), match="(?i)author|own", what="self-approval")
        assert_clean_error(alice.post(f"/v1/releases/{rid}/actions", json=approve), 403, what="analyst approves")
    with client("rita") as rita:
        r = rita.post(f"/v1/releases/{rid}/actions", json=approve)
        assert r.status_code == 200, r.text
    attack_figure(
        f"{len(_smuggled(result)) + 1} smuggling attempts refused before a request existed; self-approval and "
        "analyst approval refused; an independent reviewer's approval accepted"
    )
