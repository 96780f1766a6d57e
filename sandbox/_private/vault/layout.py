"""Where a vault keeps its files inside a workspace, and the discovery file ``vault.json``.

::

    <workspace>/vault/
        data/<dataset>/<version>/   copied Parquet/CSV files + schema.json
        ledger.sqlite               the ledger (unless a PostgreSQL URL is given)
        tokens.json                 sha256 of each token with its role and name (mode 0600)
        client_token                the local analyst's own token for ``sb.connect()`` (mode 0600)
        vault.json                  url, pid and port of the running vault (written once it listens)
        vault.log                   server log of a vault started by ``sb.connect()``
        launch.lock                 serialises starting a local vault
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputPathError

__all__ = ["VaultLayout", "write_private", "pid_alive"]


def write_private(path: Path, text: str) -> None:
    """Write ``text`` atomically to ``path`` with mode 0600 (readable by the owner only)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (zombies of our own children count as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


@dataclass(frozen=True)
class VaultLayout:
    """Paths of one workspace's vault files.

    Parameters
    ----------
    workspace : Path
        The workspace directory (created on demand).
    """

    workspace: Path

    @classmethod
    def create(cls, workspace: str | Path) -> VaultLayout:
        layout = cls(Path(workspace).resolve())
        try:
            layout.data.mkdir(parents=True, exist_ok=True)
            os.chmod(layout.root, 0o700)
        except OSError as exc:
            raise OutputPathError(
                f"Cannot create the vault directory {str(layout.root)!r}: {exc.strerror}. "
                "Choose a writable --workspace."
            ) from None
        return layout

    @property
    def root(self) -> Path:
        return self.workspace / "vault"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens.json"

    @property
    def client_token(self) -> Path:
        return self.root / "client_token"

    @property
    def discovery(self) -> Path:
        return self.root / "vault.json"

    @property
    def log(self) -> Path:
        return self.root / "vault.log"

    @property
    def launch_lock(self) -> Path:
        return self.root / "launch.lock"

    def dataset_dir(self, name: str, version: int) -> Path:
        return self.data / name / str(version)

    def read_discovery(self) -> dict[str, Any] | None:
        """``vault.json`` if it exists and names a live process, else ``None``."""
        try:
            info = json.loads(self.discovery.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict) or not isinstance(info.get("pid"), int) or not pid_alive(info["pid"]):
            return None
        return info
