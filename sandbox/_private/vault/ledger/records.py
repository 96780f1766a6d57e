"""The ledger's value objects: a registered dataset version, a stored answer and its charge, a budget."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox._private.shared.canonical import sha256_hex
from sandbox._private.shared.errors import IntegrityError

__all__ = ["DatasetRecord", "ChargeRecord", "ComputedAnswer", "ChargeOutcome", "BudgetStatus"]


@dataclass(frozen=True)
class DatasetRecord:
    """One registered version of a dataset."""

    name: str
    version: int
    files_sha256: str
    schema_sha256: str
    schema_json: str
    path: str
    epsilon_budget: float
    delta_budget: float
    created: str


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
class ChargeOutcome:
    """The stored answer, and whether it was reused (then nothing was charged)."""

    record: ChargeRecord
    reused: bool
    epsilon_remaining: float

    @property
    def charged_epsilon(self) -> float:
        return 0.0 if self.reused else self.record.epsilon


@dataclass(frozen=True)
class BudgetStatus:
    """Budget of one dataset version, and of one analyst on it when asked."""

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
        }
