"""Averaging: ask the same question many times (and trivially rewritten) and average the noise away.

Defence (DESIGN invariant 3): the ledger keys every answer by the query's canonical form; the same canonical query
on an unchanged dataset returns the stored answer and costs nothing. Rewrites that do not change the question
(group-by columns reordered, filter values reordered or repeated, a filter listing every category of a
non-nullable column, ``count(column)`` of a non-nullable column, default fields spelled out) must collide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ._vault_http import charges, query, spent

COUNT = {"dataset": "households", "kind": "count", "by": ["household_type", "urbanisation"], "epsilon": 0.0731}
COUNT_REWRITES: list[dict[str, Any]] = [
    COUNT,
    {**COUNT, "by": ["urbanisation", "household_type"]},
    {**COUNT, "where": {"arrears": [True, False]}},  # every value of a non-nullable bool: no filter at all
    {**COUNT, "where": {"household_type": ["single", "couple", "couple_children", "single_parent", "other"]}},
    {**COUNT, "column": "income"},  # count of a non-nullable column = count of rows
    {**COUNT, "epsilon": 7.31e-2, "delta": 0.0, "where": None, "q": None, "bins": None},
]
MEAN = {"dataset": "households", "kind": "mean", "column": "income", "epsilon": 0.1372,
        "where": {"household_type": ["single", "couple"]}}  # fmt: skip
MEAN_REWRITES: list[dict[str, Any]] = [
    MEAN,
    {**MEAN, "where": {"household_type": ["couple", "single"]}},
    {**MEAN, "where": {"household_type": ["couple", "single", "couple"]}},
    {**MEAN, "where": {"household_type": ["single", "couple"], "arrears": [False, True]}},
]


def _average(
    vault: Any, n: int, rewrites: dict[str, list[dict[str, Any]]], attack_figure: Callable[[str], None]
) -> None:
    before = len(charges(vault.workspace))
    with vault.client("analyst") as c:
        spent_before = spent(c, "households")
        answers: dict[str, list[dict[str, Any]]] = {"count": [], "mean": []}
        for i in range(n):
            for name, bodies in rewrites.items():
                r = query(c, bodies[i % len(bodies)])
                assert r.status_code == 200, r.text
                answers[name].append(r.json())
        total = spent(c, "households") - spent_before
    for name, got in answers.items():
        assert len({a["id"] for a in got}) == 1, f"{name}: {len({a['id'] for a in got})} distinct results"
        assert all(a["values"] == got[0]["values"] for a in got), f"{name}: the noise changed between repeats"
        assert sum(a["charged_epsilon"] for a in got) == pytest.approx(got[0]["epsilon"])
        assert [a["reused"] for a in got] == [False] + [True] * (len(got) - 1)
    first = [bodies[0]["epsilon"] for bodies in rewrites.values()]
    assert total == pytest.approx(sum(first))
    assert len(charges(vault.workspace)) - before == 2
    attack_figure(
        f"{2 * n} requests ({len(COUNT_REWRITES)}+{len(MEAN_REWRITES)} rewrites): 2 answers, 2 charges, "
        f"ε spent {total:g} (without the defence {n * sum(first):g})"
    )


def _at(bodies: list[dict[str, Any]], epsilon: float) -> list[dict[str, Any]]:
    """The same rewrites at another epsilon (a question not asked before in this session)."""
    return [{**b, "epsilon": epsilon} for b in bodies]


@pytest.mark.system
@pytest.mark.attack("averaging", defence="stored answers by canonical query key (invariant 3)")
def test_repeated_and_rewritten_queries_cost_once(shared_vault: Any, attack_figure: Callable[[str], None]) -> None:
    _average(shared_vault, 25, {"count": COUNT_REWRITES, "mean": MEAN_REWRITES}, attack_figure)


@pytest.mark.slow
@pytest.mark.system
@pytest.mark.attack("averaging", defence="stored answers by canonical query key (invariant 3)")
def test_repeated_and_rewritten_queries_cost_once_1000(shared_vault: Any, attack_figure: Callable[[str], None]) -> None:
    rewrites = {"count": _at(COUNT_REWRITES, 0.0732), "mean": _at(MEAN_REWRITES, 0.1373)}
    _average(shared_vault, 1000, rewrites, attack_figure)
