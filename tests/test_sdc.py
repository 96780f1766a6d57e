"""Disclosure checks against hand-computed cases and a brute-force implementation on raw contributions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox._private.shared.errors import ReleaseError
from sandbox._private.shared.policy import DisclosureRules
from sandbox._private.vault.gate.sdc import CellStats, check_cell, check_table

RULES = DisclosureRules()  # min_count 10, dominance (2, 0.85), p 0.10, zeros review


def stats_from(key: tuple[str, ...], contributions: list[float] | None, count: int | None = None) -> CellStats:
    if contributions is None:
        assert count is not None
        return CellStats(key, count)
    ordered = sorted(contributions, reverse=True)
    return CellStats(key, len(ordered), float(sum(ordered)), tuple(ordered[:2]))


def test_min_count_reason_states_numbers_and_fix() -> None:
    c = check_cell(CellStats(("single_parent", "rotterdam"), 7), RULES)
    assert c.verdict == "fail"
    assert c.reasons == (
        "cell (single_parent, rotterdam) rests on 7 households; the minimum is 10: merge categories or drop the cell",
    )


def test_min_count_boundary_and_person_unit() -> None:
    assert check_cell(CellStats(("a",), 10), RULES).verdict == "pass"
    c = check_cell(CellStats(("a",), 9), RULES, unit="person")
    assert c.verdict == "fail"
    assert "rests on 9 persons" in c.reasons[0]


@pytest.mark.parametrize("zeros", ["pass", "review", "fail"])
def test_zero_cell_follows_policy(zeros: str) -> None:
    rules = DisclosureRules(zeros=zeros)  # type: ignore[arg-type]
    c = check_cell(CellStats(("x", "y"), 0), rules)
    assert c.verdict == zeros
    assert (len(c.reasons) == 0) == (zeros == "pass")
    if zeros != "pass":
        assert "cell (x, y) is empty" in c.reasons[0]


@pytest.mark.parametrize("zeros", ["pass", "review", "fail"])
def test_all_zero_magnitude_cell_follows_the_zeros_policy(zeros: str) -> None:
    """'All 15 households have zero debt' shows every household's debt: SDC Handbook 5.2, group disclosure."""
    rules = DisclosureRules(zeros=zeros)  # type: ignore[arg-type]
    c = check_cell(stats_from(("single", "utrecht"), [0.0] * 15), rules)
    assert c.verdict == zeros
    if zeros == "pass":
        assert c.reasons == ()
    else:
        assert c.reasons == (
            "cell (single, utrecht): all 15 households contribute exactly 0, so the cell shows the value of every one "
            f"of them (group attribute disclosure, SDC Handbook 5.2; policy zeros: {zeros}); merge categories or "
            "explain why the zero is structural",
        )
        assert "15" not in c.coarse_reasons[0] and "every contribution is 0" in c.coarse_reasons[0]


def test_all_zero_rule_needs_every_contribution_zero_and_adds_to_the_minimum_count() -> None:
    one = check_cell(stats_from(("a",), [0.0] * 14 + [3.0]), RULES)  # one non-zero: dominance, not the zero rule
    assert one.verdict == "fail" and not any("contribute exactly 0" in r for r in one.reasons)
    assert check_cell(stats_from(("a",), [1.0] * 15), RULES).verdict == "pass"
    assert check_cell(stats_from(("a",), [0.0] * 14 + [-3.0]), RULES).reasons == (
        "cell (a) has negative contributions; dominance and p-ratio assume non-negative values, so a reviewer must "
        "judge whether one household can be recognised",
    )  # a signed total of -3 with largest 0 is not all-zero
    small = check_cell(stats_from(("a",), [0.0] * 3), RULES)
    assert small.verdict == "fail" and len(small.reasons) == 2  # 3 households, and all of them zero
    assert "rests on 3 households" in small.reasons[0] and "all 3 households contribute exactly 0" in small.reasons[1]


