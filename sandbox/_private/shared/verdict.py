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

    def __repr__(self) -> str:
        n = len(self.reasons)
        return f"Verdict({self.status!r}, {n} reason{'' if n == 1 else 's'}; see .reasons)"

    def _repr_html_(self) -> str:
        import html

        colour = {"pass": "#1a7f37", "review": "#9a6700", "fail": "#cf222e"}[self.status]
        items = "".join(f"<li>{html.escape(r)}</li>" for r in self.reasons)
        return (
            f"<p><b style='color:{colour}'>{html.escape(self.status)}</b> "
            f"({len(self.reasons)} reason{'' if len(self.reasons) == 1 else 's'})</p><ul>{items}</ul>"
        )

    @property
    def reason(self) -> str:
        """All reasons in one sentence-separated string."""
        return "; ".join(self.reasons)
