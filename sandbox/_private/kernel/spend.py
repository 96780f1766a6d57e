"""A process-wide record of budget spent, observed by the notebook display and by study runs.

The client calls :func:`record_spend` each time the vault answers one of its queries (with what was charged,
the remaining budget the vault reported and, when known, the result id, its sha256 and whether the answer was
served from the store). The IPython extension (``%load_ext sandbox``) calls :func:`drain` after each cell and
shows what that cell spent and what remains. The gate's client calls :func:`record_release` for each release
request it submits.

Inside a study run (``sandbox run`` sets ``SANDBOX_RUN_ID`` and ``SANDBOX_WORKSPACE``) both calls also append
one JSON line to ``<workspace>/runs/<run_id>/ledger.jsonl``; the runner copies those lines into the run record
and confirms each result id and sha256 with the vault. Nothing here talks to the vault: the vault's ledger is
the only authority on budget; this is only what this kernel was told.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox._private.shared.layout import WorkspaceLayout

__all__ = ["Spend", "record_spend", "record_release", "drain", "peek"]

_RUN_ID = re.compile(r"^run-\d{8}T\d{6}Z-[0-9a-f]{8}$")


@dataclass(frozen=True)
class Spend:
    """One charge reported by the vault.

    Parameters
    ----------
    dataset : str
        The dataset whose budget was charged.
    epsilon : float
        Epsilon charged by this query (0 for an answer served from the store).
    remaining : float
        Epsilon left on the dataset after the charge, as reported by the vault.
    """

    dataset: str
    epsilon: float
    remaining: float

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"Spend needs a dataset name, got {self.dataset!r}.")
        for name in ("epsilon", "remaining"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"Spend.{name} must be a finite number, got {value!r}.")
        if self.epsilon < 0:
            raise ValueError(f"Spend.epsilon must be >= 0, got {self.epsilon}.")


_lock = threading.Lock()
_pending: list[Spend] = []


def _run_log(entry: dict[str, Any]) -> None:
    """Append ``entry`` to the current study run's log, when this kernel runs inside ``sandbox run``."""
    run_id, workspace = os.environ.get("SANDBOX_RUN_ID"), os.environ.get("SANDBOX_WORKSPACE")
    if not run_id or not workspace or not _RUN_ID.match(run_id):
        return
    layout = WorkspaceLayout(Path(workspace))
    if not layout.run_dir(run_id).is_dir():  # a run id set by hand, not by the runner: nothing to append to
        return
    with _lock, layout.run_log(run_id).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")


def record_spend(
    dataset: str,
    epsilon: float,
    remaining: float,
    *,
    result_id: str | None = None,
    sha256: str | None = None,
    reused: bool | None = None,
) -> None:
    """Record that the vault charged ``epsilon`` on ``dataset`` and reported ``remaining`` left.

    Called by the client after every answer (also with 0 for an answer served from the store). ``result_id``,
    ``sha256`` and ``reused`` come from the vault's payload; inside a study run they go to the run record.
    """
    spend = Spend(dataset, float(epsilon), float(remaining))
    with _lock:
        _pending.append(spend)
    _run_log(
        {
            "type": "charge",
            "dataset": dataset,
            "epsilon": spend.epsilon,
            "remaining": spend.remaining,
            "result_id": result_id,
            "sha256": sha256,
            "reused": reused,
        }
    )


def record_release(request_id: str, *, status: str, items: list[str] | None = None) -> None:
    """Record that a release request was submitted (for the run record of a study run).

    Parameters
    ----------
    request_id : str
        The vault's id of the release request.
    status : str
        Its status after submission (``blocked``, ``pending_review``, ...).
    items : list of str, optional
        Result ids it asks to release.
    """
    _run_log({"type": "release", "request_id": request_id, "status": status, "items": list(items or [])})


def drain() -> list[Spend]:
    """Return and forget every spend recorded since the last call, oldest first."""
    with _lock:
        out = list(_pending)
        _pending.clear()
    return out


def peek() -> list[Spend]:
    """Return the pending spends without forgetting them (for tests and debugging)."""
    with _lock:
        return list(_pending)
