"""Differencing: two queries whose difference is one household's value.

The population is the shared small one, except that the marker household is the only one whose urbanisation is
'none'. ``sum(income)`` minus ``sum(income) where urbanisation != 'none'`` is then the marker's income. The vault
cannot know that a pair isolates someone; its defence is that each query of the pair is a different query, so
each is charged, sequential composition bounds what the pair reveals (2ε), and repeating the pair with fresh
noise (the attacker nudges ε to defeat the stored-answer cache) spends the budget until the vault refuses.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ._vault_http import assert_clean_error, charges, query, spent

MARKER_ID = 987_654_321  # tests/conftest.py's marker household
BUDGET = 2.0
EPS = 0.25
OTHERS = ["very_strong", "strong", "moderate", "little"]


@pytest.fixture(scope="module")
def isolating_population(small_population: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A copy of the small population in which only the marker household has urbanisation 'none'."""
    out = tmp_path_factory.mktemp("differencing-pop")
    shutil.copytree(small_population, out, dirs_exist_ok=True)
    hh = pd.read_parquet(out / "households.parquet")
    is_marker = hh["household_id"] == MARKER_ID
    assert is_marker.sum() == 1 and (hh["urbanisation"] == "none").sum() == 0
    hh.loc[is_marker, "urbanisation"] = "none"
    hh.to_parquet(out / "households.parquet", index=False)
    return out, float(hh.loc[is_marker, "income"].iloc[0])


def _pair(eps: float) -> tuple[dict[str, Any], dict[str, Any]]:
    total = {"dataset": "households", "kind": "sum", "column": "income", "epsilon": eps}
    return total, {**total, "where": {"urbanisation": OTHERS}}


def _attack(vault: Any, rounds: int) -> dict[str, Any]:
    """Repeat the differencing pair with fresh noise until the vault refuses; return what the attacker got."""
    diffs, charged, refusals = [], [], []
    with vault.client("analyst") as c:
        for i in range(rounds):
            eps = EPS * (1 - i * 1e-9)  # a new query each round (nudged down): the cache cannot help the vault
            got = [query(c, body) for body in _pair(eps)]
            if any(r.status_code != 200 for r in got):
                refusals += [r for r in got if r.status_code != 200]
                charged += [r.json()["charged_epsilon"] for r in got if r.status_code == 200]
                continue
            charged += [r.json()["charged_epsilon"] for r in got]
            a, b = (r.json()["values"]["rows"][0]["value"] for r in got)
            diffs.append(a - b)
        return {"diffs": diffs, "charged": charged, "refusals": refusals, "spent": spent(c, "households")}


def _check(vault: Any, rounds: int, marker_income: float, attack_figure: Callable[[str], None]) -> None:
    before = len(charges(vault.workspace))
    got = _attack(vault, rounds)
    n_answers = len(got["charged"])
    assert all(c == pytest.approx(EPS) for c in got["charged"]), "every query of a differencing pair is charged"
    assert n_answers == int(BUDGET / EPS + 1e-9), f"{n_answers} answers for a budget of {BUDGET} at ε={EPS}"
    assert got["spent"] <= BUDGET + 1e-9
    assert len(charges(vault.workspace)) - before == n_answers
    assert got["refusals"], "the budget must end the attack"
    for r in got["refusals"]:
        assert_clean_error(r, 409, match=r"(?i)budget")
    estimate = float(np.mean(got["diffs"]))
    attack_figure(
        f"{len(got['diffs'])} pairs answered, then refused; ε spent {got['spent']:g} of {BUDGET:g}; "
        f"attacker's estimate of the marker's income off by {abs(estimate - marker_income):,.0f} "
        f"(noise sd per pair {np.sqrt(2) * np.sqrt(2) * 200_000 / EPS:,.0f})"
    )


@pytest.mark.system
@pytest.mark.attack("differencing", defence="each query charged; the dataset budget ends the attack (invariant 2)")
def test_differencing_pairs_are_each_charged_until_the_budget_ends(
    attack_vault: Callable[..., Any],
    isolating_population: tuple[Path, float],
    attack_figure: Callable[[str], None],
) -> None:
    population, income = isolating_population
    vault = attack_vault(population, budget={"epsilon_per_dataset": BUDGET, "epsilon_per_query_max": 0.5})
    _check(vault, rounds=int(BUDGET / EPS) + 3, marker_income=income, attack_figure=attack_figure)
