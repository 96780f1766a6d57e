"""From a disparity, its interval and the policy's thresholds to pass / review / fail, with the reason.

The rule (it is printed in every report, section "significance"):

* **fail** — the gap exceeds the fail threshold *and* its interval excludes 0 (the groups really differ);
* **review** — the gap exceeds the fail threshold but its interval includes 0 (not significant: a reviewer
  judges, more data may settle it); or the gap exceeds the review threshold; or the gap is below the review
  threshold but its interval reaches beyond the fail threshold (inconclusive: the data cannot show the model is
  fair); or a group is too small, suppressed, or has an undefined rate (the verdict cannot rest on all groups);
* **pass** — the gap is at most the review threshold and its interval stays below the fail threshold, with every
  group large enough and every rate defined.

The overall verdict is the worst verdict of the disparities that the policy's fairness definition makes
decisive; the other disparities are reported with their own verdict but do not decide.
"""

from __future__ import annotations

from collections.abc import Sequence

from sandbox._private.shared.policy import MetricThreshold
from sandbox._private.shared.verdict import STATUSES, Verdict, worst

__all__ = ["STATUSES", "Verdict", "judge", "worst", "SIGNIFICANCE_RULE"]

SIGNIFICANCE_RULE = (__doc__ or "").split("The rule", 1)[-1]


def judge(
    label: str, difference: float, low: float, high: float, threshold: MetricThreshold | None, issues: Sequence[str]
) -> Verdict:
    """Verdict on one disparity (``label`` names it in the reason), following the rule in this module's docstring."""
    if difference != difference:  # NaN: fewer than two usable groups
        return Verdict("review", (f"{label}: not computable", *issues))
    if threshold is None:
        return Verdict("review", (f"{label}: the policy sets no threshold for it; add one under fairness.thresholds",))
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
    if issues and status == "pass":
        status = "review"
    return Verdict(status, (why, *issues))
