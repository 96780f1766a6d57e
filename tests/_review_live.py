"""A live vault for the review-page tests: uvicorn in a thread on 127.0.0.1 and a free port, stopped by its owner.

:func:`live_vault` registers a population in a fresh workspace, serves the vault app and mints tokens;
:meth:`LiveVault.model_request` makes a real DP model (fitted in the vault) with a fairness audit that is built with
:func:`sandbox.fairness.audit_from_counts` from chosen confusion counts, so the audit's verdict (and its
"insufficient evidence" label) is known in advance while every number on the page has the shape of a real one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import uvicorn
from conftest import free_port

from sandbox._private.kernel.release import ReleaseRequest, release
from sandbox._private.kernel.workspace import Workspace
from sandbox._private.vault.http.app import create_app
from sandbox._private.vault.ledger.ledger import ChargeRecord, ComputedAnswer
from sandbox._private.vault.server import open_service
from sandbox.fairness import audit_from_counts

#: Per-group confusion counts (TP, FP, FN, TN): equal rates in large groups (a clear pass) ...
FAIR_COUNTS = {"female": (400, 100, 100, 4400), "male": (410, 98, 102, 4390)}
#: ... and groups too small to show anything (a review from too little data: insufficient evidence).
SMALL_COUNTS = {"female": (6, 2, 3, 49), "male": (9, 1, 2, 48)}


@dataclass
class LiveVault:
    """A served vault: its workspace, URL, service and tokens by name."""

    workspace: Path
    url: str
    service: Any
    tokens: dict[str, str] = field(default_factory=dict)

    def ws(self, name: str = "alice") -> Workspace:
        return Workspace(self.url, self.tokens[name])

    def _mint_audit(self, model: ChargeRecord, counts: dict[str, tuple[int, int, int, int]], key: str) -> ChargeRecord:
        policy = self.service.policy
        rows = [
            {"attribute": "gender", "group": g, "tp": c[0], "fp": c[1], "fn": c[2], "tn": c[3]}
            for g, c in counts.items()
        ]
        audit = audit_from_counts(pd.DataFrame(rows), noise_scale=1.5, policy=policy, n_boot=300, random_state=3)
        public = {**audit.to_dict(), "model_id": model.id, "dataset": model.dataset, "version": model.version,
                  "epsilon": 0.5, "mechanism": "Laplace"}  # fmt: skip
        units = {g: sum(c) for g, c in counts.items()}
        private = {
            "format": "sandbox.audit-private/1",
            "cells": [{"key": ["gender", g], "units": u} for g, u in units.items()],
        }
        dataset = self.service.ledger.dataset(model.dataset, model.version)
        return self.service.ledger.charge(
            dataset, kind="audit", query_key=f"audit-{key}", query={"model_id": model.id, "key": key}, epsilon=0.5,
            delta=0.0, analyst="alice", run_id=None, compute=lambda: ComputedAnswer(public, private, "Laplace"),
        ).record  # fmt: skip

    def model_request(
        self,
        title: str,
        *,
        features: Sequence[str],
        target: str,
        counts: dict[str, tuple[int, int, int, int]],
        table_by: str | None = None,
    ) -> ReleaseRequest:
        """Fit a DP model in the vault, attach an audit of ``counts`` and ask for the release (with a table)."""
        import sandbox as sb

        with self.ws() as ws:
            hh = ws.dataset("households")
            items: list[Any] = []
            if table_by:
                items.append(hh.count(by=[table_by], epsilon=0.2))
            model = hh.fit(sb.ModelSpec("logistic_regression", target=target, features=list(features)), epsilon=1.0)
            record = self.service.ledger.result(model.id)
            audit = self._mint_audit(record, counts, title)
            items += [model, ws.result(audit.id)]
            purpose = "Early warning of payment arrears, so that municipalities can offer help in time."
            return release(ws._t, items, title=title, purpose=purpose, justification="DP model and audit only.")


@contextmanager
def live_vault(workspace: Path, population: Path, names: Sequence[tuple[str, str]]) -> Iterator[LiveVault]:
    """Serve a vault over ``population`` in ``workspace``; yield it with a token per ``(name, role)``."""
    service = open_service(workspace)
    service.registry.add_population(population)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test vault did not start"
        time.sleep(0.05)
    live = LiveVault(workspace, f"http://127.0.0.1:{port}", service, {n: service.tokens.create(n, r) for n, r in names})
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(30)
