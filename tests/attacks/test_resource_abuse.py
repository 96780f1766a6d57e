"""Resource abuse: requests built to exhaust the vault's memory or CPU.

Defence: the policy's ``limits`` (``max_groups`` cells per query, ``max_dummy_rows``, ``max_request_bytes``) are
checked before any work, and each refusal is a 4xx with a message that states the limit and the fix. Nothing is
charged, and the vault keeps answering afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ._vault_http import assert_clean_error, charges, query, spent

MAX_BYTES = 1_000_000  # policies/default.yaml limits.max_request_bytes
ALL_CATEGORICAL = ["household_type", "urbanisation", "arrears"]  # 5 x 5 x 2 = 50 groups


def _chunks(data: bytes, size: int = 65_536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _abuse(c: Any) -> dict[str, Any]:
    """Send each abusive request; return the responses by name."""
    count = {"dataset": "households", "kind": "count", "epsilon": 0.1}
    big = json.dumps({**count, "padding": "x" * (2 * MAX_BYTES)}).encode()
    deep = b'{"dataset": "households", "kind": "count", "epsilon": 0.1, "where": {"arrears": ' + b"[" * 200_000
    deep += b"]" * 200_000 + b"}}"
    return {
        "histogram 1000 bins x 50 groups": query(
            c, {"dataset": "households", "kind": "histogram", "column": "income", "bins": 1000,
                "by": ALL_CATEGORICAL, "epsilon": 0.1}),
        "group-by over the limit": query(c, {**count, "by": ALL_CATEGORICAL}),
        "by with 9 columns": query(c, {**count, "by": ALL_CATEGORICAL * 3}),
        "bins 1e9": query(c, {"dataset": "households", "kind": "histogram", "column": "income", "bins": 10**9,
                               "epsilon": 0.1}),
        "dummy n above the policy": c.get("/v1/datasets/households/dummy", params={"n": 10_000}),
        "dummy n of 1e12": c.get("/v1/datasets/households/dummy", params={"n": 10**12}),
        "2 MB body": c.post("/v1/query", content=big, headers={"Content-Type": "application/json"}),
        "2 MB chunked body": c.post("/v1/query", content=_chunks(big), headers={"Content-Type": "application/json"}),
        "200k-deep JSON": c.post("/v1/query", content=deep, headers={"Content-Type": "application/json"}),
        "200k filter values": query(c, {**count, "where": {"household_type": ["single"] * 200_000}}),
        "50k unknown filter values": query(c, {**count, "where": {"household_type": [f"v{i}" for i in range(50_000)]}}),
    }  # fmt: skip


EXPECTED: dict[str, tuple[int | tuple[int, ...], str]] = {
    "histogram 1000 bins x 50 groups": (422, r"limits\.max_groups"),
    "group-by over the limit": (422, r"limits\.max_groups"),
    "by with 9 columns": (422, r"(?i)at most 8"),
    "bins 1e9": (422, r"bins"),
    "dummy n above the policy": (422, r"limits\.max_dummy_rows"),
    "dummy n of 1e12": (422, r"\bn\b"),
    "2 MB body": (413, r"limits\.max_request_bytes"),
    "2 MB chunked body": (413, r"limits\.max_request_bytes"),
    "200k-deep JSON": ((400, 413, 422), r"(?i)json|pars|max_request_bytes|invalid"),
    "200k filter values": (413, r"limits\.max_request_bytes"),
    "50k unknown filter values": (422, r"not categories"),
}


@pytest.mark.system
@pytest.mark.attack("resource abuse", defence="policy limits checked before any work; 4xx naming the limit")
def test_abusive_requests_are_refused_within_limits(shared_vault: Any, attack_figure: Callable[[str], None]) -> None:
    vault = shared_vault  # limits: max_groups 40, max_dummy_rows 5000, max_request_bytes 1 MB (SHARED_POLICY)
    before = len(charges(vault.workspace))
    with vault.client("analyst") as c:
        spent_before = spent(c, "households")
        got = _abuse(c)
        for name, r in got.items():
            status, match = EXPECTED[name]
            assert_clean_error(r, status, match=match, what=name)
            # A refusal may echo what was sent, but never grows past the request limit (no amplification).
            assert len(r.content) <= MAX_BYTES, f"{name}: a {len(r.content)}-byte error message"
        assert spent(c, "households") == spent_before
        ok = query(c, {"dataset": "households", "kind": "count", "by": ALL_CATEGORICAL[:2], "epsilon": 0.0917})
        assert ok.status_code == 200, f"the vault stopped answering after the abuse: {ok.text[:200]}"
    assert len(charges(vault.workspace)) == before + 1
    statuses = sorted({r.status_code for r in got.values()})
    attack_figure(f"{len(got)} abusive requests refused ({', '.join(map(str, statuses))}); nothing charged")
