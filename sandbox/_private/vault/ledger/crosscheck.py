"""The ledger against the journal: what ``sandbox verify`` checks so that a restore or an edit cannot undo a charge.

The journal is append-only, hash-chained and keyed; the ledger is a database an operator may restore from an
older copy. Every charge is journalled before its answer (or error) leaves the vault, so the journal is the
record a ledger must match:

1. every ``ledger.charge`` event is in the ledger: an answered one in ``charges`` with the same result hash and
   ε, a failed one in ``reservations`` (kept) with the same ε;
2. each population's spent ε is at least the ε the journal logged for it (else the ledger forgot charges);
3. every release request the journal logged beyond its creation (a vote, a comment, a decision, a release)
   exists in the ledger; one logged only at creation and missing is a note (a crash during its creation
   leaves exactly that: the gate journals inside the transaction that the crash rolled back);
4. the running totals equal the history they sum (a total edited down is caught);
5. a charge the ledger marks as journalled is in the journal (a journal cut back is caught).

Only reads: the ledger is opened read-only where the backend allows it, and nothing is created.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox._private.shared.errors import SandboxError

from .db import LedgerDB, Tx
from .journalling import CHARGE_EVENT
from .schema import SCHEMA_VERSION, schema_version, table_names

__all__ = ["LedgerCheck", "check_ledger"]

_TOL = 1e-9
_SHOW = 5  # charges named in a problem line


@dataclass(frozen=True)
class LedgerCheck:
    """Outcome of :func:`check_ledger`: figures for the summary, problems (empty when the ledger matches)."""

    target: str
    answers: int = 0
    kept: int = 0
    logged: int = 0
    spent: dict[str, float] = field(default_factory=dict)
    logged_spent: dict[str, float] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """Return the summary lines (figures, then one line per problem)."""
        out = [
            f"ledger {self.target}: {self.answers} answers, {self.kept} charges kept without an answer; "
            f"journal: {self.logged} charges"
        ]
        for pop in sorted(self.spent):
            out.append(
                f"population {pop}: ε spent {self.spent[pop]:.6g} (journal logs {self.logged_spent.get(pop, 0.0):.6g})"
            )
        return out + [f"note: {n}" for n in self.notes]


def _describe(event: dict[str, Any]) -> str:
    where = f"{event.get('dataset')} v{event.get('version')}"
    return f"{event.get('id')} ({where}, ε {event.get('epsilon')}, {event.get('created')})"


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f" and {len(items) - _SHOW} more" if len(items) > _SHOW else "")


def _read(tx: Tx) -> dict[str, Any]:
    tables = table_names(tx)
    out: dict[str, Any] = {"tables": tables}
    out["charges"] = {
        str(r[0]): (str(r[1]), int(r[2]), float(r[3]), str(r[4]))
        for r in tx.execute("SELECT id, dataset, version, epsilon, result_sha256 FROM charges")
    }
    out["kept"] = {
        str(r[0]): (str(r[1]), float(r[2]), str(r[3]))
        for r in tx.execute("SELECT id, population, epsilon, state FROM reservations")
    }
    out["datasets"] = {
        (str(r[0]), int(r[1])): str(r[2]) for r in tx.execute("SELECT name, version, population FROM datasets")
    }
    out["populations"] = {str(r[0]): float(r[1]) for r in tx.execute("SELECT name, epsilon_spent FROM populations")}
    out["requests"] = (
        {str(r[0]) for r in tx.execute("SELECT id FROM gate_requests")} if "gate_requests" in tables else set()
    )
    out["logged"] = {str(r[0]) for r in tx.execute("SELECT id FROM gate_logged_charges")}
    out["unjournalled"] = {str(r[0]) for r in tx.execute("SELECT id FROM journal_pending")}
    return out


def _open(target: str | Path) -> LedgerDB | None:
    text = str(target)
    if not text.startswith(("postgresql://", "postgres://")) and not Path(text).is_file():
        return None
    return LedgerDB(text)


_CREATION = ("request.create", "request.gate")


def _requests(entries: Sequence[Any]) -> tuple[list[str], list[str]]:
    """Request ids the journal logged: (those with events beyond their creation, those logged only at creation)."""
    beyond: set[str] = set()
    seen: set[str] = set()
    for e in entries:
        rid = e.payload.get("request_id") if isinstance(e.payload, dict) else None
        if rid is None or not (e.type.startswith("request.") or e.type == "release"):
            continue
        seen.add(str(rid))
        submit = e.type == "request.state" and e.payload.get("action") == "submit"
        if e.type not in _CREATION and not submit:
            beyond.add(str(rid))
    return sorted(beyond), sorted(seen - beyond)


def check_ledger(target: str | Path, entries: Sequence[Any]) -> LedgerCheck:
    """Check the ledger at ``target`` against the journal's entries (see the module docstring)."""
    # by id: a crash between an append and its commit makes the gate's sync journal a charge twice
    events = list({str(e.payload.get("id")): dict(e.payload) for e in entries if e.type == CHARGE_EVENT}.values())
    requests = _requests(entries)
    where = str(target) if not str(target).startswith("postgres") else str(target).split("@")[-1]
    db = _open(target)
    if db is None:
        if events:
            return LedgerCheck(where, logged=len(events), problems=(
                f"there is no ledger, but the journal logs {len(events)} charges: restore the ledger from its backup",
            ))  # fmt: skip
        return LedgerCheck(where)
    try:
        with db.transaction(write=False) as tx:
            version = schema_version(tx)
            if version != SCHEMA_VERSION:
                return LedgerCheck(where, problems=(
                    f"the ledger has schema {version}; migrate it with `sandbox ledger migrate` and verify again",
                ))  # fmt: skip
            data = _read(tx)
    except SandboxError as exc:
        return LedgerCheck(where, problems=(f"cannot read the ledger: {exc}",))
    finally:
        db.close()
    return _compare(where, data, events, requests)


