"""How often an analyst may ask the gate, and the flag reviewers see on repeated blocked requests.

Every release request is a question to the gate, and through the reviewers' decision to the exact disclosure
checks. ``policy.gate.max_requests_per_day`` caps the requests of one analyst on one dataset per UTC day (blocked
ones included); a request over the cap is refused before anything is charged or stored, with a message that
states the cap and when it resets. Days on which an analyst's requests on a dataset were blocked, or failed the
exact checks, at least ``policy.gate.flag_blocked_per_day`` times are flagged to reviewers.

Both read a small index of the requests (``gate_request_datasets`` in the ledger database: request, author,
dataset, time, blocked, exact fail), inside the gate's transaction, so concurrent requests are counted one after the
other and no stored report has to be read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox._private.shared.errors import RequestCapError
from sandbox._private.shared.policy import Policy
from sandbox._private.vault.ledger.db import Tx

__all__ = [
    "DDL",
    "UtcDay",
    "utc_day",
    "datasets_of",
    "failed_exact",
    "record_request",
    "backfill",
    "check_cap",
    "flags",
]


class UtcDay:
    """One UTC day: its date, the ISO time it starts and the ISO time the cap resets (the next midnight)."""

    def __init__(self, now: datetime | None = None) -> None:
        now = (now or datetime.now(UTC)).astimezone(UTC)
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        self.date = start.date().isoformat()
        self.start = start.isoformat(timespec="microseconds")
        self.reset = (start + timedelta(days=1)).isoformat(timespec="seconds")


def utc_day(now: datetime | None = None) -> UtcDay:
    """Return the UTC day of ``now`` (default: the current time)."""
    return UtcDay(now)


def datasets_of(gate: Mapping[str, Any]) -> list[str]:
    """Return the datasets (names) a stored gate report covers, for new and older report formats."""
    named = gate.get("datasets")
    if isinstance(named, list):
        return [str(d) for d in named]
    return sorted({str(i.get("dataset", "")).rsplit(" v", 1)[0] for i in gate.get("items", [])})


#: One row per (request, dataset) it touches: what the cap and the flags count, without reading the reports.
DDL = (
    """CREATE TABLE IF NOT EXISTS gate_request_datasets (
        request_id TEXT NOT NULL, author TEXT NOT NULL, dataset TEXT NOT NULL, created TEXT NOT NULL,
        blocked INTEGER NOT NULL, exact_fail INTEGER NOT NULL, PRIMARY KEY (request_id, dataset))""",
    "CREATE INDEX IF NOT EXISTS gate_request_datasets_by_author ON gate_request_datasets (author, dataset, created)",
)


def failed_exact(gate: Mapping[str, Any]) -> bool:
    """Whether a stored gate report's exact findings fail (reviewers' view)."""
    findings = gate.get("reviewer_findings")
    return isinstance(findings, Mapping) and findings.get("disclosure_verdict") == "fail"


def record_request(tx: Tx, request_id: str, author: str, created: str, gate: Mapping[str, Any], blocked: bool) -> None:
    """Index a new request under every dataset it touches (in the transaction that stores it)."""
    for name in datasets_of(gate):
        tx.execute(
            "INSERT INTO gate_request_datasets (request_id, author, dataset, created, blocked, exact_fail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (request_id, author, name, created, int(blocked), int(failed_exact(gate))),
        )


def backfill(tx: Tx) -> int:
    """Index the requests stored before the index existed; return how many."""
    rows = tx.execute(
        "SELECT id, author, created, gate_json, state_json FROM gate_requests "
        "WHERE id NOT IN (SELECT request_id FROM gate_request_datasets)"
    )
    for rid, author, created, gate_json, state_json in rows:
        blocked = bool(json.loads(state_json).get("blocked"))
        record_request(tx, str(rid), str(author), str(created), json.loads(gate_json), blocked)
    return len(rows)


def check_cap(tx: Tx, analyst: str, datasets: Iterable[str], policy: Policy, now: datetime | None = None) -> None:
    """Refuse a new request of ``analyst`` on ``datasets`` if one of them already has today's cap of requests.

    Raises
    ------
    RequestCapError
        Naming the dataset, the cap, the requests made today and the reset time; nothing has been charged.
    """
    day = utc_day(now)
    cap = policy.gate.max_requests_per_day
    for name in sorted(set(datasets)):
        row = tx.one(
            "SELECT COUNT(*) FROM gate_request_datasets WHERE author = ? AND dataset = ? AND created >= ?",
            (analyst, name, day.start),
        )
        made = int(row[0]) if row else 0
        if made >= cap:
            raise RequestCapError(
                f"{analyst!r} has made {made} release requests on dataset {name!r} today ({day.date}, UTC); "
                f"the policy allows {cap} per analyst, dataset and day (gate.max_requests_per_day). The cap resets "
                f"at {day.reset}. Nothing was charged and no request was created: put several results in one "
                "request, or ask again after the reset."
            )


def flags(tx: Tx, policy: Policy, analyst: str | None = None) -> list[dict[str, Any]]:
    """Return the days on which an analyst's requests on a dataset were blocked or failed the exact checks too often.

    Returns one entry per (analyst, dataset, UTC day) at or above ``policy.gate.flag_blocked_per_day``, newest
    first: ``{"analyst", "dataset", "day", "requests", "blocked", "exact_fail", "request_ids", "threshold"}``. For
    reviewers only (``exact_fail`` comes from the exact checks).
    """
    where, params = (" WHERE author = ?", (analyst,)) if analyst else ("", ())
    rows = tx.execute(
        "SELECT request_id, author, dataset, created, blocked, exact_fail FROM gate_request_datasets"
        + where
        + " ORDER BY created, request_id",
        params,
    )
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for rid, author, name, created, blocked, exact in rows:
        g = groups.setdefault(
            (str(author), str(name), str(created)[:10]),
            {"requests": 0, "blocked": 0, "exact_fail": 0, "request_ids": []},
        )
        g["requests"] += 1
        g["blocked"] += int(blocked)
        g["exact_fail"] += int(exact)
        if blocked or exact:
            g["request_ids"].append(str(rid))
    threshold = policy.gate.flag_blocked_per_day
    out = [
        {"analyst": a, "dataset": d, "day": day, **g, "threshold": threshold}
        for (a, d, day), g in groups.items()
        if len(g["request_ids"]) >= threshold
    ]
    return sorted(out, key=lambda f: (f["day"], f["analyst"], f["dataset"]), reverse=True)
