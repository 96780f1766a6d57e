"""The IPython extension behind ``%load_ext sandbox``: show the remaining budget after a cell that spent some.

Loading it also registers the marked rich displays of :mod:`~sandbox._private.kernel.studies.display` (results,
schemas, dummy frames).

The client reports every charge the vault made with :func:`sandbox._private.kernel.spend.record_spend`; after each
cell this extension drains those reports and, when the cell spent budget, displays one line per dataset: what
the cell spent and what the vault says remains. The display carries the
:data:`~sandbox._private.kernel.mime.SANDBOX_BUDGET_MIME` marker, so it survives scrubbing and saving.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sandbox._private.kernel.mime import SANDBOX_BUDGET_MIME
from sandbox._private.kernel.spend import Spend, drain

from .display import register_formatters, unregister_formatters

__all__ = ["BudgetDisplay", "load_ipython_extension", "unload_ipython_extension", "summarise"]

_CALLBACK_ATTR = "_sandbox_budget_callback"


@dataclass(frozen=True)
class DatasetSpend:
    """What one cell spent on one dataset, and what the vault said remained after its last charge."""

    dataset: str
    epsilon: float
    remaining: float
    queries: int


def summarise(spends: Sequence[Spend]) -> list[DatasetSpend]:
    """Sum the spends of one cell per dataset (in order of first use); the last ``remaining`` wins."""
    out: dict[str, DatasetSpend] = {}
    for s in spends:
        prev = out.get(s.dataset)
        eps = (prev.epsilon if prev else 0.0) + s.epsilon
        out[s.dataset] = DatasetSpend(s.dataset, eps, s.remaining, (prev.queries if prev else 0) + 1)
    return list(out.values())


@dataclass(frozen=True)
class BudgetDisplay:
    """The budget line shown after a cell that spent budget (rich HTML, plain text and a marker)."""

    rows: tuple[DatasetSpend, ...]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        payload = {
            "datasets": [
                {"dataset": r.dataset, "spent": r.epsilon, "remaining": r.remaining, "queries": r.queries}
                for r in self.rows
            ]
        }
        text = "\n".join(
            f"privacy budget: {r.dataset}: spent ε={r.epsilon:.3g} in this cell, ε={r.remaining:.3g} remaining"
            for r in self.rows
        )
        items = "".join(
            f"<li><b>{html.escape(r.dataset)}</b>: spent ε = {r.epsilon:.3g} in this cell "
            f"({r.queries} {'query' if r.queries == 1 else 'queries'}); "
            f"<span class='sandbox-budget-remaining'>ε = {r.remaining:.3g} remaining</span></li>"
            for r in self.rows
        )
        style = "border-left:4px solid #1f6feb;padding:2px 8px;margin:4px 0;font-size:90%;"
        body = f"<div class='sandbox-budget' style='{style}'>Privacy budget<ul style='margin:0'>{items}</ul></div>"
        return {SANDBOX_BUDGET_MIME: payload, "text/html": body, "text/plain": text}


def _after_cell(result: Any = None) -> None:
    rows = [r for r in summarise(drain()) if r.epsilon > 0]
    if rows:
        from IPython.display import display

        display(BudgetDisplay(tuple(rows)))


def load_ipython_extension(ipython: Any) -> None:
    """Register the budget display with an IPython shell (``%load_ext sandbox``); loading twice is harmless."""
    if getattr(ipython, _CALLBACK_ATTR, None) is not None:
        return
    drain()  # spends from before the extension was loaded belong to no displayed cell
    register_formatters(ipython)
    ipython.events.register("post_run_cell", _after_cell)
    setattr(ipython, _CALLBACK_ATTR, _after_cell)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the budget display (``%unload_ext sandbox``)."""
    callback = getattr(ipython, _CALLBACK_ATTR, None)
    if callback is not None:
        ipython.events.unregister("post_run_cell", callback)
        unregister_formatters(ipython)
        setattr(ipython, _CALLBACK_ATTR, None)
