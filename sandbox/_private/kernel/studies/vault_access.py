"""The vault a study run talks to: found (or started) before the kernel, and asked to confirm the run's charges.

Before a run whose notebook imports ``sandbox``, :func:`vault_environment` makes sure a vault is answering:

- with ``SANDBOX_VAULT_URL`` set (a deployed vault, its token in ``SANDBOX_TOKEN``), it checks ``/v1/health``;
- otherwise it starts or reuses the workspace's local vault (as ``sb.connect()`` does) and hands its URL and
  token to the kernel, so ``sb.connect()`` in the notebook reaches the same vault wherever the notebook lies.

A vault that does not answer fails the run with kind ``vault_unavailable`` before any kernel starts.

After the run, :func:`confirm_ledger` reads the charges and releases the kernel reported
(:mod:`sandbox._private.kernel.spend`) and asks the vault for each result id, keeping the vault's sha256, epsilon and
run id beside the kernel's report, so the record shows what the vault's ledger holds for the run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox._private.shared.errors import SandboxError
from sandbox._private.shared.layout import RUN_LOG_NAME

from ..transport import Transport, probe_health

__all__ = ["VaultAccess", "vault_environment", "confirm_ledger", "VaultUnavailable", "notebook_uses_sandbox"]

_HEALTH_TIMEOUT_S = 5.0


class VaultUnavailable(Exception):
    """Internal: no vault answers (turned into a recorded failure by the runner)."""


@dataclass(frozen=True)
class VaultAccess:
    """Where the kernel finds the vault."""

    url: str
    token: str | None

    def env(self) -> dict[str, str]:
        """Environment variables for the kernel."""
        return {"SANDBOX_VAULT_URL": self.url, **({"SANDBOX_TOKEN": self.token} if self.token else {})}


def notebook_uses_sandbox(nb: Mapping[str, Any]) -> bool:
    """Whether any code cell imports the ``sandbox`` package."""
    for cell in nb.get("cells", []):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        if cell.get("cell_type") == "code" and ("import sandbox" in source or "from sandbox" in source):
            return True
    return False


def vault_environment(workspace: Path) -> VaultAccess:
    """Find the deployed vault or start the workspace's local one (see the module docstring)."""
    url = os.environ.get("SANDBOX_VAULT_URL")
    if url:
        if not probe_health(url, timeout=_HEALTH_TIMEOUT_S):
            raise VaultUnavailable(
                f"The vault at SANDBOX_VAULT_URL={url} is not running (no answer on /v1/health); start it "
                "(`sandbox vault serve`) or unset SANDBOX_VAULT_URL to use the workspace's local vault."
            )
        return VaultAccess(url, os.environ.get("SANDBOX_TOKEN"))
    from sandbox._private.kernel.launch import ensure_local_vault

    try:
        local_url, token = ensure_local_vault(workspace)
    except (SandboxError, OSError) as exc:
        raise VaultUnavailable(f"The local vault of {workspace} could not start: {exc}") from None
    return VaultAccess(local_url, token)


def _read_log(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / RUN_LOG_NAME
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(dict(json.loads(line)))
        except (ValueError, TypeError):
            entries.append({"type": "unreadable", "line": line[:200]})
    return entries


def _confirm(vault: Transport, entry: dict[str, Any]) -> dict[str, Any]:
    result_id = entry.get("result_id")
    if entry.get("type") != "charge" or not result_id:
        return {**entry, "vault": None}
    try:
        body = vault.get(f"/v1/results/{result_id}")
    except SandboxError as exc:
        return {**entry, "vault": {"error": str(exc)}}
    found = {k: body.get(k) for k in ("sha256", "epsilon", "run_id", "created")}
    found["matches"] = body.get("sha256") == entry.get("sha256")
    return {**entry, "vault": found}


def confirm_ledger(run_dir: Path, access: VaultAccess | None) -> tuple[dict[str, Any], ...]:
    """Return the run's reported charges and releases, each with what the vault holds for it."""
    entries = _read_log(run_dir)
    if access is None or not entries:
        return tuple({**e, "vault": None} for e in entries)
    vault = Transport(access.url, access.token, timeout=30)
    try:
        return tuple(_confirm(vault, e) for e in entries)
    finally:
        vault.close()
