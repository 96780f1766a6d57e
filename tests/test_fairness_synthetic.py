"""The generator's bias scenarios: label bias in the default scenario is flagged, the no-bias control passes.

The registered label (``registered_problematic_debt``) is audited as a "prediction" of the latent truth
(``true_problematic_debt``): in the default scenario registration is more likely for households with a migration
background outside Europe (label bias), which is a gap in error rates the audit must find. The control needs enough
households for its simultaneous intervals to stay below the fail threshold: 60,000 do, 30,000 do not (and say so);
the biased population fails at 30,000.
"""

from __future__ import annotations

import pandas as pd
import pytest

import synthetic
from sandbox import Policy
from sandbox.fairness import audit_predictions, proxy_check

pytestmark = pytest.mark.slow  # populations of 30,000 and 60,000 households (~10 s)

ATTRS = ["migration_background", "gender"]
POLICY = Policy.from_mapping({"fairness": {"protected_attributes": ATTRS, "intersections": []}})


def _households(scenario: str, n: int) -> pd.DataFrame:
    pop = synthetic.generate_population(n, seed=3, scenario=scenario)
    return pop.households.merge(pop.ground_truth, on="household_id", validate="one_to_one")


def _audit_labels(hh: pd.DataFrame):
    """The registered label audited as a prediction of the latent truth."""
    truth, registered = hh["true_problematic_debt"], hh["registered_problematic_debt"]
    return audit_predictions(truth, registered, hh[ATTRS], policy=POLICY, n_boot=500, random_state=0)


@pytest.fixture(scope="module", params=["default", "no_bias"])
def audited(request: pytest.FixtureRequest):
    hh = _households(request.param, 30_000 if request.param == "default" else 60_000)
    audit = _audit_labels(hh)
    proxies = proxy_check(
        hh[["neighbourhood_deprivation", "language_proficiency", "n_adults"]], hh[ATTRS], policy=POLICY
    )
    return request.param, audit, proxies


def test_label_bias_is_flagged_and_control_passes(audited) -> None:
    scenario, audit, _ = audited
    d = audit.disparities.set_index(["attribute", "metric", "reference"])
    eo = d.loc[("migration_background", "equalized_odds", "between_groups")]
    if scenario == "default":
        assert audit.verdict.status == "fail"
        assert eo["verdict"] == "fail" and eo["difference_low"] > 0
        assert {eo["group_a"], eo["group_b"]} >= {"buiten_europa"}
    else:
        assert audit.verdict.status == "pass", audit.verdict.reason
        assert eo["difference_high"] < POLICY.fairness.thresholds["equalized_odds_difference"].fail


def test_a_control_too_small_to_show_fairness_is_insufficient_evidence_not_pass() -> None:
    audit = _audit_labels(_households("no_bias", 30_000))
    eo = audit.disparities.set_index(["attribute", "metric", "reference"]).loc[
        ("migration_background", "equalized_odds", "between_groups")
    ]
    fail = POLICY.fairness.thresholds["equalized_odds_difference"].fail
    # the gap is small, but the interval and the power cannot rule out a gap of the fail threshold's size
    assert eo["difference"] < 0.05 and eo["difference_high"] > fail and eo["detectable_gap"] > fail
    assert audit.verdict.status == "review" and audit.evidence.insufficient
    assert "insufficient evidence: this audit cannot show the model is fair" in audit.verdict.reason
    assert audit.to_dict()["evidence"]["attributes"] == ["migration_background"]


def test_proxies_of_migration_background_are_flagged_only_with_bias(audited) -> None:
    scenario, _, proxies = audited
    flagged = set(proxies.flagged)
    if scenario == "default":
        assert ("neighbourhood_deprivation", "migration_background") in flagged or (
            "language_proficiency",
            "migration_background",
        ) in flagged
    else:
        assert not {f for f in flagged if f[1] == "migration_background"}
    assert not {f for f in flagged if f[0] == "n_adults"}
