"""The ledger's value objects: a population and its tables, a stored answer and its charge, a reservation, a budget.

A :class:`Reservation` is the handle :meth:`Ledger.reserve` returns: plain values only (no connection), so it can
be kept by the event loop while the computation runs in another thread or process, and handed back to
:meth:`Ledger.finalise` or :meth:`Ledger.fail` from any thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox._private.shared.canonical import canonical_json, sha256_hex
from sandbox._private.shared.errors import IntegrityError

__all__ = [
    "PopulationRecord",
    "DatasetRecord",
    "ChargeRecord",
    "ComputedAnswer",
    "EncodedAnswer",
    "ChargeOutcome",
    "Reservation",
    "KeptCharge",
    "BudgetStatus",
]


@dataclass(frozen=True)
class PopulationRecord:
    """A population: the privacy unit shared by its tables, and the one budget every table and version spends."""

    name: str
    privacy_unit: str
    epsilon_budget: float
    delta_budget: float
    epsilon_spent: float
    delta_spent: float
    answers: int
    created: str
    tables: tuple[str, ...] = ()

    @property
    def epsilon_remaining(self) -> float:
        return max(0.0, self.epsilon_budget - self.epsilon_spent)


@dataclass(frozen=True)
class DatasetRecord:
    """One registered version of a dataset, and the population whose budget it spends.

    ``epsilon_budget`` and ``delta_budget`` are the population's budget when this version was registered; the
    budget in force is the population's (:meth:`Ledger.budget`). An empty ``population`` when adding a dataset
    means: the population of the dataset's earlier versions, or a new population named after the dataset.
    """

    name: str
    version: int
    files_sha256: str
    schema_sha256: str
    schema_json: str
    path: str
    epsilon_budget: float
    delta_budget: float
    created: str
    population: str = ""


@dataclass(frozen=True)
class ChargeRecord:
    """One DP answer and the budget it spent (``private_json`` never leaves the vault)."""

    id: str
    dataset: str
    version: int
    kind: str
    query_key: str
    query_json: str
    epsilon: float
    delta: float
    mechanism: str
    public_json: str
    result_sha256: str
    private_json: str
    analyst: str
    run_id: str | None
    created: str

    def verify(self) -> None:
        """Raise :class:`IntegrityError` if the stored answer does not match its recorded sha256."""
        digest = sha256_hex(self.public_json)
        if digest != self.result_sha256:
            raise IntegrityError(
                f"Result {self.id}: stored answer hashes to {digest}, ledger says {self.result_sha256}. "
                "The ledger was changed outside the vault; restore it from backup."
            )


@dataclass(frozen=True)
class ComputedAnswer:
    """What a DP computation hands the ledger: the public values, the private extras, the mechanism."""

    public: Mapping[str, Any]
    private: Mapping[str, Any]
    mechanism: str


@dataclass(frozen=True)
class EncodedAnswer:
    """A :class:`ComputedAnswer` with its public and private parts already in canonical JSON.

    A worker process encodes its answer before sending it, so the vault process neither unpickles the values nor
    encodes them again: :meth:`Ledger.finalise` stores the texts as they are (and hashes the public one).
    """

    public_json: str
    private_json: str
    mechanism: str

    @classmethod
    def of(cls, answer: ComputedAnswer) -> EncodedAnswer:
        return cls(canonical_json(dict(answer.public)), canonical_json(dict(answer.private)), answer.mechanism)


@dataclass(frozen=True)
class ChargeOutcome:
    """The stored answer, and whether it was reused (then nothing was charged)."""

    record: ChargeRecord
    reused: bool
    epsilon_remaining: float

    @property
    def charged_epsilon(self) -> float:
        return 0.0 if self.reused else self.record.epsilon


@dataclass(frozen=True)
class _Charge:
    """What every charge holds, answered or not: who asked what of which table, and the ε and δ it spends."""

    id: str
    population: str
    dataset: str
    version: int
    kind: str
    query_key: str
    query_json: str
    epsilon: float
    delta: float
    analyst: str
    run_id: str | None


@dataclass(frozen=True)
class Reservation(_Charge):
    """A charge reserved before computing: it already counts as spent, and stays spent if the computation fails.

    ``epsilon_remaining`` is the population's remaining ε right after this reservation.
    """

    owner: str
    created: str
    epsilon_remaining: float


@dataclass(frozen=True)
class KeptCharge(_Charge):
    """A charge without a stored answer: ``pending`` (being computed, or its vault died) or ``failed`` (kept)."""

    state: str
    owner: str
    reason: str | None
    created: str
    finished: str | None


@dataclass(frozen=True)
class BudgetStatus:
    """Budget of the population a dataset belongs to, and of one analyst on that population when asked.

    ``answers`` counts the stored answers charged to the population (every table and version); ``kept`` the
    charges kept without an answer (failed or cancelled computations, and pending ones).
    """

    dataset: str
    version: int
    epsilon_total: float
    epsilon_spent: float
    delta_total: float
    delta_spent: float
    answers: int
    analyst: str | None = None
    analyst_epsilon_spent: float | None = None
    analyst_epsilon_limit: float | None = None
    population: str = ""
    tables: tuple[str, ...] = ()
    kept: int = 0

    @property
    def epsilon_remaining(self) -> float:
        return max(0.0, self.epsilon_total - self.epsilon_spent)

    @property
    def delta_remaining(self) -> float:
        return max(0.0, self.delta_total - self.delta_spent)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "epsilon_total": self.epsilon_total,
            "epsilon_spent": self.epsilon_spent,
            "epsilon_remaining": self.epsilon_remaining,
            "delta_total": self.delta_total,
            "delta_spent": self.delta_spent,
            "delta_remaining": self.delta_remaining,
            "answers": self.answers,
            "analyst": self.analyst,
            "analyst_epsilon_spent": self.analyst_epsilon_spent,
            "analyst_epsilon_limit": self.analyst_epsilon_limit,
            "population": self.population,
            "tables": list(self.tables),
        }
