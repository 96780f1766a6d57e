"""What an audit can and cannot show: power per decisive gap, and the "insufficient evidence" label.

:func:`audit_evidence` reads the decisive gaps between groups of an audit's ``disparities`` table. The audit's
evidence is **insufficient** when its verdict is ``review`` and every decisive review comes only from too little
data (the rule is in :mod:`.verdict`): such an audit cannot show that the model is fair, however mild its gaps
look, and a reviewer must not read the review as a pass. :meth:`Evidence.to_dict` is the ``evidence`` block of the
audit's dict form, for the review page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .power import POWER
from .verdict import INSUFFICIENT

__all__ = ["Evidence", "DetectableGap", "audit_evidence"]


@dataclass(frozen=True)
class DetectableGap:
    """The smallest gap of one decisive disparity that the audit detects with 80% power, against its threshold."""

    attribute: str
    metric: str
    detectable_gap: float  # NaN: no gap within the rate's range would be detected
    fail_threshold: float
    verdict: str
    insufficient: bool

    @property
    def detects_threshold(self) -> bool:
        """Whether a gap of the fail threshold's size would be detected with 80% power."""
        return not math.isnan(self.detectable_gap) and self.detectable_gap <= self.fail_threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON form (NaN as ``None``)."""
        return {
            "attribute": self.attribute,
            "metric": self.metric,
            "detectable_gap": None if math.isnan(self.detectable_gap) else self.detectable_gap,
            "fail_threshold": None if math.isnan(self.fail_threshold) else self.fail_threshold,
            "detects_fail_threshold": self.detects_threshold,
            "verdict": self.verdict,
            "insufficient_evidence": self.insufficient,
        }


@dataclass(frozen=True)
class Evidence:
    """Whether the audit's data can show the model fair, and the power of each decisive gap."""

    insufficient: bool
    gaps: tuple[DetectableGap, ...]
    power: float = POWER

    @property
    def label(self) -> dict[str, str] | None:
        """The "insufficient evidence" label in English and Dutch, or ``None`` when the evidence suffices."""
        return dict(INSUFFICIENT) if self.insufficient else None

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attributes and intersections whose decisive gap is a review from too little data."""
        return tuple(dict.fromkeys(g.attribute for g in self.gaps if g.insufficient))

    @property
    def undetectable(self) -> tuple[DetectableGap, ...]:
        """Decisive gaps for which a gap of the fail threshold's size would NOT be detected with 80% power."""
        return tuple(g for g in self.gaps if not g.detects_threshold)

    def to_dict(self) -> dict[str, Any]:
        """Return the ``evidence`` block of the audit dict (read it before approving)."""
        return {
            "insufficient": self.insufficient,
            "label": self.label,
            "attributes": list(self.attributes),
            "power": self.power,
            "detectable_gaps": [g.to_dict() for g in self.gaps],
            "explanation": (
                "detectable_gap is the smallest gap by which one group can differ from the others and still be "
                f"detected by this audit (a simultaneous interval excluding 0) with {self.power:.0%} probability; "
                "where it exceeds the fail threshold, the audit could have missed a gap of the threshold's size"
            ),
        }


def audit_evidence(disparities: pd.DataFrame, status: str) -> Evidence:
    """Collect the evidence of an audit from its ``disparities`` table and overall verdict ``status``."""
    d = disparities
    if "evidence" not in d.columns:  # an audit dict written before power was reported
        return Evidence(False, ())
    rows = d[d["decisive"].astype(bool) & (d["reference"] == "between_groups")]
    gaps = tuple(
        DetectableGap(
            attribute=str(r["attribute"]),
            metric=str(r["metric"]),
            detectable_gap=float(r["detectable_gap"]),
            fail_threshold=float(r["fail_threshold"]),
            verdict=str(r["verdict"]),
            insufficient=str(r["evidence"]) == "insufficient",
        )
        for _, r in rows.iterrows()
    )
    reviews = [g for g in gaps if g.verdict == "review"]
    insufficient = status == "review" and bool(reviews) and all(g.insufficient for g in reviews)
    return Evidence(insufficient, gaps)
