"""The analyst's side of disclosure control: the policy's rules applied to DP values only.

The gate answers the analyst from values that are public or already differentially private, never from the
true cell statistics (DESIGN invariant 10). Per table item:

- a **count or histogram of a household table** (one row per household) has released noisy household counts;
  the minimum-count and zero rules are applied to those values, at no extra cost;
- **every other table** (sums, means, variances, quantiles, counts of person or event rows) gets a **DP disclosure
  test** that the gate charges in the ledger with ``policy.gate.sdc_test_epsilon``, split evenly over its parts:

  * ``units``: a noisy number of households per cell (geometric mechanism; one household is in at most ``k``
    cells, ``k`` the rows kept per household, so the L1 sensitivity is ``k``), against ``min_count`` and the zero
    rule;
  * ``dominance`` (sums, means, variances): the noisy margin ``T = k_d * A - S`` per cell, ``A`` the sum of the
    households' absolute contributions and ``S`` the sum of the ``n`` largest (for ``n > 2``, where the vault
    records only the two largest, the upper bound ``top1 + (n - 1) * top2``). Adding one household that contributes
    ``v`` to a cell moves ``A`` by ``v`` and ``S`` by a value in ``[0, v]`` (``[0, n v]`` for the bound), so
    ``|dT| <= c v`` with ``c = max(k_d, 1 - k_d)`` (``n`` for the bound); one household contributes at most ``k M``
    over all cells (``M`` the largest absolute value the schema allows), so the L1 sensitivity is ``c k M``
    (Laplace);
  * ``p_ratio`` (same kinds): the noisy margin ``R = A - top1 - top2 - p * top1``; adding a household moves it by a
    value in ``[-p v, v]``, so the L1 sensitivity is ``k M`` (Laplace).

A noisy count below ``min_count`` fails the item (the request is blocked), as for released counts. A negative
noisy margin only asks for review: dominance is a property of one or two households, which is exactly what DP
hides, so the margins cannot tell a dominated small cell from a safe one (their noise is about ``3 c M / eps``).
They tell the analyst only that a cell is far from dominance, when its total exceeds about ``7 c M / eps``
(the false-flag rate is then below 5%); the reviewers apply the exact rules.

A test is one ledger charge of kind ``"sdc_test"`` keyed on the item and epsilon, so the same item in a later
request reuses its stored test at no cost (no averaging). With ``sdc_test_epsilon: 0`` no test is run and those
items go to the reviewers with the verdict ``review``. The exact rules (:mod:`.sdc`) are applied too, and their
findings go to reviewers only (:mod:`.findings`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sandbox._private.shared.canonical import canonical_json
from sandbox._private.shared.policy import Policy
from sandbox._private.shared.schema import TableSchema
from sandbox._private.shared.verdict import Status, worst
from sandbox._private.vault.dp.mechanisms import noisy_vector
from sandbox._private.vault.ledger.ledger import ChargeRecord, ComputedAnswer

from .sdc import format_key

__all__ = ["TEST_KIND", "TestPlan", "DPCheck", "plan_test", "compute_test", "dp_check"]

#: Ledger kind of the gate's DP disclosure tests.
TEST_KIND = "sdc_test"
_COUNT_KINDS = ("count", "histogram")
_MAGNITUDE_KINDS = ("sum", "mean", "variance")
_NOT_CELLS = ("value", "noise_scale", "ci95")
_MAX_LISTED = 20


@dataclass(frozen=True)
class TestPlan:
    """A DP disclosure test the gate must charge for one table item (all of it public: kind, epsilon, bounds)."""

    item_id: str
    tests: tuple[str, ...]
    epsilon: float
    rows_per_unit: int
    max_abs: float

    @property
    def query(self) -> dict[str, Any]:
        """What the ledger records for the test (and keys its stored answer on)."""
        return {"sdc_test": self.item_id, "tests": list(self.tests), "epsilon": self.epsilon}

    @property
    def query_key(self) -> str:
        """The canonical key of the test in the ledger."""
        return canonical_json({"kind": TEST_KIND, **self.query})


@dataclass(frozen=True)
class DPCheck:
    """The analyst's disclosure verdict on one table item, from DP values only (JSON: :meth:`to_json`)."""

    verdict: Status
    reasons: tuple[str, ...]
    basis: str
    test_id: str | None = None
    epsilon: float = 0.0
    flagged: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the ``sdc`` entry of an item in the analyst's view of a request."""
        return {
            "verdict": self.verdict,
            "basis": self.basis,
            "test_id": self.test_id,
            "epsilon": self.epsilon,
            "cells": list(self.flagged),
        }


@functools.lru_cache(maxsize=128)
def parsed(text: str) -> Mapping[str, Any]:
    """Parse a stored JSON object once (the gate reads each record's parts several times); never mutate it."""
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


_loads = parsed


