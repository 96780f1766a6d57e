"""The analyst's side of the boundary: ``sb.connect()``, workspace and dataset handles.

Nothing here ever holds protected rows. A :class:`Dataset` handle gives the public schema, dummy rows generated
from the schema, and DP answers minted by the vault (:class:`DPResult`, :class:`FittedModel`). Errors from the
vault come back as the matching :class:`~sandbox.SandboxError` subclass with the vault's message.

Linked questions read like pandas: ``persons.join("households")`` joins on the privacy unit's key,
``hh.assign(n_signals=sb.household_count("signals"), age_group=sb.cut("age", [18, 30, 67, 105]))`` adds derived
columns, and ``where=(sb.col("age") < 18) & sb.col("poverty")`` filters. Each returns a new handle on the same
dataset; the relation and its public schema are checked here against the public schemas (so a clash or a bad
edge is refused before anything is sent) and again in the vault, which alone knows the populations.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import pandas as pd

from sandbox._private.shared.dummy import dummy_frame
from sandbox._private.shared.errors import AuthError, QueryError, SandboxError, SandboxWarning
from sandbox._private.shared.expr import Condition, as_condition
from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.shared.plan import Bin, Derived, Join, Relation, UnitCount, UnitSum, relation_schema
from sandbox._private.shared.query import AggregateQuery, check_delta, check_epsilon
from sandbox._private.shared.schema import TableSchema

from .budget import Budget
from .fitted import FittedModel
from .jobs import Job
from .mime import DUMMY_ATTR
from .results import AuditResult, DPResult, QueryCost
from .transport import Transport

__all__ = ["connect", "Workspace", "Dataset"]


class Dataset:
    """A handle on one registered dataset: its public schema, dummy rows, and DP queries.

    Obtain it with :meth:`Workspace.dataset`; it never holds protected rows. Every aggregate method takes the
    same keyword arguments and returns a :class:`DPResult` minted and stored by the vault:

    Parameters
    ----------
    column : str
        The value column (numeric for sum, mean, variance, quantile and histogram; optional for count).
    by : str or list of str, optional
        Categorical or bool columns to group by; every group of the public schema appears, also empty ones.
    epsilon : float
        Privacy loss, finite and > 0, at most the policy's per-query cap. Charged in the vault's ledger before the
        answer returns; asking the same question again returns the stored answer at no cost.
    delta : float, optional
        0 (default) for pure ε-DP; > 0 uses the analytic Gaussian mechanism.
    where : condition or mapping, optional
        A condition built with :func:`sandbox.col` (``(sb.col("age") >= 18) & sb.col("poverty")``), or filters
        ``{column: [allowed values]}`` on categorical or bool columns.

    Raises
    ------
    QueryError
        Invalid epsilon (checked here, before anything is sent), unknown column, wrong type, ...
    BudgetExceededError
        The dataset's (or your) remaining budget is smaller than ``epsilon``; nothing is charged.
    """

    def __init__(
        self,
        transport: Transport,
        name: str,
        relation: Relation | None = None,
        schemas: dict[str, TableSchema] | None = None,
    ) -> None:
        self._t = transport
        self.name = name
        self.relation = relation or Relation(name)
        self._schemas: dict[str, TableSchema] = dict(schemas or {})
        self._schema: TableSchema | None = None

    def __repr__(self) -> str:
        extra = "".join(f".join({j.table!r})" for j in self.relation.joins)
        if self.relation.derived:
            extra += f".assign({', '.join(d.name for d in self.relation.derived)})"
        return f"Dataset({self.name!r}{extra} at {self._t.url})"

    def _table_schema(self, name: str) -> TableSchema:
        if name not in self._schemas:
            self._schemas[name] = TableSchema.from_dict(self._t.get(f"/v1/datasets/{name}/schema"))
        return self._schemas[name]

    @property
    def schema(self) -> TableSchema:
        """The public schema (columns, bounds, categories, privacy unit); of the joined relation for a join."""
        if self._schema is None:
            if self.relation.is_plain:
                self._schema = self._table_schema(self.name)
            else:
                schemas = {t: self._table_schema(t) for t in self.relation.tables()}
                self._schema = relation_schema(self.relation, schemas).schema
        return self._schema

    # -- linked questions -----------------------------------------------------------------------------------
    def _with(self, relation: Relation) -> Dataset:
        view = Dataset(self._t, self.name, relation, self._schemas)
        _ = view.schema  # checked now against the public schemas: a clash or a bad edge fails before any query
        return view

    def join(self, other: str | Dataset, *, on: str | None = None, rsuffix: str | None = None) -> Dataset:
        """Join a table of the same population on the privacy unit's key (an inner join, as pandas ``merge``).

        Columns the query already has get ``rsuffix`` (default ``_<table>``): in ``persons.join("households")``
        the household's ``migration_background`` is ``migration_background_households``.

        Parameters
        ----------
        other : str or Dataset
            The table to join (a plain handle or its name).
        on : str, optional
            Must be the privacy unit's key (``household_id``); any other column is refused.
        rsuffix : str, optional
            Suffix for clashing column names of ``other``.
        """
        name = other.name if isinstance(other, Dataset) else other
        if isinstance(other, Dataset) and not other.relation.is_plain:
            raise QueryError(
                f"join() takes a table, not a joined or derived view of {name!r}; join the table and assign the "
                "derived columns to the joined handle."
            )
        return self._with(self.relation.with_join(Join(name, on, rsuffix)))

    def assign(self, **columns: Any) -> Dataset:
        """Add derived columns (pandas ``assign``): bins, bool conditions, per-household counts and sums.

        Examples
        --------
        >>> hh.assign(
        ...     age_group=sb.cut("age", [18, 30, 67, 105]),
        ...     over_67=sb.col("age") > 67,
        ...     n_signals=sb.household_count("signals", where=sb.col("month") >= 7),
        ... )  # doctest: +SKIP
        """
        items = []
        for name, value in columns.items():
            if not isinstance(value, Bin | UnitCount | UnitSum | Condition):
                value = as_condition(value)
            items.append(Derived(name, value))
        return self._with(self.relation.with_derived(items))

    def _relation_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.relation.joins:
            out["join"] = [j.to_dict() for j in self.relation.joins]
        if self.relation.derived:
            out["derive"] = [d.to_dict() for d in self.relation.derived]
        return out

    def dummy(self, n: int = 1000, seed: int | None = None) -> pd.DataFrame:
        """``n`` rows generated from the public schema alone: the right shape, not real rows.

        For a join or derived columns, drawn here from the relation's public schema (also schema-only).
        """
        if not self.relation.is_plain:
            return dummy_frame(self.schema, n, seed=seed)
        body = self._t.get(f"/v1/datasets/{self.name}/dummy", {"n": n, **({"seed": seed} if seed is not None else {})})
        df = pd.DataFrame(body["data"], columns=body["columns"])
        for col in self.schema.columns:
            if col.kind == "category" and col.name in df:
                df[col.name] = pd.Categorical(df[col.name], categories=list(col.categories))
        df.attrs[DUMMY_ATTR] = {"dataset": self.name}  # the notebook display keeps it (a hygiene mark)
        return df

    # -- DP aggregates -------------------------------------------------------------------------------------
    def _query(
        self,
        kind: str,
        column: str | None,
        by: Sequence[str] | str | None,
        epsilon: float,
        delta: float,
        where: Any,
        q: float | None = None,
        bins: int | None = None,
    ) -> AggregateQuery:
        check_epsilon(epsilon)
        check_delta(delta)
        by_list = [by] if isinstance(by, str) else list(by or ())
        return AggregateQuery(
            self.name,
            kind,  # type: ignore[arg-type]
            column,
            epsilon=epsilon,
            by=tuple(by_list),
            delta=delta,
            q=q,
            bins=bins,
            where=where,
            joins=self.relation.joins,
            derived=self.relation.derived,
        )

    def _ask(self, query: AggregateQuery) -> DPResult:
        payload = self._t.charge("/v1/query", _body(query))
        return DPResult.from_payload(payload)

    def count(
        self,
        column: str | None = None,
        *,
        by: Sequence[str] | str | None = None,
        epsilon: float,
        delta: float = 0.0,
        where: Any = None,
    ) -> DPResult:
        """DP count of rows (of ``column``'s non-missing values), per group of ``by``."""
        return self._ask(self._query("count", column, by, epsilon, delta, where))

    def sum(
        self,
        column: str,
        *,
        by: Sequence[str] | str | None = None,
        epsilon: float,
        delta: float = 0.0,
        where: Any = None,
    ) -> DPResult:
        """DP sum of ``column`` (clipped to its schema bounds), per group of ``by``."""
        return self._ask(self._query("sum", column, by, epsilon, delta, where))

    def mean(
        self,
        column: str,
        *,
        by: Sequence[str] | str | None = None,
        epsilon: float,
        delta: float = 0.0,
        where: Any = None,
    ) -> DPResult:
        """DP mean of ``column``, per group of ``by``."""
        return self._ask(self._query("mean", column, by, epsilon, delta, where))

    def variance(
        self,
        column: str,
        *,
        by: Sequence[str] | str | None = None,
        epsilon: float,
        delta: float = 0.0,
        where: Any = None,
    ) -> DPResult:
        """DP variance of ``column``, per group of ``by``."""
        return self._ask(self._query("variance", column, by, epsilon, delta, where))

    def quantile(
        self,
        column: str,
        q: float,
        *,
        by: Sequence[str] | str | None = None,
        epsilon: float,
        where: Any = None,
    ) -> DPResult:
        """DP ``q``-quantile of ``column`` (exponential mechanism over the schema bounds), per group."""
        return self._ask(self._query("quantile", column, by, epsilon, 0.0, where, q=q))

    def median(
        self,
        column: str,
        *,
        by: Sequence[str] | str | None = None,
        epsilon: float,
        where: Any = None,
    ) -> DPResult:
        """DP median of ``column`` (the 0.5-quantile), per group."""
        return self.quantile(column, 0.5, by=by, epsilon=epsilon, where=where)

    def histogram(
        self,
        column: str,
        bins: int = 10,
        *,
        by: Sequence[str] | str | None = None,
        epsilon: float,
        delta: float = 0.0,
        where: Any = None,
    ) -> DPResult:
        """DP histogram of ``column`` in ``bins`` equal-width bins over its schema bounds, per group."""
        return self._ask(self._query("histogram", column, by, epsilon, delta, where, bins=bins))

    # -- models and costs ----------------------------------------------------------------------------------
    @overload
    def fit(self, spec: Any, *, epsilon: float, wait: Literal[True] = True) -> FittedModel: ...

    @overload
    def fit(self, spec: Any, *, epsilon: float, wait: Literal[False]) -> Job: ...

    def fit(self, spec: Any, *, epsilon: float, wait: bool = True) -> FittedModel | Job:
        """Fit ``spec`` (a ModelSpec or its dict) in the vault with DP; returns the parameters only.

        With ``wait=False`` the call returns at once with a :class:`Job` (``.status``, ``.result()``,
        ``.cancel()``) while the vault fits; the charge is reserved either way when the fit is accepted. A fit over
        the policy's time limit stops with an error that states the limit; its charge is kept.
        """
        check_epsilon(epsilon)
        body = {"dataset": self.name, "spec": _spec_dict(spec), "epsilon": epsilon, **self._relation_fields()}
        if not wait:
            view = self._t.post("/v1/fit", body, params={"wait": "false"})
            return Job(self._t, view, lambda payload: FittedModel.from_payload(payload)._bind(self._t))
        payload = self._t.charge("/v1/fit", body)  # waits as long as the vault fits: its policy bounds the wall time
        return FittedModel.from_payload(payload)._bind(self._t)

    def cost(
        self,
        kind_or_spec: Any,
        column: str | None = None,
        *,
        epsilon: float,
        by: Sequence[str] | str | None = None,
        delta: float = 0.0,
        where: Any = None,
        q: float | None = None,
        bins: int | None = None,
    ) -> QueryCost:
        """Return what ``kind(column, ...)`` or fitting a spec would cost, without spending.

        Examples
        --------
        >>> hh.cost("mean", "income", by=["urbanisation"], epsilon=0.1)  # doctest: +SKIP
        """
        if isinstance(kind_or_spec, str):
            query = self._query(kind_or_spec, column, by, epsilon, delta, where, q=q, bins=bins)
            body = self._t.post("/v1/cost", _body(query))
        else:
            check_epsilon(epsilon)
            fit = {"dataset": self.name, "spec": _spec_dict(kind_or_spec), "epsilon": epsilon}
            body = self._t.post("/v1/fit/cost", {**fit, **self._relation_fields()})
        warnings_ = tuple(str(w) for w in body.get("warnings", ()))
        for text in warnings_:
            warnings.warn(text, SandboxWarning, stacklevel=2)
        parts = tuple((str(k), float(v)) for k, v in dict(body.get("parts") or {}).items())
        return QueryCost(float(body["epsilon"]), float(body["delta"]), warnings_, parts)

    def budget(self) -> Budget:
        """Return the budget of this dataset: total, spent, remaining (and yours)."""
        return Budget.from_payload(self._t.get(f"/v1/budget/{self.name}"))


def _body(query: AggregateQuery) -> dict[str, Any]:
    d = query.to_dict()
    return {k: v for k, v in d.items() if v is not None and v != {} and v != []}


def _spec_dict(spec: Any) -> dict[str, Any]:
    if isinstance(spec, Mapping):
        return dict(spec)
    to_dict = getattr(spec, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    raise SandboxError(f"fit needs a ModelSpec (or its dict), got {type(spec).__name__}.")


class Workspace:
    """A connection to one vault: list datasets, open handles, read budgets and stored results."""

    def __init__(
        self,
        url: str,
        token: str,
        run_id: str | None = None,
        *,
        vault_uid: int | None = None,
        workspace: str | Path | None = None,
    ) -> None:
        self._t = Transport(url, token, run_id, vault_uid=vault_uid)
        self.url = self._t.url
        self.run_id = run_id
        #: The local workspace folder (its ``reports/`` gets the fairness reports of each release request);
        #: ``None`` when the vault is remote and ``SANDBOX_WORKSPACE`` is not set.
        self.workspace = Path(workspace) if workspace is not None else None

    def __repr__(self) -> str:
        return f"Workspace({self.url})"

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection (the vault keeps running)."""
        self._t.close()

    def health(self) -> dict[str, Any]:
        return dict(self._t.get("/v1/health"))

    def job(self, job_id: str) -> Job:
        """Return a handle on one of your jobs (``GET /v1/jobs/{id}``; another analyst's id is not found)."""
        view = self._t.get(f"/v1/jobs/{job_id}")
        return Job(self._t, view, lambda payload: FittedModel.from_payload(payload)._bind(self._t))

    def datasets(self) -> list[str]:
        """Names of the registered datasets."""
        return [str(d["name"]) for d in self._t.get("/v1/datasets")]

    def dataset(self, name: str) -> Dataset:
        """Open a handle on dataset ``name`` (checked to exist)."""
        handle = Dataset(self._t, name)
        _ = handle.schema
        return handle

    def budget(self, name: str) -> Budget:
        """Budget of dataset ``name``: ``epsilon_total``, ``epsilon_spent``, ``epsilon_remaining``, ..."""
        return Budget.from_payload(self._t.get(f"/v1/budget/{name}"))

    def release(
        self,
        items: Sequence[Any],
        *,
        title: str,
        purpose: str,
        justification: str = "",
        register: Mapping[str, Any] | None = None,
    ) -> Any:
        """Ask the vault's release gate to release ``items`` (results minted by the vault).

        ``register`` gives your fields of the model's Algoritmeregister draft (``sb.author_fields_help()``). The
        fairness report of each audit item is written to ``workspace/reports/<request id>/`` in Dutch and English
        (``request.reports``), when the workspace folder is known.
        Returns the gate's ``ReleaseRequest`` (``.status``: ``blocked``, ``pending_review``, ...; ``.warnings``:
        the draft's unfilled fields); see :func:`sandbox._private.kernel.release.release`.
        """
        from .release import release

        reports = None if self.workspace is None else WorkspaceLayout(self.workspace).reports
        return release(
            self._t,
            items,
            title=title,
            purpose=purpose,
            justification=justification,
            register=register,
            reports_to=reports,
        )

    def request(self, request_id: str) -> Any:
        """Fetch one of your release requests by id (``.status``, ``.reasons``, ``.withdraw()``, ...)."""
        from .release import ReleaseRequest

        return ReleaseRequest(dict(self._t.get(f"/v1/releases/{request_id}")), self._t)

    def result(self, result_id: str) -> DPResult | FittedModel | AuditResult:
        """Fetch a stored result by id, as the vault recorded it."""
        payload = self._t.get(f"/v1/results/{result_id}")
        kind = payload["kind"]
        cls = FittedModel if kind == "model" else AuditResult if kind == "audit" else DPResult
        return cls.from_payload(payload)._bind(self._t)


def connect(
    workspace: str | Path | None = None,
    *,
    url: str | None = None,
    token: str | None = None,
    run_id: str | None = None,
    create: bool = False,
) -> Workspace:
    """Connect to a vault.

    Parameters
    ----------
    workspace : str or Path, optional
        With no ``url`` (and no ``SANDBOX_VAULT_URL``), start or reuse the local vault of this workspace
        (default ``$SANDBOX_WORKSPACE``, else ``./workspace``) as a child process on a free loopback port. The
        vault stops by itself once no process that used it still runs.
    url : str, optional
        A running vault (default: ``$SANDBOX_VAULT_URL``); needs ``token`` or ``$SANDBOX_TOKEN``.
    token : str, optional
        Bearer token (``sandbox vault token create``).
    run_id : str, optional
        Recorded with every charge (default ``$SANDBOX_RUN_ID``); papermill studies set it.
    create : bool
        Create the local workspace (with an empty vault) if it does not exist. Without it, a folder that holds
        no workspace is refused (:class:`~sandbox.NotFoundError` naming the fix), so a notebook started in the
        wrong folder does not silently get an empty vault.

    Returns
    -------
    Workspace
    """
    url = url or os.environ.get("SANDBOX_VAULT_URL")
    token = token or os.environ.get("SANDBOX_TOKEN")
    run_id = run_id or os.environ.get("SANDBOX_RUN_ID")
    if url:
        if not token:
            raise AuthError(f"Vault {url} needs a token: pass token=... or set SANDBOX_TOKEN.")
        return Workspace(url, token, run_id, workspace=workspace or os.environ.get("SANDBOX_WORKSPACE"))
    from .launch import ensure_local_vault, local_vault_uid

    workspace = workspace or os.environ.get("SANDBOX_WORKSPACE") or "workspace"
    local_url, local_tok = ensure_local_vault(workspace, create=create)
    return Workspace(local_url, token or local_tok, run_id, vault_uid=local_vault_uid(workspace), workspace=workspace)
