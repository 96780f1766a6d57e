"""The three-valued verdict of the gate and the fairness audit: pass, review or fail, with its reasons.

One scale for every cell, item, disparity and request: ``fail`` is worse than ``review``, which is worse than
``pass``; a combination takes the worst of its parts (:func:`worst`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, cast

from .errors import FairnessInputError

__all__ = ["Status", "STATUSES", "Verdict", "worst"]

Status = Literal["pass", "review", "fail"]
STATUSES: tuple[Status, ...] = ("pass", "review", "fail")


def worst(statuses: Iterable[str]) -> Status:
    """Return the most severe of ``statuses`` (``fail`` > ``review`` > ``pass``); ``pass`` when there are none."""
    return cast(Status, max(statuses, key=STATUSES.index, default="pass"))


@dataclass(frozen=True)
class Verdict:
    """A status with the reasons behind it; ``str(verdict)`` is the status."""

    status: str
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise FairnessInputError(f"verdict status must be one of {STATUSES}, got {self.status!r}")

    def __str__(self) -> str:
        return self.status

    @property
    def reason(self) -> str:
        """All reasons in one sentence-separated string."""
        return "; ".join(self.reasons)