def _kind(record: ChargeRecord) -> str:
    public, query = _loads(record.public_json), _loads(record.query_json)
    return str(public.get("kind") or query.get("kind") or "count")


def _rows_per_unit(record: ChargeRecord) -> int:
    return int(_loads(record.public_json).get("rows_per_unit") or 1)


def is_table(record: ChargeRecord) -> bool:
    """Whether the item is a table with private cell statistics (the only items the disclosure rules apply to)."""
    return record.kind == "aggregate" and isinstance(_loads(record.private_json).get("cells"), list)


def uses_released_counts(record: ChargeRecord) -> bool:
    """Whether the item's released values are noisy household counts (no DP test needed)."""
    return _kind(record) in _COUNT_KINDS and _rows_per_unit(record) == 1


def plan_test(record: ChargeRecord, policy: Policy, schema: TableSchema | None) -> TestPlan | None:
    """Return the DP test a table item needs, or ``None`` (not a table, noisy household counts, or epsilon 0)."""
    if not is_table(record) or uses_released_counts(record):
        return None
    eps = float(policy.gate.sdc_test_epsilon)
    if eps <= 0:
        return None
    kind = _kind(record)
    tests: tuple[str, ...] = ("units",)
    max_abs = 0.0
    if kind in _MAGNITUDE_KINDS:
        tests = ("units", "dominance", "p_ratio")
        column = _loads(record.query_json).get("column")
        if schema is not None and isinstance(column, str) and column in schema:
            lo, hi = schema.column(column).bounds
            max_abs = max(abs(float(lo)), abs(float(hi)))
        else:  # no bounds to calibrate the margins: count only, and the magnitude rules go to reviewers
            tests = ("units",)
    return TestPlan(record.id, tests, eps, _rows_per_unit(record), max_abs)


def _dominance_factor(policy: Policy) -> float:
    d = policy.disclosure
    return max(d.dominance_k, 1.0 - d.dominance_k) if d.dominance_n <= 2 else float(d.dominance_n)


def compute_test(plan: TestPlan, item: ChargeRecord, policy: Policy) -> ComputedAnswer:
    """Run the DP test on the item's private cell statistics (see the module docstring); one ledger answer."""
    cells = _loads(item.private_json).get("cells", [])
    d = policy.disclosure
    share = plan.epsilon / len(plan.tests)
    k = plan.rows_per_unit
    units = np.array([float(c.get("units", 0)) for c in cells])
    noisy_units, n_units = noisy_vector(units, epsilon=share, delta=0.0, sensitivity=k, integer=True)
    out: list[dict[str, Any]] = [
        {"key": list(c.get("key", [])), "units": int(u)} for c, u in zip(cells, noisy_units, strict=True)
    ]
    mechanisms = [{"test": "units", **n_units.to_dict()}]
    if "dominance" in plan.tests:
        a = np.array([float(c.get("abs_total", 0.0)) for c in cells])
        t1 = np.array([float(c.get("top1", 0.0)) for c in cells])
        t2 = np.array([float(c.get("top2", 0.0)) if int(c.get("units", 0)) >= 2 else 0.0 for c in cells])
        top = t1 + (d.dominance_n - 1) * t2  # exact for n <= 2, an upper bound on the n largest for n > 2
        dom = d.dominance_k * a - top
        ratio = a - t1 - t2 - d.p_ratio * t1
        sens_dom = _dominance_factor(policy) * k * plan.max_abs
        noisy_dom, n_dom = noisy_vector(dom, epsilon=share, delta=0.0, sensitivity=sens_dom, integer=False)
        sens_ratio = k * plan.max_abs
        noisy_ratio, n_ratio = noisy_vector(ratio, epsilon=share, delta=0.0, sensitivity=sens_ratio, integer=False)
        for row, x, y in zip(out, noisy_dom, noisy_ratio, strict=True):
            row["dominance_margin"] = float(x)
            row["p_ratio_margin"] = float(y)
        mechanisms += [{"test": "dominance", **n_dom.to_dict()}, {"test": "p_ratio", **n_ratio.to_dict()}]
    public = {
        "format": "sandbox.sdc-test/1",
        "item": plan.item_id,
        "tests": list(plan.tests),
        "epsilon": plan.epsilon,
        "rules": {"min_count": d.min_count, "dominance_n": d.dominance_n, "dominance_k": d.dominance_k,
                  "p_ratio": d.p_ratio, "zeros": d.zeros},
        "cells": out,
        "mechanisms": mechanisms,
    }  # fmt: skip
    mechanism = "+".join(str(m["mechanism"]) for m in mechanisms)
    return ComputedAnswer(public, {"format": "sandbox.sdc-test-private/1"}, mechanism)


_Found = tuple[Status, str, dict[str, Any]]


def _finding(key: Sequence[Any], rule: str, verdict: Status, text: str) -> _Found:
    cell = {"key": list(key), "rule": rule, "verdict": verdict}
    return verdict, f"cell {format_key([str(k) for k in key])}: {text}", cell