def _compare(
    where: str, data: dict[str, Any], events: list[dict[str, Any]], requests: tuple[list[str], list[str]]
) -> LedgerCheck:
    problems: list[str] = []
    notes: list[str] = []
    missing, differ = [], []
    logged_spent: dict[str, float] = defaultdict(float)
    for ev in events:
        rid = str(ev.get("id"))
        pop = ev.get("population") or data["datasets"].get((ev.get("dataset"), ev.get("version")), ev.get("dataset"))
        logged_spent[str(pop)] += float(ev.get("epsilon") or 0.0)
        if ev.get("state") == "failed":
            kept = data["kept"].get(rid)
            if kept is None:
                missing.append(_describe(ev))
            elif abs(kept[1] - float(ev["epsilon"])) > _TOL:
                differ.append(f"{rid} (kept ε {kept[1]}, journal {ev['epsilon']})")
            continue
        row = data["charges"].get(rid)
        if row is None:
            missing.append(_describe(ev))
        elif row[3] != ev.get("result_sha256") or abs(row[2] - float(ev.get("epsilon") or 0.0)) > _TOL:
            differ.append(
                f"{rid} (ledger sha256 {row[3][:12]}… ε {row[2]}, "
                f"journal {str(ev.get('result_sha256'))[:12]}… ε {ev.get('epsilon')})"
            )
    if missing:
        problems.append(
            f"{len(missing)} charges in the journal are missing from the ledger: {_names(missing)}. The ledger was "
            "restored from an older copy or edited; restore the newest backup (its head must match the head kept "
            "with it) and verify again. Never serve a ledger that spent less than its journal."
        )
    if differ:
        problems.append(f"{len(differ)} charges differ between the journal and the ledger: {_names(differ)}.")
    spent = dict(data["populations"])
    for pop, logged in sorted(logged_spent.items()):
        have = spent.get(pop, 0.0)
        if have + _TOL < logged:
            problems.append(
                f"population {pop}: the ledger's spent ε {have:.6g} is less than the {logged:.6g} the journal logged"
            )
    history: dict[str, float] = defaultdict(float)
    for dataset, version, eps, _ in data["charges"].values():
        history[data["datasets"].get((dataset, version), dataset)] += eps
    for pop, eps, _ in data["kept"].values():
        history[pop] += eps
    for pop, total in sorted(spent.items()):
        if abs(total - history.get(pop, 0.0)) > _TOL * max(1.0, total):
            problems.append(
                f"population {pop}: the running total ε {total:.6g} differs from the sum of its charges "
                f"{history.get(pop, 0.0):.6g}; the ledger was edited outside the vault"
            )
    journalled = {str(ev.get("id")) for ev in events}
    lost = sorted(data["logged"] - journalled - data["unjournalled"] - set(data["kept"]))
    lost = [i for i in lost if i in data["charges"]]
    if lost:
        problems.append(
            f"{len(lost)} charges the ledger journalled are not in the journal: {_names(lost)}; the journal was cut "
            "back or replaced by an older copy"
        )
    absent = [r for r in requests[0] if r not in data["requests"]]
    if absent:
        problems.append(f"{len(absent)} release requests in the journal are missing from the ledger: {_names(absent)}")
    unborn = [r for r in requests[1] if r not in data["requests"]]
    if unborn:
        notes.append(
            f"{len(unborn)} release requests were logged at creation but are not in the ledger: {_names(unborn)} "
            "(a crash while they were created; they were never submitted)"
        )
    return LedgerCheck(
        where, len(data["charges"]), len(data["kept"]), len(events), spent, dict(logged_spent), tuple(problems),
        tuple(missing), tuple(notes),
    )  # fmt: skip
