"""SIGKILL a real vault process at random moments during many releases over HTTP.

Each cycle releases a few tables normally, then sends one more approval (which writes the release) and kills the
vault while it may be in the middle of it. After a restart the gate's recovery runs on first use; then
`sandbox verify` passes and every request is either released with its complete outbox folder, or not released
and without a folder (an approved one is then released by a reviewer's retry).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import VaultProcess, register_population

from sandbox.cli import main

pytestmark = [pytest.mark.system, pytest.mark.slow]

# Each kill costs a vault start-up (10-30 s on a shared 2-core machine), so `make test` runs 30 releases;
# SANDBOX_CRASH_RELEASES=200 runs the full case of the issue (measured: passed in 289-460 s, depending on load).
RELEASES = int(os.environ.get("SANDBOX_CRASH_RELEASES", "30"))


def release_one(analyst: httpx.Client, i: int) -> str:
    # ε 0.5: noisy counts of ~400 households per type, so the gate (which judges the noisy counts) passes them
    query = {"dataset": "households", "kind": "count", "by": ["household_type"], "epsilon": 0.5 + i * 1e-6}
    result = analyst.post("/v1/query", json=query).json()
    body = {"items": [{"id": result["id"], "sha256": result["sha256"]}], "title": f"Tabel {i}", "purpose": "test"}
    req = analyst.post("/v1/releases", json=body).json()
    assert req["status"] == "pending_review", req
    return str(req["id"])


def approve(reviewer: httpx.Client, request_id: str) -> Any:
    try:
        why = f"Read {request_id}: the table answers its purpose; no SDC findings."  # a comment of substance
        return reviewer.post(f"/v1/releases/{request_id}/actions", json={"action": "approve", "comment": why}).json()
    except httpx.HTTPError:
        return None  # the vault was killed mid-request


def test_sigkill_vault_during_releases(tmp_path: Path, small_population: Path) -> None:
    workspace = tmp_path / "ws"
    policy = tmp_path / "policy.yaml"  # budget and daily cap for the RELEASES requests of one analyst
    policy.write_text("version: 1\nbudget: {epsilon_per_dataset: 1000.0}\ngate: {max_requests_per_day: 10000}\n")
    register_population(workspace, small_population, policy=policy)
    vault = VaultProcess(workspace, policy=policy)
    rng = random.Random(5)
    requests: list[str] = []
    kills = 0
    try:
        while len(requests) < RELEASES:
            vault.start()
            with vault.client("analyst", "alice") as analyst, vault.client("reviewer", "bob") as reviewer:
                reviewer.get("/v1/releases").raise_for_status()  # first use: the gate recovers
                assert main(["verify", "--workspace", str(workspace)]) == 0
                for _ in range(rng.randint(2, max(7, RELEASES // 17))):
                    rid = release_one(analyst, len(requests))
                    requests.append(rid)
                    assert approve(reviewer, rid)["status"] == "released"
                rid = release_one(analyst, len(requests))
                requests.append(rid)
                pending = threading.Thread(target=approve, args=(reviewer, rid))
                pending.start()
                time.sleep(rng.uniform(0.0, 0.3))
                vault.kill()
                kills += 1
                pending.join(30)
        vault.start()
        with vault.client("reviewer", "bob") as reviewer:
            states = {r["id"]: r["state"] for r in reviewer.get("/v1/releases?closed=true").json()}
            for rid, state in states.items():
                if state == "approved":  # the kill came before the outbox write: retry the release
                    reviewer.post(f"/v1/releases/{rid}/release").raise_for_status()
            states = {r["id"]: r["state"] for r in reviewer.get("/v1/releases?closed=true").json()}
    finally:
        vault.stop()
    assert main(["verify", "--workspace", str(workspace)]) == 0
    outbox = workspace / "outbox"
    folders = {p.name for p in outbox.iterdir()}
    assert set(states) == set(requests) and kills >= 3
    for rid in requests:
        complete = f"rel-{rid}" in folders
        assert (states[rid] == "released") == complete, (rid, states[rid])
        assert states[rid] in ("released", "submitted"), states[rid]
        if complete:
            manifest = json.loads((outbox / f"rel-{rid}" / "manifest.json").read_text())
            assert manifest["request_id"] == rid
    assert sum(s == "released" for s in states.values()) >= len(requests) - kills