def test_all_zero_cell_from_the_engine_reaches_the_rule() -> None:
    from test_dp_tables import engine_policy, households_frame, households_schema

    from sandbox._private.shared.query import AggregateQuery
    from sandbox._private.vault.dp.engine import DPEngine
    from sandbox._private.vault.dp.tabledata import TableData
    from sandbox._private.vault.gate.sdc import cells_from_private

    frame = households_frame(300, seed=5)
    frame.loc[frame.household_type == "single", "income"] = 0.0  # every single household: zero income
    table = TableData.from_frame(frame, households_schema())
    for kind in ("sum", "mean"):
        q = AggregateQuery("households", kind, "income", epsilon=1.0, by=("household_type",))
        checks = check_table(cells_from_private(DPEngine(engine_policy()).answer(q, table).private), RULES)
        by_key = {c.key: c for c in checks.cells}
        single = by_key[("single",)]
        n_single = int((frame.household_type == "single").sum())
        assert single.verdict == "review" and f"all {n_single} households contribute exactly 0" in single.reasons[-1]
        assert all("contribute exactly 0" not in r for c in checks.cells if c.key != ("single",) for r in c.reasons)


def test_dominance_hand_computed() -> None:
    # 12 households: two of 450 and ten of 10 -> total 1000, top two 900 = 90% > 85%
    c = check_cell(stats_from(("a",), [450, 450] + [10] * 10), RULES)
    assert c.verdict == "fail"
    assert any("make up 90.0% of the cell total; the maximum is 85.0%" in r for r in c.reasons)
    # exactly 85% passes (the rule is "more than k")
    c = check_cell(stats_from(("a",), [425, 425] + [15] * 10), RULES)
    assert c.verdict == "pass", c.reasons


def test_p_ratio_hand_computed() -> None:
    # largest 1000, second 10, rest 10 * 9 = 90 < 0.10 * 1000 = 100 -> fail; dominance 1010/1100 = 91.8% also fails
    c = check_cell(stats_from(("a",), [1000, 10] + [9] * 10), RULES)
    assert c.verdict == "fail"
    assert any("the total minus the two largest contributions is 90, less than p=0.1" in r for r in c.reasons)
    # p-ratio alone: dominance n=2 k=0.99, rest 100 >= 100 passes, rest 99 fails
    rules = DisclosureRules(dominance_k=0.99)
    assert check_cell(stats_from(("a",), [1000, 10] + [10] * 10), rules).verdict == "pass"
    failing = check_cell(stats_from(("a",), [1000, 10] + [10] * 9 + [9]), rules)
    assert failing.verdict == "fail"
    assert len(failing.reasons) == 1
    assert "p=0.1" in failing.reasons[0]


def test_negative_contributions_need_review() -> None:
    c = check_cell(CellStats(("a",), 20, -5.0, (3.0, 2.0)), RULES)
    assert c.verdict == "review"
    assert "negative contributions" in c.reasons[0]


def test_missing_largest_contributions_need_review() -> None:
    rules = DisclosureRules(dominance_n=3, dominance_k=0.99)
    c = check_cell(CellStats(("a",), 20, 100.0, (10.0, 9.0)), rules)
    assert c.verdict == "review"
    assert "needs the 3 largest contributions but the vault recorded 2" in c.reasons[0]


def test_table_verdict_is_worst_cell_and_lists_reasons() -> None:
    cells = [CellStats(("a",), 50), CellStats(("b",), 0), CellStats(("c",), 3)]
    t = check_table(cells, RULES)
    assert t.verdict == "fail"
    assert [c.verdict for c in t.cells] == ["pass", "review", "fail"]
    assert len(t.reasons) == 2
    assert t.to_json()["cells"] == [
        {"key": ["b"], "verdict": "review", "reasons": [t.cells[1].reasons[0]]},
        {"key": ["c"], "verdict": "fail", "reasons": [t.cells[2].reasons[0]]},
    ]


def test_table_caps_listed_reasons() -> None:
    t = check_table([CellStats((str(i),), 1) for i in range(30)], RULES)
    assert len(t.reasons) == 21
    assert t.reasons[-1] == "... and 10 more findings in other cells"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"count": -1}, "count must be an integer >= 0"),
        ({"count": 5, "top": (1.0,)}, "without a total"),
        ({"count": 5, "total": float("nan")}, "finite numbers"),
        ({"count": 5, "total": 3.0, "top": (1.0, 2.0)}, "descending order"),
        ({"count": 1, "total": 3.0, "top": (2.0, 1.0)}, "2 largest contributions recorded for a cell of 1"),
    ],
)
def test_malformed_cell_stats_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ReleaseError, match=match):
        CellStats(("k",), **kwargs)


