"""File modes and the health endpoint: nothing of the vault is readable by another account, nor told to a stranger.

The workspace is created 0700; every file the vault writes (ledger and its WAL, journal, tokens, registered rows,
shared tables, discovery file, outbox) is 0600 and every folder 0700, also files registered while a vault runs.
``/v1/health`` says only "up" without a token.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import VaultProcess, register_population

from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.vault.server import open_service


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_a_new_workspace_is_0700(tmp_path: Path) -> None:
    layout = WorkspaceLayout.create(tmp_path / "a" / "ws")
    assert _mode(layout.workspace) == 0o700 and _mode(layout.root) == 0o700 and _mode(layout.data) == 0o700


def test_an_existing_open_workspace_is_closed(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir(mode=0o755)
    ws.chmod(0o755)
    WorkspaceLayout.create(ws)
    assert _mode(ws) == 0o700


def _private_tree(root: Path) -> list[str]:
    """Every path under ``root`` with a mode other than 0600 (files) or 0700 (folders)."""
    wrong = []
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            if _mode(Path(folder, name)) != 0o700:
                wrong.append(f"{Path(folder, name)}: {_mode(Path(folder, name)):o}")
        for name in files:
            if _mode(Path(folder, name)) != 0o600:
                wrong.append(f"{Path(folder, name)}: {_mode(Path(folder, name)):o}")
    return wrong


@pytest.mark.system
def test_every_vault_file_is_0600(
    vault_factory: Callable[..., VaultProcess], small_population: Path, tmp_path: Path
) -> None:
    v = vault_factory()
    register_population(v.workspace, small_population)
    v.start()
    try:
        with v.client() as c:
            seed = c.post(
                "/v1/query", json={"dataset": "households", "kind": "count", "by": ["urbanisation"], "epsilon": 1}
            )
            fit = {"estimator": "gaussian_nb", "target": "arrears", "features": ["income", "urbanisation"]}
            assert c.post("/v1/fit", json={"dataset": "households", "spec": fit, "epsilon": 1.0}).is_success
            item = {k: seed.json()[k] for k in ("id", "sha256", "values")}
            assert c.post("/v1/releases", json={"items": [item], "title": "t", "purpose": "p"}).is_success
        # a table registered while the vault runs (as `sandbox dataset add` would)
        schema = small_population / "schema" / "households.json"
        open_service(v.workspace).registry.add("households", small_population / "households.parquet", schema)
        vault = v.layout.root
        for must in ("ledger.sqlite", "tokens.json", "client_token", "vault.json", "audit.jsonl"):
            assert (vault / must).is_file(), must
        assert list((vault / "data" / "households" / "2").iterdir())
        assert _private_tree(vault) == []
        assert _mode(v.workspace) == 0o700
    finally:
        v.stop()
    assert _private_tree(vault) == []


@pytest.mark.system
def test_health_says_only_up_without_a_token(population_vault: VaultProcess) -> None:
    import httpx

    with httpx.Client(base_url=population_vault.url) as anon:
        assert anon.get("/v1/health").json() == {"status": "up"}
        bad = anon.get("/v1/health", headers={"Authorization": "Bearer sbx_" + "Q" * 43})
    assert bad.status_code == 401
    with population_vault.client() as c:
        full = c.get("/v1/health").json()
    assert full["status"] == "ok" and full["policy_sha256"] and isinstance(full["pid"], int)
    assert set(full["workers"]) == {"query", "fit"} and "worker_pids" not in full  # pids for admins only
