"""Statistical disclosure control (SDC) of a table item, as ACRO and CBS output checking do it.

The checks read the *private* cell statistics the vault stored with a DP answer (the true number of privacy
units behind each cell and, for sums and means, the cell's true total and largest contributions); they never
see the DP values, because noise does not make a cell of three households safe to publish.

Rules, with ``d = policy.disclosure``:

- **minimum count**: a non-empty cell resting on fewer than ``d.min_count`` units fails;
- **zeros**: an empty cell (no unit at all) reveals that nobody in the group has the property; it gets the
  verdict ``d.zeros`` (``review`` by default). It is judged by this rule only, not by the minimum count,
  because it rests on nobody;
- **dominance (n, k)** for magnitude tables: the ``d.dominance_n`` largest contributions may make up at most
  ``d.dominance_k`` of the cell total (checked when the total is positive, as ACRO does);
- **p-ratio** for magnitude tables: the total minus the two largest contributions must be at least
  ``d.p_ratio`` times the largest, otherwise the second-largest contributor can estimate the largest to within
  ``p``;
- **negative contributions** make dominance and p-ratio meaningless; such a cell gets ``review``;
- **all-zero magnitude cell**: a sum or mean cell of ``n >= 1`` units whose contributions are all exactly 0 ("all
  15 households have zero debt") shows the value of every one of them. It is the magnitude form of a zero in the
  frequency table "units with a non-zero value": the SDC Handbook's *group attribute disclosure* (Hundepool et al.,
  Handbook on Statistical Disclosure Control, 2nd ed. 2024, section 5.2 "Disclosure risks": it "can occur when all
  respondents fall into a subset of categories ... it is essential to introduce ambiguity in the zeros"; glossary,
  "Attribute disclosure"). It gets the verdict ``d.zeros``, like an empty cell, on top of the other rules (the
  dominance and p-ratio rules pass a zero total by construction). ACRO compares: its ``zeros_are_disclosive``
  covers empty count cells, and its ``all-values-are-same`` check flags a magnitude cell whose observations all
  share one value, of which this is the zero case. The finding is an exact-data fact: it goes to reviewers.

A cell whose dominance check needs more largest contributions than the vault recorded gets ``review``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox._private.shared.errors import ReleaseError
from sandbox._private.shared.policy import DisclosureRules
from sandbox._private.shared.verdict import Status, worst

__all__ = ["cells_from_private", "CellStats", "CellCheck", "TableCheck", "check_cell", "check_table", "format_key"]

_MAX_LISTED = 20
# (verdict, reason with the exact numbers for reviewers[, reason without them for the analyst])
_Finding = tuple[Status, str] | tuple[Status, str, str]


@dataclass(frozen=True)
class CellStats:
    """The private statistics behind one table cell (stored in the ledger, never sent to the client).

    Parameters
    ----------
    key : tuple of str
        The cell's group key, e.g. ``("single_parent", "rotterdam")``; ``()`` for an ungrouped total.
    count : int
        True number of privacy units (households or persons) that contribute to the cell.
    total : float, optional
        True sum of the contributions (magnitude tables only).
    top : tuple of float
        The largest contributions of single units, in descending order (magnitude tables only).
    """

    key: tuple[str, ...]
    count: int
    total: float | None = None
    top: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise ReleaseError(f"cell {format_key(self.key)}: count must be an integer >= 0, got {self.count!r}.")
        if self.total is None and self.top:
            raise ReleaseError(f"cell {format_key(self.key)}: largest contributions given without a total.")
        values = ([self.total] if self.total is not None else []) + list(self.top)
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise ReleaseError(f"cell {format_key(self.key)}: total and contributions must be finite numbers.")
        if list(self.top) != sorted(self.top, reverse=True):
            raise ReleaseError(f"cell {format_key(self.key)}: largest contributions must be in descending order.")
        if len(self.top) > self.count:
            raise ReleaseError(
                f"cell {format_key(self.key)}: {len(self.top)} largest contributions recorded for a cell of "
                f"{self.count} units."
            )

    @property
    def magnitude(self) -> bool:
        """Whether the cell is a sum (or mean) rather than a count."""
        return self.total is not None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CellStats:
        """Build from the JSON form ``{"key": [...], "count": n, "total": x, "top": [a, b]}``."""
        try:
            total = data.get("total")
            return cls(
                key=tuple(str(k) for k in data.get("key", ())),
                count=data["count"],
                total=None if total is None else float(total),
                top=tuple(float(t) for t in data.get("top", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ReleaseError):
                raise
            raise ReleaseError(f"malformed private cell statistics {dict(data)!r}: {exc}") from None


def cells_from_private(private: Mapping[str, Any]) -> list[CellStats]:
    """Read the cells of a DP engine answer's private part (``sandbox.answer-private/1``).

    Counts use the true number of households (``units``). Magnitude cells use the *absolute* household
    contributions (``abs_total``, ``top1``, ``top2``), so dominance and p-ratio are defined even where values
    are negative, as tau-ARGUS does.
    """
    out = []
    for cell in private.get("cells", []):
        try:
            units = int(cell["units"])
            key = tuple(str(k) for k in cell.get("key", ()))
            if "abs_total" in cell:
                top = (float(cell["top1"]), float(cell["top2"]))[: min(units, 2)]
                out.append(CellStats(key, units, float(cell["abs_total"]), top))
            else:
                out.append(CellStats(key, units))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ReleaseError):
                raise
            raise ReleaseError(f"malformed private cell statistics {cell!r}: {exc}") from None
    return out


@dataclass(frozen=True)
class CellCheck:
    """Verdict on one cell with the reasons (empty when it passes).

    ``reasons`` state the true numbers (for reviewers, inside the vault); ``coarse_reasons`` say only which rule
    failed and its threshold, so an analyst cannot read exact small counts or shares off the gate.
    """

    key: tuple[str, ...]
    verdict: Status
    reasons: tuple[str, ...]
    coarse_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableCheck:
    """Verdict on a whole table item: the worst of its cells, with a summary of the reasons."""

    verdict: Status
    reasons: tuple[str, ...]
    cells: tuple[CellCheck, ...]
    coarse_reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready form for the ledger, the API and the reviewer page."""
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "cells": [
                {"key": list(c.key), "verdict": c.verdict, "reasons": list(c.reasons)}
                for c in self.cells
                if c.verdict != "pass"
            ],
        }


