"""The end-to-end demo behind ``make demo``: from a synthetic population to a verified release of a model.

:func:`run_demo` walks the product as its three roles would, and prints each step as it goes:

1. **population**: generate ``<workspace>/population`` (reused when its manifest matches) and show its
   calibration against the published Dutch figures;
2. **vault**: register the tables (``sandbox dataset add-population``) and start, or reuse, the workspace's vault;
3. **model 1**: run study 03 with its defaults through :func:`~sandbox.run_study` (``sandbox run``'s code path).
   The plan: the gate blocks it, and the demo prints the reasons the analyst sees;
4. **variant 2**: the study's documented second variant (the debt-register features, more ε on the audit; see
   the notebook). The plan: the gate passes it to review. Should DP noise or a small population change an outcome,
   the demo says what happened and what it does instead (withdraw an unblocked model 1; try the fallback
   variant when variant 2 is blocked), and stops with a message naming the fix when nothing passed;
5. **review**: two reviewer tokens minted by the demo (``sandbox vault token create``), labelled as demo
   identities, approve through :func:`~sandbox.connect_reviewer`. On a local vault the analyst can mint
   reviewer tokens, so such a release is **not independently reviewed**, and the demo says so;
6. **outbox**: the released folder and its files;
7. **verify**: ``sandbox verify`` over the audit log and the outbox;

and then next steps that work as printed (with the ``sandbox`` executable as it can be called from here).

Only public interfaces are used: ``synthetic``, the ``sandbox`` CLI (in this process), ``sb.connect``,
``sb.run_study``, ``ws.request``, ``ws.result``, ``sb.connect_reviewer`` and ``sb.verify_workspace``.

Modules: :mod:`.plan` (the variants, attempts and result), :mod:`.steps` (one method per step), :mod:`.state`
(``demo.json``), :mod:`.text` (how things are shown) and :mod:`.run` (:func:`run_demo`).

A second demo in the same workspace with the same population reuses everything (the population, the registered
tables, the runs and the requests in ``<workspace>/demo.json``) and spends nothing. A demo with another
population (``HOUSEHOLDS``, seed or scenario) never shows an earlier demo's results: it generates, registers and
runs anew, and says so.
"""

from __future__ import annotations

from .plan import (
    DEMO_REVIEWERS,
    DEMO_STATE,
    NOT_INDEPENDENT,
    STUDY_NOTEBOOK,
    VARIANTS,
    Attempt,
    DemoResult,
    Variant,
    as_dict,
)
from .run import run_demo
from .text import sandbox_command

__all__ = [
    "DemoResult",
    "Attempt",
    "Variant",
    "VARIANTS",
    "run_demo",
    "as_dict",
    "sandbox_command",
    "STUDY_NOTEBOOK",
    "DEMO_STATE",
    "DEMO_REVIEWERS",
    "NOT_INDEPENDENT",
]
