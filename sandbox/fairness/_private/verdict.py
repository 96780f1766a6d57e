"""From a disparity, its interval and the policy's thresholds to pass / review / fail, with the reason.

The rule (it is printed in every report, section "significance"). The interval of a gap is simultaneous over every
gap between groups of the same metric in the audit (see :mod:`.simultaneous`), so "significant" below is a test
whose false-alarm rate, when all groups are equal, is at most ``1 - confidence_level`` for the whole audit:

* **fail** — the gap exceeds the fail threshold *and* its interval excludes 0 (the groups really differ);
* **pass** — the gap is at most the review threshold and its interval stays at or below the fail threshold, with
  every group large enough and every rate defined;
* **review** — otherwise: the gap exceeds the fail threshold but its interval includes 0 (not significant); or the
  gap exceeds the review threshold; or the gap is within the review threshold but its interval reaches beyond the
  fail threshold; or a group is too small, suppressed, or has an undefined rate.

A review that comes only from too little data is labelled **insufficient evidence: this audit cannot show the
model is fair**: its interval reaches from within the review threshold to beyond the fail threshold (the data fit
a fair and an unfair model alike), or the gap would pass but a group is too small, suppressed or undefined, or no
gap is computable. A review because the gap itself lies above the review threshold is not.

The overall verdict is the worst verdict of the disparities that the policy's fairness definition makes
decisive; the other disparities are reported with their own verdict but do not decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sandbox._private.shared.policy import MetricThreshold
from sandbox._private.shared.verdict import STATUSES, Verdict, worst

__all__ = ["STATUSES", "Verdict", "Judgement", "judge", "worst", "SIGNIFICANCE_RULE", "INSUFFICIENT"]

#: The label of a review that comes only from too little data, in the report's languages.
INSUFFICIENT = {
    "en": "insufficient evidence: this audit cannot show the model is fair",
    "nl": "onvoldoende bewijs: deze audit kan niet aantonen dat het model eerlijk is",
}
SIGNIFICANCE_RULE = (__doc__ or "").split("The rule", 1)[-1]


@dataclass(frozen=True)
class Judgement:
    """The verdict on one disparity and whether a review comes only from too little data."""

    verdict: Verdict
    insufficient_evidence: bool


def judge(
    label: str,
    difference: float,
    low: float,
    high: float,
    threshold: MetricThreshold | None,
    issues: Sequence[str],
    detectable: float = float("nan"),
) -> Judgement:
    """Verdict on one disparity (``label`` names it in the reason), following the rule in this module's docstring.

    ``detectable`` is the smallest gap the audit detects with 80% power; it is stated in the reason.
    """
    if difference != difference:  # NaN: fewer than two usable groups
        return Judgement(Verdict("review", (f"{label}: not computable", *issues, INSUFFICIENT["en"])), True)
    if threshold is None:
        why = f"{label}: the policy sets no threshold for it; add one under fairness.thresholds"
        return Judgement(Verdict("review", (why,)), False)
    d, r, f = difference, threshold.review, threshold.fail
    ci = f"{label} {d:.3f} (interval {low:.3f} to {high:.3f})"
    if d > f and low > 0:
        status, why = "fail", f"{ci} exceeds the fail threshold {f:g} and its interval excludes 0"
    elif d > f:
        status, why = "review", f"{ci} exceeds the fail threshold {f:g}, but its interval includes 0 (not significant)"
    elif d > r:
        status, why = "review", f"{ci} exceeds the review threshold {r:g}"
    elif high > f:
        status, why = "review", f"{ci} is within {r:g}, but its interval reaches beyond the fail threshold {f:g}"
    else:
        status, why = "pass", f"{ci} is within the review threshold {r:g}"
    would_pass = status == "pass"
    if issues and would_pass:
        status = "review"
    insufficient = status == "review" and (would_pass or (low <= r and high > f))
    reasons = [why, *issues]
    if detectable == detectable:
        reasons.append(f"a gap of {detectable:.3f} would be detected with 80% power (fail threshold {f:g})")
    else:
        reasons.append(f"no gap within the rate's range would be detected with 80% power (fail threshold {f:g})")
    if insufficient:
        reasons.append(INSUFFICIENT["en"])
    return Judgement(Verdict(status, tuple(reasons)), insufficient)