def format_key(key: Sequence[str]) -> str:
    """``("single_parent", "rotterdam")`` -> ``"(single_parent, rotterdam)"``; ``()`` -> ``"(all)"``."""
    return "(" + (", ".join(str(k) for k in key) or "all") + ")"


def _units(unit: str) -> str:
    return f"{unit}s"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _zero_rule(cell: CellStats, rules: DisclosureRules, unit: str) -> list[_Finding]:
    if rules.zeros == "pass":
        return []
    return [
        (
            rules.zeros,
            f"cell {format_key(cell.key)} is empty: it shows that no {unit} in this group has the property "
            f"(policy zeros: {rules.zeros}); merge categories or explain why the zero is structural",
        )
    ]


def _min_count_rule(cell: CellStats, rules: DisclosureRules, unit: str) -> list[_Finding]:
    if cell.count >= rules.min_count:
        return []
    return [
        (
            "fail",
            f"cell {format_key(cell.key)} rests on {cell.count} {_units(unit)}; the minimum is "
            f"{rules.min_count}: merge categories or drop the cell",
            f"cell {format_key(cell.key)} rests on fewer than {rules.min_count} {_units(unit)}: merge categories or "
            "drop the cell",
        )
    ]


def _dominance_rule(cell: CellStats, rules: DisclosureRules, unit: str) -> list[_Finding]:
    total = cell.total or 0.0
    n = rules.dominance_n
    if total <= 0:
        return []
    if len(cell.top) < min(n, cell.count):
        return [
            (
                "review",
                f"cell {format_key(cell.key)}: dominance (n={n}) needs the {n} largest contributions but the "
                f"vault recorded {len(cell.top)}; a reviewer must judge the cell",
            )
        ]
    share = sum(cell.top[:n]) / total
    if share <= rules.dominance_k:
        return []
    return [
        (
            "fail",
            f"cell {format_key(cell.key)}: the {n} largest {_units(unit)} make up {_pct(share)} of the cell "
            f"total; the maximum is {_pct(rules.dominance_k)} (dominance n={n}, k={rules.dominance_k}): "
            "merge categories, drop the cell or top-code the variable",
            f"cell {format_key(cell.key)}: the {n} largest {_units(unit)} make up more than "
            f"{_pct(rules.dominance_k)} of the cell total (dominance n={n}, k={rules.dominance_k}): merge "
            "categories, drop the cell or top-code the variable",
        )
    ]


