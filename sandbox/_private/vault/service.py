"""The vault's operations, independent of HTTP: what each endpoint does, given an authenticated caller.

:class:`VaultService` ties the registry, the ledger and the DP engine together. Routers call it with plain JSON
values and get plain JSON values back; nothing it returns contains protected rows (only the public schema,
schema-generated dummy rows, DP answers and budgets). ``Answer.private`` is stored in the ledger for the
release gate and never returned.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sandbox._private.shared.canonical import canonical_join, canonical_json
from sandbox._private.shared.dummy import dummy_frame
from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.shared.modelspec import FitQuery
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.query import AggregateQuery, check_epsilon
from sandbox._private.shared.schema import TableSchema

from .disclosure import Completer, deferred
from .dp.engine import Catalog, Checked, DPEngine
from .dp.tabledata import TableData
from .ledger.ledger import CHARGE_EVENT, ChargeOutcome, ChargeRecord, ComputedAnswer, DatasetRecord, Ledger
from .outbox.journal import AuditLog, GroupAppender, read_entries
from .registry import DatasetRegistry
from .tables import OpenTables, parsed_schema, relation_query
from .tokens import TokenInfo, TokenStore

__all__ = ["VaultService", "result_payload", "outcome_json", "outcome_brief"]


def result_payload(record: ChargeRecord, *, reused: bool, charged: float) -> dict[str, Any]:
    """Build the client-facing form of a stored answer (never its private part)."""
    return {
        "id": record.id,
        "sha256": record.result_sha256,
        "dataset": record.dataset,
        "version": record.version,
        "kind": record.kind,
        "query": json.loads(record.query_json),
        "epsilon": record.epsilon,
        "delta": record.delta,
        "mechanism": record.mechanism,
        "values": json.loads(record.public_json),
        "analyst": record.analyst,
        "run_id": record.run_id,
        "created": record.created,
        "reused": reused,
        "charged_epsilon": charged,
    }


def _outcome_payload(outcome: ChargeOutcome) -> dict[str, Any]:
    out = result_payload(outcome.record, reused=outcome.reused, charged=outcome.charged_epsilon)
    out["epsilon_remaining"] = outcome.epsilon_remaining
    return out


def _plain_fields(outcome: ChargeOutcome) -> dict[str, Any]:
    """Return the fields of ``_outcome_payload(outcome)`` that are plain values (all but ``query`` and ``values``)."""
    r = outcome.record
    return {
        "id": r.id,
        "sha256": r.result_sha256,
        "dataset": r.dataset,
        "version": r.version,
        "kind": r.kind,
        "epsilon": r.epsilon,
        "delta": r.delta,
        "mechanism": r.mechanism,
        "analyst": r.analyst,
        "run_id": r.run_id,
        "created": r.created,
        "reused": outcome.reused,
        "charged_epsilon": outcome.charged_epsilon,
        "epsilon_remaining": outcome.epsilon_remaining,
    }


def outcome_brief(outcome: ChargeOutcome, keys: tuple[str, ...]) -> dict[str, Any]:
    """Return ``{k: _outcome_payload(outcome)[k] for k in keys}``, for keys other than ``query`` and ``values``."""
    fields = _plain_fields(outcome)
    return {k: fields[k] for k in keys}


def outcome_json(outcome: ChargeOutcome) -> str:
    """Return ``canonical_json(_outcome_payload(outcome))``: the answer's response body.

    A fresh answer's query and values were encoded by :func:`canonical_json` in this vault (reserve and finalise, or
    a worker), so they are joined in as stored rather than decoded and encoded again. A reused answer may have been
    stored by an older vault, so it goes through the full rule.
    """
    if outcome.reused:
        return canonical_json(_outcome_payload(outcome))
    r = outcome.record
    return canonical_join(_plain_fields(outcome), {"query": r.query_json, "values": r.public_json})


@dataclass
class VaultService:
    """Everything the vault does, for one workspace, ledger and policy.

    Parameters
    ----------
    layout : WorkspaceLayout
        The workspace's vault files.
    ledger : Ledger
        The ledger (SQLite or PostgreSQL).
    policy : Policy
        The policy in force; its sha256 is reported by ``health``.
    """

    layout: WorkspaceLayout
    ledger: Ledger
    policy: Policy
    tokens: TokenStore = field(init=False)
    _open: OpenTables = field(default_factory=OpenTables, init=False, repr=False)
    _moment: threading.local = field(default_factory=threading.local, init=False, repr=False)
    #: the latest version of each table this vault has read (versions are never changed or removed once registered)
    _latest: dict[str, DatasetRecord] = field(default_factory=dict, init=False, repr=False)

    recovered: list[str] = field(default_factory=list, init=False)
    #: completes a stored answer with its disclosure statistics (the release gate calls it; see .disclosure)
    complete: Completer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.tokens = TokenStore(self.layout.tokens)
        # every finalised or failed charge is journalled (keyed, group-committed) before it is returned
        journal = AuditLog(self.layout.journal)
        self.ledger.attach_journal(GroupAppender(journal))
        journal.recover()  # a torn last line (crash during an append) is repaired before anything is appended
        self.recovered = self.ledger.recover(lambda: _journalled_charges(self.layout))
        self.complete = Completer(self.ledger.dataset, self._open, lambda: self.engine)

    @property
    def registry(self) -> DatasetRegistry:
        return DatasetRegistry(self.layout, self.ledger, self.policy)

    @property
    def engine(self) -> DPEngine:
        return DPEngine(self.policy)

    # -- metadata ---------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return {"status": "ok", "policy": self.policy.name, "policy_sha256": self.policy.sha256}

    def datasets(self) -> list[dict[str, Any]]:
        return [_dataset_summary(d) for d in self.ledger.datasets()]

    def schema(self, name: str) -> dict[str, Any]:
        return json.loads(self.ledger.dataset(name).schema_json)

    def _schema(self, record: DatasetRecord) -> TableSchema:
        return parsed_schema(record.schema_json)

    def dummy(self, name: str, n: int, seed: int | None) -> str:
        """JSON text ``{"columns": [...], "data": {column: [values]}}`` generated from the schema alone."""
        cap = self.policy.limits.max_dummy_rows
        if n > cap:
            raise QueryError(f"n={n} dummy rows exceeds the policy's limits.max_dummy_rows of {cap}; ask for fewer.")
        schema = self._schema(self.ledger.dataset(name))
        df = dummy_frame(schema, n, seed=seed)
        data = {c: df[c].tolist() for c in df.columns}
        return canonical_json({"dataset": name, "n": n, "columns": list(df.columns), "data": data})

    # -- DP ---------------------------------------------------------------------------------------------------
    def _table(self, record: DatasetRecord) -> TableData:
        """Open the rows of a dataset version in place, after checking the file against its registered sha256."""
        return self._open.get(record)

    def _records(self, names: tuple[str, ...]) -> dict[str, DatasetRecord]:
        """Return the current version of every table a query reads (NotFoundError for an unknown one)."""
        seen: dict[str, DatasetRecord] | None = getattr(self._moment, "records", None)
        if seen is None:
            return {n: self._read_latest(n) for n in names}
        assumed: dict[str, int] | None = self._moment.assumed
        for n in names:
            if n in seen:
                continue
            if assumed is not None and n in self._latest:  # taken as current: the caller has it confirmed
                seen[n] = self._latest[n]
                assumed[n] = seen[n].version
            else:
                seen[n] = self._read_latest(n)
        return {n: seen[n] for n in names}

    def _read_latest(self, name: str) -> DatasetRecord:
        """Read a table's current version from the ledger, and remember it."""
        record = self.ledger.dataset(name)
        self._latest[name] = record
        return record

    @contextmanager
    def one_moment(self, assumed: dict[str, int] | None = None) -> Iterator[None]:
        """Check requests as of one moment: in this block (and thread) each table's current version is read once.

        The served vault checks the requests that arrive together in one block (see ``workers.flow``): they are
        answered as if they had all arrived just before any new version registered meanwhile.

        Parameters
        ----------
        assumed : dict, optional
            Given (empty), a table whose version this vault has read before is not read again: that version is
            taken as current and put in ``assumed`` (name to version). The caller must then confirm that each is
            still the current version before it uses anything of the block (``Ledger.reserve_many(current=...)``
            does, in the same statement as its lookup), and check again without ``assumed`` if not.
        """
        if getattr(self._moment, "records", None) is not None:  # nested: the outer block's moment
            yield
            return
        self._moment.records, self._moment.assumed = {}, assumed
        try:
            yield
        finally:
            self._moment.records = self._moment.assumed = None

    def _catalog(self, records: Mapping[str, DatasetRecord], *, load: bool) -> Catalog:
        """Return the tables (or, without ``load``, only their schemas) and populations of a query's records."""
        return self._open.catalog(records, load=load)

    def _prepare_query(
        self, body: Mapping[str, Any]
    ) -> tuple[Checked, DatasetRecord, dict[str, DatasetRecord], dict[str, TableSchema]]:
        """Check a query, the one time the vault does: shape (``from_dict``), then schemas, population and policy."""
        query = AggregateQuery.from_dict(body)
        records = self._records(query.tables())
        schemas = {n: self._schema(r) for n, r in records.items()}
        checked = self.engine.check(query, self._catalog(records, load=False))
        return checked, records[query.dataset], records, schemas

    def cost(self, body: Mapping[str, Any]) -> dict[str, Any]:
        checked, _, _, _ = self._prepare_query(body)
        c = checked.cost
        return {"epsilon": float(c.epsilon), "delta": float(c.delta), "query": checked.item.to_dict()}

    def query(self, body: Mapping[str, Any], caller: TokenInfo, run_id: str | None) -> dict[str, Any]:
        checked, record, records, schemas = self._prepare_query(body)
        engine = self.engine
        query, c = checked.item, checked.cost
        assert isinstance(query, AggregateQuery)
        catalog = self._catalog(records, load=True)  # opened before the ledger lock is taken
        versions = {n: r.version for n, r in records.items()}

        def compute() -> ComputedAnswer:
            return vault_answer(engine, checked, catalog, records)

        # one charge, against the base table's record: its population's budget (a joined query is one question)
        outcome = self.ledger.charge(
            record,
            kind="aggregate",
            query_key=query.canonical_key(schemas, versions),
            query=query.to_dict(),
            epsilon=float(c.epsilon),
            delta=float(c.delta),
            analyst=caller.name,
            run_id=run_id,
            compute=compute,
            analyst_limit=self.policy.budget.epsilon_per_analyst,
        )
        return _outcome_payload(outcome)

    def _prepare_fit(
        self, body: Mapping[str, Any]
    ) -> tuple[Checked, FitQuery, DatasetRecord, dict[str, DatasetRecord]]:
        """Check a fit, the one time the vault does: shape (``from_dict``), then schemas, policy and epsilon cap."""
        fq = FitQuery.from_dict(body)
        records = self._records(fq.relation.tables())
        checked = self.engine.check(fq, self._catalog(records, load=False))
        return checked, fq, records[fq.dataset], records

    def fit_cost(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Cost a fit; a spec the policy refuses is costed too, with the refusal as a warning."""
        fq = FitQuery.from_dict(body)
        refusals = fq.spec.policy_refusals(self.policy)
        if refusals:  # cost it anyway, so the analyst learns why fit() would refuse before trying
            records = self._records(fq.relation.tables())
            fq.spec.check_schema(fq.resolve({n: self._schema(r) for n, r in records.items()}).schema)
            check_epsilon(fq.epsilon, cap=self.policy.budget.epsilon_per_query_max)
        else:
            self._prepare_fit(body)
        warnings = [f"fit() will refuse this spec: {w}" for w in refusals] + fq.spec.policy_warnings(self.policy)
        quality = fq.epsilon * self.policy.models.quality_epsilon_share  # the held-out figures, in the same charge
        parts = {"fit": fq.epsilon - quality, "quality": quality}
        return {"epsilon": fq.epsilon, "delta": fq.delta, "query": fq.to_dict(), "warnings": warnings, "parts": parts}

    def fit(self, body: Mapping[str, Any], caller: TokenInfo, run_id: str | None) -> dict[str, Any]:
        checked, fq, record, records = self._prepare_fit(body)
        engine = self.engine
        catalog = self._catalog(records, load=True)

        def compute() -> ComputedAnswer:
            ans = engine.fit(checked, catalog)
            return ComputedAnswer(ans.public, ans.private, _mechanism(ans, fq.spec.diffprivlib_class))

        outcome = self.ledger.charge(
            record,
            kind="model",
            query_key=fq.canonical_key({n: r.version for n, r in records.items()}),
            query=fq.to_dict(),
            epsilon=fq.epsilon,
            delta=fq.delta,
            analyst=caller.name,
            run_id=run_id,
            compute=compute,
            analyst_limit=self.policy.budget.epsilon_per_analyst,
        )
        return _outcome_payload(outcome)

    def model_records(self, record: DatasetRecord, public: Mapping[str, Any]) -> dict[str, DatasetRecord]:
        """Return the current records of the tables a stored model's relation reads (none for a plain table)."""
        fq = relation_query(record, public)
        return {} if fq is None else self._records(fq.relation.tables())

    def model_table(self, record: DatasetRecord, public: Mapping[str, Any], extra: tuple[str, ...] = ()) -> TableData:
        """Return the rows a stored model was fitted on (its relation, if any), with its columns and ``extra`` ones.

        For the in-vault fairness audit: a model fitted on a linked relation predicts on the same relation, and
        ``extra`` names the protected attributes the audit groups by.
        """
        return self._open.model_table(self.engine, record, public, extra, self.model_records(record, public))

    def budget(self, name: str, caller: TokenInfo) -> dict[str, Any]:
        record = self.ledger.dataset(name)
        limit = self.policy.budget.epsilon_per_analyst
        status = self.ledger.budget(record, analyst=caller.name, analyst_limit=limit)
        return status.to_dict()

    def result(self, result_id: str) -> dict[str, Any]:
        record = self.ledger.result(result_id)
        record.verify()
        return result_payload(record, reused=True, charged=0.0)


def _journalled_charges(layout: WorkspaceLayout) -> set[str]:
    """Ids of the charges in the journal (read only when a crash may have left one out)."""
    return {str(e.payload.get("id")) for e in read_entries(layout.journal) if e.type == CHARGE_EVENT}


def vault_answer(
    engine: DPEngine, checked: Checked, catalog: Catalog, records: Mapping[str, DatasetRecord]
) -> ComputedAnswer:
    """Compute an aggregate as the vault stores it: its disclosure statistics deferred to a release request."""
    assert isinstance(checked.item, AggregateQuery)
    ans = engine.answer(checked, catalog, disclosure=False)
    return ComputedAnswer(ans.public, deferred(ans.private, records), _mechanism(ans, checked.item.kind))


def _mechanism(answer: Any, fallback: str) -> str:
    """Name the mechanisms an answer used, e.g. ``"Laplace+Laplace"`` (from ``public["mechanisms"]``)."""
    public = getattr(answer, "public", None)
    mechs = public.get("mechanisms") if isinstance(public, Mapping) else None
    if isinstance(mechs, list) and mechs:
        return "+".join(str(m.get("mechanism", "?")) if isinstance(m, Mapping) else str(m) for m in mechs)
    if isinstance(public, Mapping) and isinstance(public.get("mechanism"), str):
        return str(public["mechanism"])
    return fallback


def _dataset_summary(d: DatasetRecord) -> dict[str, Any]:
    schema = json.loads(d.schema_json)
    return {
        "name": d.name,
        "version": d.version,
        "label_en": schema.get("label_en", ""),
        "label_nl": schema.get("label_nl", ""),
        "privacy_unit": schema.get("privacy_unit", ""),
        "population": d.population,
        "schema_sha256": d.schema_sha256,
        # no files_sha256: a hash of the protected rows is neither public nor DP (invariant 10); the ledger has it
        "epsilon_budget": d.epsilon_budget,
        "delta_budget": d.delta_budget,
        "created": d.created,
    }
