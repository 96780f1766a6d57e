"""The vault's operations, independent of HTTP: what each endpoint does, given an authenticated caller.

:class:`VaultService` ties the registry, the ledger and the DP engine together. Routers call it with plain JSON
values and get plain JSON values back; nothing it returns contains protected rows (only the public schema,
schema-generated dummy rows, DP answers and budgets). ``Answer.private`` is stored in the ledger for the
release gate and never returned.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox._private.shared.canonical import canonical_json, sha256_file
from sandbox._private.shared.dummy import dummy_frame
from sandbox._private.shared.errors import IntegrityError, QueryError
from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.shared.modelspec import FitQuery
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.query import AggregateQuery, check_epsilon
from sandbox._private.shared.schema import TableSchema

from .dp.engine import Checked, DPEngine
from .dp.tabledata import TableData
from .ledger.ledger import ChargeOutcome, ChargeRecord, ComputedAnswer, DatasetRecord, Ledger
from .registry import DatasetRegistry
from .tokens import TokenInfo, TokenStore

__all__ = ["VaultService", "result_payload"]


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
    _tables: dict[tuple[str, int], TableData] = field(default_factory=dict, init=False, repr=False)
    _tables_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.tokens = TokenStore(self.layout.tokens)

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
        return TableSchema.from_json(record.schema_json)

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
        """Load the rows of a dataset version once, after checking the file against its registered sha256."""
        key = (record.name, record.version)
        with self._tables_lock:
            if key not in self._tables:
                digest = sha256_file(Path(record.path))
                if digest != record.files_sha256:
                    raise IntegrityError(
                        f"Data file of {record.name!r} v{record.version} hashes to {digest}, but the ledger "
                        f"registered {record.files_sha256}; it was changed after registration. Restore it or "
                        "register a new version."
                    )
                self._tables[key] = TableData.load(record.path, self._schema(record))
            return self._tables[key]

    def _prepare_query(self, body: Mapping[str, Any]) -> tuple[Checked, DatasetRecord, TableSchema]:
        """Check a query, the one time the vault does: shape (``from_dict``), then schema and policy (``check``)."""
        query = AggregateQuery.from_dict(body)
        record = self.ledger.dataset(query.dataset)
        schema = self._schema(record)
        return self.engine.check(query, schema), record, schema

    def cost(self, body: Mapping[str, Any]) -> dict[str, Any]:
        checked, _, _ = self._prepare_query(body)
        c = checked.cost
        return {"epsilon": float(c.epsilon), "delta": float(c.delta), "query": checked.item.to_dict()}

    def query(self, body: Mapping[str, Any], caller: TokenInfo, run_id: str | None) -> dict[str, Any]:
        checked, record, schema = self._prepare_query(body)
        engine = self.engine
        query, c = checked.item, checked.cost
        assert isinstance(query, AggregateQuery)
        table = self._table(record)  # loaded before the ledger lock is taken: loading is slow the first time

        def compute() -> ComputedAnswer:
            ans = engine.answer(checked, table)
            return ComputedAnswer(ans.public, ans.private, _mechanism(ans, query.kind))

        outcome = self.ledger.charge(
            record,
            kind="aggregate",
            query_key=query.canonical_key(schema),
            query=query.to_dict(),
            epsilon=float(c.epsilon),
            delta=float(c.delta),
            analyst=caller.name,
            run_id=run_id,
            compute=compute,
            analyst_limit=self.policy.budget.epsilon_per_analyst,
        )
        return _outcome_payload(outcome)

    def _prepare_fit(self, body: Mapping[str, Any]) -> tuple[Checked, FitQuery, DatasetRecord]:
        """Check a fit, the one time the vault does: shape (``from_dict``), then schema, policy and epsilon cap."""
        fq = FitQuery.from_dict(body)
        record = self.ledger.dataset(fq.dataset)
        return self.engine.check(fq, self._schema(record)), fq, record

    def fit_cost(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Cost a fit; a spec the policy refuses is costed too, with the refusal as a warning."""
        fq = FitQuery.from_dict(body)
        record = self.ledger.dataset(fq.dataset)
        refusals = fq.spec.policy_refusals(self.policy)
        if refusals:  # cost it anyway, so the analyst learns why fit() would refuse before trying
            fq.spec.check_schema(self._schema(record))
            check_epsilon(fq.epsilon, cap=self.policy.budget.epsilon_per_query_max)
        else:
            self._prepare_fit(body)
        warnings = [f"fit() will refuse this spec: {w}" for w in refusals] + fq.spec.policy_warnings(self.policy)
        return {"epsilon": fq.epsilon, "delta": fq.delta, "query": fq.to_dict(), "warnings": warnings}

    def fit(self, body: Mapping[str, Any], caller: TokenInfo, run_id: str | None) -> dict[str, Any]:
        checked, fq, record = self._prepare_fit(body)
        engine = self.engine
        table = self._table(record)

        def compute() -> ComputedAnswer:
            ans = engine.fit(checked, table)
            return ComputedAnswer(ans.public, ans.private, _mechanism(ans, fq.spec.diffprivlib_class))

        outcome = self.ledger.charge(
            record,
            kind="model",
            query_key=fq.canonical_key(),
            query=fq.to_dict(),
            epsilon=fq.epsilon,
            delta=fq.delta,
            analyst=caller.name,
            run_id=run_id,
            compute=compute,
            analyst_limit=self.policy.budget.epsilon_per_analyst,
        )
        return _outcome_payload(outcome)

    def budget(self, name: str, caller: TokenInfo) -> dict[str, Any]:
        record = self.ledger.dataset(name)
        limit = self.policy.budget.epsilon_per_analyst
        status = self.ledger.budget(record, analyst=caller.name, analyst_limit=limit)
        return status.to_dict()

    def result(self, result_id: str) -> dict[str, Any]:
        record = self.ledger.result(result_id)
        record.verify()
        return result_payload(record, reused=True, charged=0.0)


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
        "schema_sha256": d.schema_sha256,
        "files_sha256": d.files_sha256,
        "epsilon_budget": d.epsilon_budget,
        "delta_budget": d.delta_budget,
        "created": d.created,
    }