def _p_ratio_rule(cell: CellStats, rules: DisclosureRules, unit: str) -> list[_Finding]:
    if not cell.top or cell.top[0] <= 0:
        return []
    if cell.count >= 2 and len(cell.top) < 2:
        return [
            (
                "review",
                f"cell {format_key(cell.key)}: the p-ratio needs the two largest contributions but the vault "
                "recorded one; a reviewer must judge the cell",
            )
        ]
    largest = cell.top[0]
    rest = (cell.total or 0.0) - largest - (cell.top[1] if cell.count >= 2 else 0.0)
    if rest >= rules.p_ratio * largest:
        return []
    return [
        (
            "fail",
            f"cell {format_key(cell.key)}: the total minus the two largest contributions is {rest:.6g}, less "
            f"than p={rules.p_ratio} times the largest ({largest:.6g}), so the second-largest {unit} can "
            "estimate the largest: merge categories or drop the cell",
            f"cell {format_key(cell.key)}: the total minus the two largest contributions is less than "
            f"p={rules.p_ratio} times the largest, so the second-largest {unit} can estimate the largest: merge "
            "categories or drop the cell",
        )
    ]


def _all_zero_rule(cell: CellStats, rules: DisclosureRules, unit: str) -> list[_Finding]:
    """All contributions are 0: the largest is 0 and the total is 0 (so none is negative either)."""
    if rules.zeros == "pass" or not cell.top or cell.top[0] != 0 or cell.total != 0:
        return []
    return [
        (
            rules.zeros,
            f"cell {format_key(cell.key)}: all {cell.count} {_units(unit)} contribute exactly 0, so the cell shows "
            f"the value of every one of them (group attribute disclosure, SDC Handbook 5.2; policy zeros: "
            f"{rules.zeros}); merge categories or explain why the zero is structural",
            f"cell {format_key(cell.key)}: every contribution is 0, which shows each contributor's value (policy "
            f"zeros: {rules.zeros}); merge categories or explain why the zero is structural",
        )
    ]


def _negative_rule(cell: CellStats, unit: str) -> list[_Finding]:
    if (cell.total or 0.0) >= 0 and all(t >= 0 for t in cell.top):
        return []
    return [
        (
            "review",
            f"cell {format_key(cell.key)} has negative contributions; dominance and p-ratio assume "
            f"non-negative values, so a reviewer must judge whether one {unit} can be recognised",
        )
    ]


def check_cell(cell: CellStats, rules: DisclosureRules, unit: str = "household") -> CellCheck:
    """Apply every disclosure rule to one cell.

    Parameters
    ----------
    cell : CellStats
        The cell's private statistics.
    rules : DisclosureRules
        The policy's ``disclosure`` section.
    unit : str
        The privacy unit's name (``"household"`` or ``"person"``), used in the reasons.

    Returns
    -------
    CellCheck
        The worst verdict over the rules, and one reason per rule that did not pass.
    """
    if cell.count == 0:
        found = _zero_rule(cell, rules, unit)
    else:
        found = _min_count_rule(cell, rules, unit)
        if cell.magnitude:
            found += _all_zero_rule(cell, rules, unit)
            negative = _negative_rule(cell, unit)
            found += negative or (_dominance_rule(cell, rules, unit) + _p_ratio_rule(cell, rules, unit))
    verdict = worst(f[0] for f in found)
    return CellCheck(cell.key, verdict, tuple(f[1] for f in found), tuple(f[-1] for f in found))


def check_table(cells: Iterable[CellStats], rules: DisclosureRules, unit: str = "household") -> TableCheck:
    """Check every cell of a table item and summarise.

    Parameters
    ----------
    cells : iterable of CellStats
        The private statistics of every cell of the table.
    rules : DisclosureRules
        The policy's ``disclosure`` section.
    unit : str
        The privacy unit's name, used in the reasons.

    Returns
    -------
    TableCheck
        The worst cell verdict; the reasons of the first cells that did not pass (at most 20, then a count).
    """
    checks = tuple(check_cell(c, rules, unit) for c in cells)
    keys = [c.key for c in checks]
    if len(set(keys)) != len(keys):
        raise ReleaseError("the table's private statistics list a cell key twice; this table cannot be checked.")
    exact = _capped([r for c in checks for r in c.reasons])
    coarse = _capped([r for c in checks for r in c.coarse_reasons])
    return TableCheck(worst(c.verdict for c in checks), exact, checks, coarse)


def _capped(reasons: list[str]) -> tuple[str, ...]:
    if len(reasons) > _MAX_LISTED:
        reasons = [*reasons[:_MAX_LISTED], f"... and {len(reasons) - _MAX_LISTED} more findings in other cells"]
    return tuple(reasons)
