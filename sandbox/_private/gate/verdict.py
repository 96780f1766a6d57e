"""The three-valued verdict the gate gives every cell, item and request: pass, review or fail."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

__all__ = ["Verdict", "VERDICTS", "worst"]

Verdict = Literal["pass", "review", "fail"]
VERDICTS: tuple[Verdict, ...] = ("pass", "review", "fail")
_RANK = {v: i for i, v in enumerate(VERDICTS)}


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """Return the most severe of ``verdicts`` (``fail`` > ``review`` > ``pass``); ``pass`` when there are none."""
    out: Verdict = "pass"
    for v in verdicts:
        if _RANK[v] > _RANK[out]:
            out = v
    return out
