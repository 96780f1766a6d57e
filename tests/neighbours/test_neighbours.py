"""The analyst channel (DESIGN invariant 10) on neighbouring datasets D and D' = D + one household, small case.

The harness (:mod:`.harness`) runs the same battery of analyst actions against two real vault processes, one on
D and one on D'. ``make test`` runs the small battery (300 households, 5 bin counts, 30 repetitions);
``make attack`` runs the long one (``tests/attacks/test_neighbours_long.py``: 2000 households, 39 bin counts, 600
repetitions). Each test states what it compares and its acceptance range.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from attacks._attack_stats import epsilon_lower_bound

from .harness import SMALL, Observation, battery, compare, normalise, repeated, start_pair

pytestmark = pytest.mark.system

#: Confidence of the ε lower bounds: a correct mechanism exceeds its ε with probability below 1e-4.
CONFIDENCE = 0.9999


def _both(pair: Any, **kw: Any) -> tuple[list[Observation], list[Observation]]:
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.submit(battery, pair.d, SMALL, **kw), pool.submit(battery, pair.d1, SMALL, **kw)
        return a.result(), b.result()


def _reviewer_findings(vault: Any) -> list[Any]:
    with vault.client("reviewer", "rita") as c:
        listed = c.get("/v1/releases", params={"closed": "true"}).json()
    return [normalise(r["reviewer_findings"]["items"]) for r in listed]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One pair of vaults, three phases: the battery with data-blind noise (and what the reviewers see after it),
    the gate part of the battery with the leaky gate switched on (negative control), the repeated actions with
    real noise."""
    with start_pair(tmp_path_factory.mktemp("neighbours"), SMALL) as pair:
        out: dict[str, Any] = {}
        out["d"], out["d1"] = _both(pair)
        out["findings"] = (_reviewer_findings(pair.d), _reviewer_findings(pair.d1))
        pair.mode(blind=True, leaky_gate=True)
        out["leaky"] = _both(pair, gate_only=True, analyst="lea")
        out["repeated"] = repeated(pair, SMALL)
        return out


def test_everything_the_analyst_sees_is_identical_on_d_and_d_prime(runs: dict[str, Any]) -> None:
    """Status and body of every step, byte for byte after placeholders; model parameters by shape."""
    on_d, on_d1 = runs["d"], runs["d1"]
    differences = compare(on_d, on_d1)
    assert not differences, f"{len(differences)} steps differ; first ones:\n" + "\n".join(map(str, differences[:8]))
    statuses = sorted({o.status for o in on_d})
    assert len(on_d) > 150 and {200, 400, 404, 409, 422, 429} <= set(statuses), (len(on_d), statuses)


def test_the_battery_reaches_the_lone_household(runs: dict[str, Any]) -> None:
    """Power: the reviewers' exact findings tell D from D' (the household is in the cells the battery asked about)."""
    on_d, on_d1 = runs["findings"]
    assert len(on_d) == len(on_d1) > 10
    differ = [i for i, (a, b) in enumerate(zip(on_d, on_d1, strict=True)) if a != b]
    assert len(differ) >= 5, f"only {len(differ)} requests have different exact findings on D and D'"
    assert "rests on 1 households" in json.dumps(on_d1) and "rests on 1 households" not in json.dumps(on_d)


def test_the_analyst_never_gets_the_exact_findings(runs: dict[str, Any]) -> None:
    text = json.dumps([o.body for o in runs["d1"] if o.role == "analyst"])
    assert "reviewer_findings" not in text and "rests on 1 households" not in text


def test_the_daily_cap_refuses_with_its_reset_and_charges_nothing(runs: dict[str, Any]) -> None:
    steps = {o.step: o for o in runs["d1"]}
    refusal = steps["carl: release carl over the cap"]
    assert refusal.status == 429 and refusal.body["error"] == "RequestCapError"
    message = refusal.body["message"]
    assert f"allows {SMALL.cap} per analyst, dataset and day" in message and "resets at" in message
    budget = steps["carl: carl's budget after the refusal"].body
    assert budget["analyst_epsilon_spent"] == pytest.approx(0.2)  # the count only: no DP test, nothing for the cap


def test_a_leaky_gate_is_caught(runs: dict[str, Any]) -> None:
    """Negative control: the gate of before issue 10 (analyst verdicts from the true counts) makes the harness fail."""
    differences = compare(*runs["leaky"])
    assert differences, "the harness did not notice a gate that answers from the true counts"
    assert any(d.step.startswith("lea: release") for d in differences), [str(d) for d in differences[:3]]


def test_repeated_dp_values_are_indistinguishable(runs: dict[str, Any]) -> None:
    """Real noise, 30 repetitions per output on D and on D' (10 for the model): the ε lower bound (threshold test
    chosen on the first half, Clopper-Pearson on the second, 99.99%) of every output stays at or below the ε the
    ledger charged for it."""
    for rep in runs["repeated"]:
        bound = epsilon_lower_bound(rep.on_d, rep.on_d1).at_confidence(CONFIDENCE)
        assert bound <= rep.epsilon, f"{rep.name}: ε ≥ {bound:.3f} at {CONFIDENCE:.2%}, charged {rep.epsilon}"
        assert len(rep.on_d) == len(rep.on_d1) >= SMALL.repeats // 3


def test_normalise_replaces_ids_hashes_times_and_model_parameters() -> None:
    body = {
        "id": "r_" + "a" * 24,
        "created": "2026-12-10T10:00:00.123456+00:00",
        "message": "incident 0123456789abcdef; see req_0123456789abcdef and " + "f" * 64,
        "values": {"estimator": "gaussian_nb", "params": {"theta": [[0.1, 0.2]], "var": [[1.0, 2.0]]}},
    }
    assert normalise(body) == {
        "id": "<result-id>",
        "created": "<created>",
        "message": "incident <id>; see <request-id> and <sha256>",
        "values": {"estimator": "gaussian_nb", "params": {"theta": [["<dp>", "<dp>"]], "var": [["<dp>", "<dp>"]]}},
    }
    a, b = [Observation("x", 200, {"rows": [1, 2]})], [Observation("x", 200, {"rows": [1, 3]})]
    assert [str(d) for d in compare(a, b)] == ["x at [1]/rows[1]: D gives 2, D' gives 3"]
