"""Small helpers for the attacks that go through a real vault process over HTTP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from sandbox._private.vault.ledger.ledger import ChargeRecord, Ledger

# What a leaked stack trace or internal detail looks like in a response body.
TRACE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\", line \d+|sqlite3\.|psycopg|/site-packages/")


def charges(workspace: Path) -> list[ChargeRecord]:
    """Every charge in the vault's ledger, read as the operator would (straight from the SQLite file)."""
    return Ledger(workspace / "vault" / "ledger.sqlite").charges()


def spent(client: httpx.Client, dataset: str) -> float:
    """The dataset's spent epsilon according to the vault."""
    r = client.get(f"/v1/budget/{dataset}")
    assert r.status_code == 200, r.text
    return float(r.json()["epsilon_spent"])


def query(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/query", json=body)


def assert_clean_error(
    r: httpx.Response, status: int | tuple[int, ...], match: str = "", what: object = ""
) -> dict[str, Any]:
    """A refusal: the expected status, the JSON error shape, a message naming the fix, no stack trace."""
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, f"{what}: expected {statuses}, got {r.status_code}: {r.text[:300]}"
    assert not TRACE.search(r.text), f"{what}: internal detail in the response: {r.text[:300]}"
    body = r.json()
    assert set(body) == {"error", "message"}, (what, body)
    if match:
        assert re.search(match, body["message"]), (what, body["message"])
    return dict(body)