def test_duplicate_keys_refused() -> None:
    with pytest.raises(ReleaseError, match="list a cell key twice"):
        check_table([CellStats(("a",), 20), CellStats(("a",), 30)], RULES)


def test_from_mapping_round_trip_and_errors() -> None:
    c = CellStats.from_mapping({"key": ["a", "b"], "count": 12, "total": 30, "top": [5, 4]})
    assert c == CellStats(("a", "b"), 12, 30.0, (5.0, 4.0))
    with pytest.raises(ReleaseError, match="malformed private cell statistics"):
        CellStats.from_mapping({"key": ["a"]})


# --- brute force on raw contributions ---------------------------------------------------------------------


def brute_force(contributions: list[int] | None, count: int, rules: DisclosureRules) -> str:
    """The ACRO rules written directly on the full list of contributions."""
    if count == 0:
        return rules.zeros
    found = ["fail"] if count < rules.min_count else []
    if contributions is not None:
        values = sorted(contributions, reverse=True)
        total = sum(values)
        if total > 0 and sum(values[: rules.dominance_n]) / total > rules.dominance_k:
            found.append("fail")
        if values[0] > 0 and sum(values[2:]) < rules.p_ratio * values[0]:
            found.append("fail")
        if all(v == 0 for v in values) and rules.zeros != "pass":  # every contribution zero: group disclosure
            found.append(rules.zeros)
    return "fail" if "fail" in found else "review" if "review" in found else "pass"


rules_strategy = st.builds(
    DisclosureRules,
    min_count=st.integers(1, 15),
    dominance_n=st.integers(1, 2),
    dominance_k=st.floats(0.3, 1.0),
    p_ratio=st.floats(0.0, 1.0),
    zeros=st.sampled_from(["pass", "review", "fail"]),
)
cell_strategy = st.one_of(
    st.lists(st.integers(0, 1000), min_size=0, max_size=25),  # magnitude cell (empty list = zero cell)
    st.integers(0, 30),  # count cell
)


@settings(max_examples=300, deadline=None)
@given(rules=rules_strategy, table=st.lists(cell_strategy, min_size=1, max_size=8))
def test_matches_brute_force_on_random_tables(rules: DisclosureRules, table: list) -> None:
    cells, expected = [], []
    for i, raw in enumerate(table):
        key = (f"g{i}",)
        if isinstance(raw, int):
            cells.append(CellStats(key, raw))
            expected.append(brute_force(None, raw, rules))
        elif raw:
            cells.append(stats_from(key, [float(v) for v in raw]))
            expected.append(brute_force(raw, len(raw), rules))
        else:
            cells.append(CellStats(key, 0, 0.0))
            expected.append(brute_force([], 0, rules))
    got = check_table(cells, rules)
    assert [c.verdict for c in got.cells] == expected
    assert all((c.verdict == "pass") == (not c.reasons) for c in got.cells)


def test_cells_from_engine_private_part() -> None:
    from sandbox._private.vault.gate.sdc import cells_from_private

    private = {
        "format": "sandbox.answer-private/1",
        "cells": [
            {"key": ["a", "x"], "rows": 30, "units": 12},
            {"key": ["b", "x"], "rows": 1, "units": 1, "total": -5.0, "abs_total": 5.0, "top1": 5.0, "top2": 0.0},
            {"key": ["c", "x"], "rows": 40, "units": 20, "total": 10.0, "abs_total": 100.0, "top1": 50, "top2": 40},
        ],
    }
    cells = cells_from_private(private)
    assert cells == [
        CellStats(("a", "x"), 12),
        CellStats(("b", "x"), 1, 5.0, (5.0,)),
        CellStats(("c", "x"), 20, 100.0, (50.0, 40.0)),
    ]
    verdicts = [c.verdict for c in check_table(cells, RULES).cells]
    assert verdicts == ["pass", "fail", "fail"]  # 1 household; 90% dominance on absolute values
    with pytest.raises(ReleaseError, match="malformed private cell statistics"):
        cells_from_private({"cells": [{"key": ["a"]}]})
