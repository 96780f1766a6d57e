"""Release requests end to end: gate checks, review workflow, outbox and audit log over the ledger database.

:class:`ReleaseService` keeps each request (its items, the gate's report and its :class:`RequestState`) in the
ledger database (SQLite or PostgreSQL, table ``gate_requests``), and every mutation appends its audit events to
the hash-chained log *inside* the database transaction: if the append fails nothing is committed, and the new
log head is anchored in ``gate_anchor`` (and ``vault/audit.head``) in the same transaction.

A request is created and, unless the gate blocked it, submitted in one step (``ws.release``): provenance and
the daily cap are checked first (:mod:`.limits`; nothing is charged for a refused request), then the DP disclosure
tests the items need are charged in the ledger (:mod:`.dp_sdc`), then the gate's report is stored with the
reviewer-only exact findings (:mod:`.findings`). The analyst's view of a request never carries those findings, and
the audit log records only their salted hash. When the vote that completes the review approves it, the service
writes the release to the outbox and marks it released; a request whose exact disclosure checks fail cannot be
approved. A request with a model item carries its Algoritmeregister draft (:mod:`.register`): the author's
``register`` fields are stored in the gate report, the draft is checked when the request is made and its files are
written to the outbox with the model.
:meth:`ReleaseService.recover` (called when the vault starts) repairs a torn log line, removes unfinished
outbox folders, records unlogged complete releases and marks approved requests whose release is in the outbox
as released, so a crash leaves each release complete or absent.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sandbox._private.shared.algoritmeregister import check_author_fields
from sandbox._private.shared.errors import BudgetExceededError, InternalError, NotFoundError, ReleaseError, SchemaError
from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.schema import TableSchema
from sandbox._private.vault.disclosure import is_deferred
from sandbox._private.vault.ledger.db import Tx
from sandbox._private.vault.ledger.ledger import ChargeRecord, Ledger
from sandbox._private.vault.outbox.contents import analyst_gate, build_release, ledger_entry
from sandbox._private.vault.outbox.files import PublishedRelease, ReleaseFile, publish_release, recover_outbox
from sandbox._private.vault.outbox.journal import AuditLog, Head
from sandbox._private.vault.outbox.verify import VerifyReport, verify_workspace, write_anchor

from . import limits
from .checks import OpenItem, check_records, plan_tests, resolve_items
from .dp_sdc import TEST_KIND, TestPlan, compute_test
from .findings import approvable
from .limits import check_cap, flags
from .names import check_text, check_title
from .register import author_fields_of, model_drafts, register_files, register_report
from .workflow import Action, Actor, Comment, RequestState, Vote, apply, new_request, required_approvals, visible_votes

__all__ = ["ReleaseService", "STANDARD_REASON"]

#: What a reviewer tells the analyst when the exact disclosure checks fail: no figures, so no true count leaves.
STANDARD_REASON = (
    "The output does not pass the vault's disclosure control. Merge categories, drop small cells or top-code the "
    "variable, and make a new request."
)

_DDL = (
    """CREATE TABLE IF NOT EXISTS gate_requests (
        id TEXT PRIMARY KEY, author TEXT NOT NULL, title TEXT NOT NULL, purpose TEXT NOT NULL,
        justification TEXT NOT NULL, created TEXT NOT NULL, items_json TEXT NOT NULL, gate_json TEXT NOT NULL,
        state_json TEXT NOT NULL, release_id TEXT)""",
    "CREATE TABLE IF NOT EXISTS gate_anchor (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS gate_lock (id INTEGER PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS gate_logged_charges (id TEXT PRIMARY KEY)",
)
_CHARGE_FIELDS = (
    "id",
    "dataset",
    "version",
    "kind",
    "epsilon",
    "delta",
    "analyst",
    "run_id",
    "result_sha256",
    "created",
)
_COLS = "id, author, title, purpose, justification, created, items_json, gate_json, state_json, release_id"
_CLOSED = ("rejected", "withdrawn")
_SYSTEM = Actor("vault", "admin")
_CHECKERS = ("reviewer", "admin")


def _state_to_json(state: RequestState) -> str:
    return json.dumps(asdict(state), sort_keys=True)


def _state_from_json(text: str) -> RequestState:
    data = json.loads(text)
    data["votes"] = tuple(Vote(**v) for v in data["votes"])
    data["comments"] = tuple(Comment(**c) for c in data["comments"])
    return RequestState(**data)


class ReleaseService:
    """Release requests of one workspace.

    Parameters
    ----------
    workspace : str or Path
        The workspace (audit log in ``vault/audit.jsonl``, outbox in ``outbox/``).
    ledger : Ledger
        The ledger whose results are released and whose database stores the requests.
    policy : Policy
        The policy in force.
    """

    def __init__(
        self,
        workspace: str | Path,
        ledger: Ledger,
        policy: Policy,
        complete: Callable[[ChargeRecord], ChargeRecord] | None = None,
    ) -> None:
        self.layout = WorkspaceLayout(Path(workspace))
        self.ledger = ledger
        self.policy = policy
        #: adds the disclosure statistics an answer was stored without (``VaultService.complete``)
        self.complete = complete
        self.log = AuditLog(self.layout.journal)
        self._schemas: dict[tuple[str, int], TableSchema] = {}
        with self.ledger.db.transaction() as tx:
            for ddl in (*_DDL, *limits.DDL):
                tx.execute(ddl)
            limits.backfill(tx)
            if tx.one("SELECT id FROM gate_lock WHERE id = 1") is None:
                tx.execute("INSERT INTO gate_lock (id) VALUES (1)")

    # -- transactions ----------------------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[Tx]:
        with self.ledger.db.transaction() as tx:
            tx.execute(f"SELECT id FROM gate_lock WHERE id = 1{tx.lock_clause}")
            yield tx

    def _log(self, tx: Tx, events: Sequence[tuple[str, str, Mapping[str, Any]]]) -> None:
        entries = self.log.append_many(events)
        head = Head(entries[-1].seq, entries[-1].hash)
        tx.execute("DELETE FROM gate_anchor WHERE id = 1")
        tx.execute("INSERT INTO gate_anchor (id, seq, hash) VALUES (1, ?, ?)", (head.seq, head.hash))
        write_anchor(self.layout.journal_head, head)

    def sync_charges(self) -> int:
        """Append a ``ledger.charge`` event for every ledger charge not yet in the audit log; return how many.

        Runs before every gate action, in its own transaction (so a request's charges are on the log before the
        request, even when the request is refused); the vault may call it after each charge to log it at once.
        """
        with self._tx() as tx:
            return self._sync_charges(tx)

    def _sync_charges(self, tx: Tx) -> int:
        rows = tx.execute(
            f"SELECT {', '.join(_CHARGE_FIELDS)} FROM charges "
            "WHERE id NOT IN (SELECT id FROM gate_logged_charges) ORDER BY created, id"
        )
        if not rows:
            return 0
        self._log(tx, [(str(r[6]), "ledger.charge", dict(zip(_CHARGE_FIELDS, r, strict=True))) for r in rows])
        for r in rows:
            tx.execute("INSERT INTO gate_logged_charges (id) VALUES (?)", (r[0],))
        return len(rows)

    def anchor(self) -> Head | None:
        """Return the log head anchored in the ledger database."""
        with self.ledger.db.transaction(write=False) as tx:
            row = tx.one("SELECT seq, hash FROM gate_anchor WHERE id = 1")
        return None if row is None else Head(int(row[0]), str(row[1]))

    def _row(self, tx: Tx, request_id: str) -> tuple[Any, ...]:
        row = tx.one(f"SELECT {_COLS} FROM gate_requests WHERE id = ?", (request_id,))
        if row is None:
            raise NotFoundError(f"no release request {request_id!r}; `sandbox review list` shows the requests.")
        return row

    def _save(self, tx: Tx, state: RequestState, release_id: str | None = None) -> None:
        tx.execute(
            "UPDATE gate_requests SET state_json = ?, release_id = COALESCE(?, release_id) WHERE id = ?",
            (_state_to_json(state), release_id, state.request_id),
        )

    def _open_items(self, tx: Tx) -> dict[str, OpenItem]:
        held: dict[str, OpenItem] = {}
        for rid, items_json, state_json in tx.execute("SELECT id, items_json, state_json FROM gate_requests"):
            status = json.loads(state_json)["status"]
            if status not in _CLOSED:
                held.update({i: OpenItem(rid, status) for i in json.loads(items_json)})
        return held

    # -- analyst ---------------------------------------------------------------------------------------------
    def create(
        self,
        items: Sequence[Any],
        *,
        author: Actor,
        title: str,
        purpose: str,
        justification: str = "",
        register: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Check the items, store the request and submit it unless the gate blocked it; return its view.

        Provenance and the daily cap are checked before anything is charged; then the Algoritmeregister draft of
        every model item is built from ``register`` (the author's fields) and checked against the standard's
        limits (:mod:`.register`); then the DP disclosure tests the items need are charged (each in its own
        ledger transaction, never under the gate's lock); then the report is stored, with the drafts' unfilled
        fields as warnings. A request refused at any step leaves no request behind.
        """
        if author.role != "analyst":
            raise ReleaseError(f"release requests are made by analysts; {author.name} is {author.role}.")
        check_title(title)
        check_text(purpose, "purpose")
        check_text(justification, "justification", required=False)
        check_author_fields(register)  # an unknown field, a wrong type or a text over its limit: 422, nothing done
        request_id = "req_" + secrets.token_hex(8)
        self.sync_charges()  # committed on its own: a refused request must not roll back the charges' events
        with self._tx() as tx:
            records = self._resolve(tx, items, author)
        records = [self._completed(r) for r in records]  # deferred disclosure statistics: outside any transaction
        about = {"id": request_id, "title": title, "purpose": purpose, "justification": justification,
                 "author": author.name}  # fmt: skip
        drafts, warnings = model_drafts(records, about, self.policy, register, self._schema_of)
        tests = self._charge_tests(records, author)
        with self._tx() as tx:
            self._still_free(tx, records, author)  # a concurrent request may have taken an item, or the cap
            report = check_records(records, self.policy, tests=tests, schema_of=self._schema_of)
            findings = report.reviewer_findings()
            gate = report.to_json()
            if drafts or warnings or register:
                gate["register"] = register_report(register, drafts, warnings)
            kinds = [i.kind for i in report.items]
            t = new_request(
                request_id, author.name, required_approvals(self.policy.review, kinds), blocked=report.blocked
            )
            events = [*t.events, ("gate", {**gate, "reviewer_findings_sha256": findings["sha256"]})]
            state = t.state
            if not report.blocked:
                t = apply(state, "submit", author)
                state, events = t.state, [*events, *t.events]
            created, stored = _now(), {**gate, "reviewer_findings": findings}
            tx.execute(
                f"INSERT INTO gate_requests ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request_id, author.name, title, purpose, justification, created,
                    json.dumps([i.result_id for i in report.items]), json.dumps(stored), _state_to_json(state), None,
                ),
            )  # fmt: skip
            limits.record_request(tx, request_id, author.name, created, stored, report.blocked)
            self._sync_charges(tx)  # the DP tests' charges go on the log before the request that used them
            self._log(tx, [_event(author, e, request_id) for e in events])
            self._log_new_flags(tx, author.name, report.datasets, request_id)
        return self.show(request_id, author)

    def _completed(self, record: ChargeRecord) -> ChargeRecord:
        """Return a stored result with every statistic the gate checks (see :mod:`..disclosure`)."""
        if not is_deferred(record):
            return record
        if self.complete is None:
            raise InternalError(
                f"result {record.id} was stored without its disclosure statistics and this release service "
                "cannot compute them: construct it with the vault's `complete`."
            )
        return self.complete(record)

    def _resolve(self, tx: Tx, items: Sequence[Any], author: Actor) -> list[ChargeRecord]:
        held = self._open_items(tx)
        records = resolve_items(
            items, analyst=author.name, lookup=self.ledger.result, policy=self.policy, open_item=held.get
        )
        check_cap(tx, author.name, {r.dataset for r in records}, self.policy)
        return records

    def _still_free(self, tx: Tx, records: Sequence[ChargeRecord], author: Actor) -> None:
        held = self._open_items(tx)
        taken = [(r.id, held[r.id]) for r in records if r.id in held]
        if taken:
            rid, item = taken[0]
            raise ReleaseError(
                f"result {rid} is already in request {item.request_id} ({item.status}); an item is released only "
                "once: withdraw that request first, or leave the item out."
            )
        check_cap(tx, author.name, {r.dataset for r in records}, self.policy)

    def _schema_of(self, record: ChargeRecord) -> TableSchema | None:
        """Return the public schema of the item's dataset version (cached: a registered version never changes)."""
        key = (record.dataset, record.version)
        if key not in self._schemas:
            try:
                self._schemas[key] = TableSchema.from_json(self.ledger.dataset(*key).schema_json)
            except (SchemaError, NotFoundError, ValueError, TypeError, KeyError):
                return None
        return self._schemas[key]

    def _charge_tests(self, records: Sequence[ChargeRecord], author: Actor) -> dict[str, ChargeRecord]:
        """Charge (or reuse) the DP disclosure test of every item that needs one; see :mod:`.dp_sdc`."""
        by_id = {r.id: r for r in records}
        out: dict[str, ChargeRecord] = {}
        for rid, plan in plan_tests(records, self.policy, self._schema_of).items():
            out[rid] = self._charge_test(plan, by_id[rid], author)
        return out

    def _charge_test(self, plan: TestPlan, item: ChargeRecord, author: Actor) -> ChargeRecord:
        policy = self.policy
        try:
            outcome = self.ledger.charge(
                self.ledger.dataset(item.dataset, item.version),
                kind=TEST_KIND,
                query_key=plan.query_key,
                query=plan.query,
                epsilon=plan.epsilon,
                delta=0.0,
                analyst=author.name,
                run_id=None,
                compute=lambda: compute_test(plan, item, policy),
                analyst_limit=policy.budget.epsilon_per_analyst,
            )
        except BudgetExceededError as exc:
            raise BudgetExceededError(
                f"the gate's DP disclosure test of {item.id} needs ε={plan.epsilon:g} (policy "
                f"gate.sdc_test_epsilon) and the budget cannot pay it: {exc} No request was created."
            ) from None
        return outcome.record

    def _log_new_flags(self, tx: Tx, analyst: str, datasets: Sequence[str], request_id: str) -> None:
        """Log a ``gate.flag`` event the moment a day of one analyst and dataset reaches the flag threshold."""
        for flag in flags(tx, self.policy, analyst):
            ids = flag["request_ids"]
            if flag["dataset"] in datasets and ids[-1:] == [request_id] and len(ids) == flag["threshold"]:
                payload = {k: flag[k] for k in ("analyst", "dataset", "day", "threshold")}
                self._log(tx, [("vault", "gate.flag", {**payload, "request_id": request_id})])

    def flags(self) -> list[dict[str, Any]]:
        """Every flagged (analyst, dataset, day) for reviewers; see :func:`.limits.flags`."""
        with self.ledger.db.transaction(write=False) as tx:
            return flags(tx, self.policy)

    # -- everyone --------------------------------------------------------------------------------------------
    def act(self, request_id: str, action: Action, actor: Actor, comment: str = "") -> dict[str, Any]:
        """Take a workflow action; a completing approval also releases. Returns the request's new view."""
        if comment:
            check_text(comment, "comment")
        self.sync_charges()
        with self._tx() as tx:
            row = self._row(tx, request_id)
            state = _state_from_json(row[8])
            own = self._approvals_by(tx, actor.name, request_id) if action == "approve" else ()
            # refuses what the workflow does not allow (and a decision without reasons), first
            t = apply(state, action, actor, comment=comment, own_approvals=own)
            if action == "approve" and not approvable(json.loads(row[7]).get("reviewer_findings")):
                raise ReleaseError(
                    f"request {request_id} fails the exact disclosure checks (see reviewer_findings) and cannot be "
                    f"approved: reject it, or return it to the author, with the standard reason: {STANDARD_REASON!r}"
                )
            self._save(tx, t.state)
            self._log(tx, [_event(actor, e, request_id) for e in t.events])
        if t.state.status == "approved":
            self.release(request_id, actor)
        return self.show(request_id, actor)

    def _approvals_by(self, tx: Tx, reviewer: str, request_id: str) -> list[tuple[str, str]]:
        """Return the reviewer's approval comments on other requests (the workflow's comment rule refuses a copy)."""
        rows = tx.execute("SELECT id, state_json FROM gate_requests WHERE id <> ?", (request_id,))
        return [
            (str(rid), str(v["comment"]))
            for rid, state_json in rows
            for v in json.loads(state_json)["votes"]
            if v["reviewer"] == reviewer and v["decision"] == "approve"
        ]

    def release(self, request_id: str, actor: Actor) -> PublishedRelease:
        """Write an approved request to the outbox and mark it released (also an admin's retry)."""
        with self._tx() as tx:
            row = self._row(tx, request_id)
            state = _state_from_json(row[8])
            t = apply(state, "release", actor)  # refuses anything but an approved request
            release_id = f"rel-{request_id}"
            gate = json.loads(row[7])
            files, entries, provenance = build_release(self.ledger, json.loads(row[6]), gate)
            files += self._register_files(row, gate)
            review = _review_record(state)
            published = publish_release(
                self.layout.outbox, self.log, actor.name, release_id, files=files, request_id=request_id,
                title=row[2], policy_sha256=self.policy.sha256, ledger_entries=entries, provenance=provenance,
                review=review,
            )  # fmt: skip
            self._save(tx, t.state, release_id)
            self._log(tx, [_event(actor, e, request_id) for e in t.events])
        return published

    def _register_files(self, row: tuple[Any, ...], gate: Mapping[str, Any]) -> list[ReleaseFile]:
        """Render the Algoritmeregister draft of the request's model items, rebuilt from the stored request."""
        records = [self.ledger.result(i) for i in json.loads(row[6])]
        about = dict(zip(("id", "author", "title", "purpose", "justification", "created"), row[:6], strict=True))
        try:
            return register_files(records, about, self.policy, author_fields_of(gate), self._schema_of)
        except ReleaseError:
            if "register" in gate:
                raise  # checked when the request was made: the same inputs give the same draft
            return []  # a request made before the gate built drafts (a title over 100 characters): released without

    def requests(self, viewer: Actor, *, include_closed: bool = False) -> list[dict[str, Any]]:
        """List the requests the viewer may see: an analyst their own, reviewers and admins every submitted one."""
        with self.ledger.db.transaction(write=False) as tx:
            rows = tx.execute(f"SELECT {_COLS} FROM gate_requests ORDER BY created")
            flagged = flags(tx, self.policy) if viewer.role in _CHECKERS else []
        out = []
        for row in rows:
            view = _view(row, viewer, flagged)
            mine = row[1] == viewer.name
            if viewer.role == "analyst" and not mine:
                continue
            if viewer.role != "analyst" and not mine and view["state"] == "draft":
                continue  # blocked requests are never offered to reviewers
            if include_closed or view["state"] not in (*_CLOSED, "released"):
                out.append(view)
        return out

    def show(self, request_id: str, viewer: Actor, *, detail: bool = False) -> dict[str, Any]:
        """Return one request as ``viewer`` may see it (votes hidden until every required review is in).

        With ``detail``, each item also carries its ledger entry (query, mechanism, run, epsilon) and its
        public values (the DP table, the model's parameters, the fairness audit), for reviewers.
        """
        with self.ledger.db.transaction(write=False) as tx:
            row = self._row(tx, request_id)
            flagged = flags(tx, self.policy, str(row[1])) if viewer.role in _CHECKERS else []
        if viewer.role == "analyst" and row[1] != viewer.name:
            raise NotFoundError(f"no release request {request_id!r} of yours; `sandbox review list` shows them.")
        view = _view(row, viewer, flagged)
        if detail:
            view["details"] = {i: self._detail(i) for i in json.loads(row[6])}
        return view

    def _detail(self, result_id: str) -> dict[str, Any]:
        record = self.ledger.result(result_id)
        return {"ledger": ledger_entry(record), "values": json.loads(record.public_json)}

    # -- operations ------------------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Repair after a crash (see the module docstring); returns a line per action taken."""
        actions = []
        if self.log.recover() is not None:
            actions.append("repaired a torn last line of the audit log")
        actions += recover_outbox(self.layout.outbox, self.log)
        with self._tx() as tx:
            for row in tx.execute(f"SELECT {_COLS} FROM gate_requests"):
                state = _state_from_json(row[8])
                folder = self.layout.outbox / f"rel-{row[0]}"
                if state.status == "approved" and folder.is_dir():
                    t = apply(state, "release", _SYSTEM)
                    self._save(tx, t.state, folder.name)
                    self._log(tx, [_event(_SYSTEM, e, row[0]) for e in t.events])
                    actions.append(f"marked {row[0]} released (its release was already in the outbox)")
        if actions:
            with self._tx() as tx:
                self._log(tx, [("vault", "vault.recovered", {"actions": actions})])
        return actions

    def verify(self) -> VerifyReport:
        """Verify the audit log (against the ledger's anchor) and the outbox."""
        return verify_workspace(self.layout.workspace, self.anchor(), ledger_url=self.ledger.db.url)


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="microseconds")