def _count_findings(key: Sequence[Any], value: float, policy: Policy, what: str) -> list[_Found]:
    d = policy.disclosure
    if value <= 0:
        if d.zeros == "pass":
            return []
        text = (
            f"{what} is {value:.0f}, so the cell may be empty (policy zeros: {d.zeros}); merge categories or explain "
            "why the zero is structural"
        )
        return [_finding(key, "zeros", d.zeros, text)]
    if value < d.min_count:
        text = (
            f"{what} is {value:.0f}, below the minimum of {d.min_count} {policy.privacy_unit}s: merge categories or "
            "drop the cell"
        )
        return [_finding(key, "min_count", "fail", text)]
    return []


def _released_findings(record: ChargeRecord, policy: Policy) -> list[_Found]:
    public = _loads(record.public_json)
    columns = [c for c in public.get("columns", []) if c not in _NOT_CELLS]
    found = []
    for row in public.get("rows", []):
        key = [row.get(c) for c in columns] if columns else [v for c, v in row.items() if c not in _NOT_CELLS]
        value = row.get("value")
        if isinstance(value, int | float):
            found += _count_findings(key, float(value), policy, "its released noisy count")
    return found


def _test_findings(test: ChargeRecord, policy: Policy) -> list[_Found]:
    public = _loads(test.public_json)
    d, unit = policy.disclosure, policy.privacy_unit
    dominance = (
        f"the DP test's noisy margin puts the {d.dominance_n} largest {unit}s above {100 * d.dominance_k:.1f}% of the "
        "cell total (a reviewer applies the exact rule): merge categories, drop the cell or top-code the variable"
    )
    p_ratio = (
        f"the DP test's noisy margin puts the total minus the two largest contributions below p={d.p_ratio} times "
        "the largest (a reviewer applies the exact rule): merge categories or drop the cell"
    )
    found = []
    for cell in public.get("cells", []):
        key, units = cell.get("key", []), float(cell.get("units", 0))
        found += _count_findings(key, units, policy, "the DP test's noisy household count")
        if units <= 0 or "dominance_margin" not in cell:
            continue
        if float(cell["dominance_margin"]) < 0:
            found.append(_finding(key, "dominance", "review", dominance))
        if float(cell["p_ratio_margin"]) < 0:
            found.append(_finding(key, "p_ratio", "review", p_ratio))
    return found


def _negative_values(record: ChargeRecord, schema: TableSchema | None, policy: Policy) -> list[tuple[Status, str]]:
    column = _loads(record.query_json).get("column")
    if _kind(record) not in _MAGNITUDE_KINDS or schema is None or not isinstance(column, str) or column not in schema:
        return []
    lo, _ = schema.column(column).bounds
    if float(lo) >= 0:
        return []
    text = (
        f"column {column!r} may be negative (schema lower bound {lo:g}); dominance and p-ratio assume non-negative "
        f"values, so a reviewer judges whether one {policy.privacy_unit} can be recognised"
    )
    return [("review", text)]


def _capped(reasons: list[str]) -> tuple[str, ...]:
    if len(reasons) > _MAX_LISTED:
        reasons = [*reasons[:_MAX_LISTED], f"... and {len(reasons) - _MAX_LISTED} more findings in other cells"]
    return tuple(reasons)


def dp_check(
    record: ChargeRecord, test: ChargeRecord | None, policy: Policy, schema: TableSchema | None
) -> DPCheck | None:
    """Return the analyst's disclosure verdict on a table item; ``None`` for items that are not tables.

    ``test`` is the stored DP test of the item (:func:`plan_test` said one is needed), or ``None``.
    """
    if not is_table(record):
        return None
    if uses_released_counts(record):
        found, basis, test_id, eps = _released_findings(record, policy), "released noisy counts", None, 0.0
    elif test is not None:
        found, basis, test_id, eps = _test_findings(test, policy), "DP disclosure test", test.id, test.epsilon
    else:
        reason = (
            f"the disclosure rules of this {_kind(record)} table are judged by reviewers only (policy "
            "gate.sdc_test_epsilon is 0, so the gate runs no DP test)"
        )
        return DPCheck("review", (reason,), "reviewers only")
    extra = _negative_values(record, schema, policy)
    verdict = worst([*(f[0] for f in found), *(v for v, _ in extra)])
    reasons = _capped([f[1] for f in found] + [r for _, r in extra])
    return DPCheck(verdict, reasons, basis, test_id, eps, tuple(f[2] for f in found[:_MAX_LISTED]))


def tests_needed(plans: Mapping[str, TestPlan | None]) -> float:
    """Return the total epsilon of the DP tests in ``plans`` (for the budget message before any is charged)."""
    return float(sum(p.epsilon for p in plans.values() if p is not None))
