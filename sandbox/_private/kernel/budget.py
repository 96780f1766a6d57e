"""A dataset's privacy budget as the vault reports it: a value object that reads well in a notebook.

``ws.budget(name)`` and ``Dataset.budget()`` return a :class:`Budget`. Figures are kept exact (the ledger's);
only the display rounds (ε to 4 significant digits, so a spent total of ``1.9499999999999993`` shows as
``1.95``). For code written against the earlier dict, ``budget["epsilon_remaining"]`` and :meth:`to_dict` still
work.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Budget"]

_FIELDS = (
    "dataset",
    "version",
    "epsilon_total",
    "epsilon_spent",
    "epsilon_remaining",
    "delta_total",
    "delta_spent",
    "delta_remaining",
    "answers",
    "analyst",
    "analyst_epsilon_spent",
    "analyst_epsilon_limit",
)


def _eps(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.4g}"


@dataclass(frozen=True)
class Budget(Mapping[str, Any]):
    """The budget of one dataset (its population's, where the vault reports one), and yours on it.

    Attributes
    ----------
    dataset : str
        The dataset asked about.
    epsilon_total, epsilon_spent, epsilon_remaining : float
        The budget, what is spent (by everyone) and what is left.
    delta_total, delta_spent, delta_remaining : float
        The same for δ.
    answers : int
        Stored answers charged against it.
    analyst, analyst_epsilon_spent, analyst_epsilon_limit : str, float or None
        You, what you spent, and the policy's per-analyst limit (``None`` when it sets none).
    extra : mapping
        Any further fields the vault reported (e.g. ``population``).
    """

    dataset: str
    version: int
    epsilon_total: float
    epsilon_spent: float
    epsilon_remaining: float
    delta_total: float = 0.0
    delta_spent: float = 0.0
    delta_remaining: float = 0.0
    answers: int = 0
    analyst: str | None = None
    analyst_epsilon_spent: float | None = None
    analyst_epsilon_limit: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Budget:
        """Build from the vault's ``GET /v1/budget/{name}`` answer."""
        known = {k: payload[k] for k in _FIELDS if k in payload}
        extra = {k: v for k, v in payload.items() if k not in _FIELDS}
        return cls(**known, extra=extra)

    @property
    def analyst_epsilon_remaining(self) -> float | None:
        """What you may still spend under the per-analyst limit (``None`` without one)."""
        if self.analyst_epsilon_limit is None or self.analyst_epsilon_spent is None:
            return None
        return max(0.0, self.analyst_epsilon_limit - self.analyst_epsilon_spent)

    @property
    def population(self) -> str | None:
        """The population whose budget this is, when the vault reports one."""
        value = self.extra.get("population")
        return None if value is None else str(value)

    def to_dict(self) -> dict[str, Any]:
        """Every field as the vault reported it."""
        return {**{k: getattr(self, k) for k in _FIELDS}, **dict(self.extra)}

    # Mapping: old code reads budget["epsilon_remaining"]
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def __repr__(self) -> str:
        mine = ""
        if self.analyst_epsilon_limit is not None:
            mine = f", yours {_eps(self.analyst_epsilon_spent)} of {_eps(self.analyst_epsilon_limit)}"
        return (
            f"Budget({self.dataset}: ε spent {_eps(self.epsilon_spent)} of {_eps(self.epsilon_total)}, "
            f"{_eps(self.epsilon_remaining)} left{mine}; {self.answers} answers)"
        )

    def _repr_html_(self) -> str:
        share = self.epsilon_spent / self.epsilon_total if self.epsilon_total > 0 else 0.0
        width = max(0.0, min(1.0, share)) * 100
        bar = (
            "<div style='width:18em;height:0.7em;background:#e5e7eb;border-radius:3px'>"
            f"<div style='width:{width:.1f}%;height:100%;background:#1f6feb;border-radius:3px'></div></div>"
        )
        rows = [
            ("spent", f"ε = {_eps(self.epsilon_spent)} of {_eps(self.epsilon_total)} ({share:.0%})"),
            ("remaining", f"ε = {_eps(self.epsilon_remaining)}"),
            ("stored answers", str(self.answers)),
        ]
        if self.delta_total:
            rows.append(("δ", f"{self.delta_spent:.2g} of {self.delta_total:.2g}"))
        if self.analyst_epsilon_limit is not None:
            rows.append(
                ("yours", f"ε = {_eps(self.analyst_epsilon_spent)} of your limit {_eps(self.analyst_epsilon_limit)}")
            )
        if self.population:
            rows.append(("population", self.population))
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
        )
        return f"<p><b>Privacy budget</b> of {html.escape(self.dataset)}</p>{bar}<table>{body}</table>"