def _event(actor: Actor, event: Any, request_id: str) -> tuple[str, str, Mapping[str, Any]]:
    if isinstance(event, tuple):  # ("gate", report)
        return actor.name, f"request.{event[0]}", {"request_id": request_id, **event[1]}
    return event.actor, event.type, event.payload


def _review_record(state: RequestState) -> dict[str, Any]:
    votes = state.current_votes
    return {
        "author": state.author,
        "round": state.round,
        "required_approvals": state.required,
        "approvers": [v.reviewer for v in votes if v.decision == "approve"],
        "votes": [asdict(v) for v in votes],
    }


def _view(row: tuple[Any, ...], viewer: Actor, flagged: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Return a request as ``viewer`` may see it; reviewers and admins (not its author) get ``reviewer_findings``."""
    state = _state_from_json(row[8])
    stored: dict[str, Any] = json.loads(row[7])
    view = {
        "id": row[0],
        "author": row[1],
        "title": row[2],
        "purpose": row[3],
        "justification": row[4],
        "created": row[5],
        "state": state.status,
        "status": state.public_status,
        "blocked": state.blocked,
        "round": state.round,
        "required_approvals": state.required,
        "votes_in": len(state.current_votes),
        "votes": [asdict(v) for v in visible_votes(state, viewer)],
        "comments": [asdict(c) for c in state.comments],
        "gate": analyst_gate(stored),
        "release_id": row[9],
    }
    if viewer.role in _CHECKERS and viewer.name != row[1]:
        findings = dict(stored.get("reviewer_findings") or {})
        mine = [f for f in flagged if f["analyst"] == row[1]]
        view["reviewer_findings"] = {**findings, "flags": mine} if findings else {"flags": mine, "legacy_gate": stored}
    return view
