"""Every path in a workspace, in one place, and the discovery file ``vault.json``.

::

    <workspace>/
        vault/                      the vault's files (mode 0700; in a deployment owned by the vault's OS user)
            data/<dataset>/<version>/   copied Parquet/CSV files + schema.json
            ledger.sqlite               the ledger (unless a PostgreSQL URL is given)
            config.json                 the remembered ``--ledger-url`` (mode 0600)
            tokens.json                 sha256 of each token with its role and name (mode 0600)
            client_token                the local analyst's own token, written by the vault (mode 0600)
            audit.jsonl, audit.head     the hash-chained journal and its head anchor
            vault.json                  url, pid and port of the running vault (written once it listens)
            vault.log                   server log of a vault started by ``sb.connect()``
            launch.lock                 serialises starting a local vault
        outbox/<release_id>/        released files and their manifest
        runs/<run_id>/              study runs: record.json, ledger.jsonl, source.ipynb, output.ipynb
        reports/                    fairness reports written for the author
        review_reports/             fairness reports written by reviewers (notebook 04)
        lab/                        JupyterLab's settings and IPython profile for ``sandbox lab``
        notebooks/                  working copies of the shipped notebooks that ``sandbox lab`` serves
        population/                 a generated synthetic population (``make demo``)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OutputPathError
from .files import pid_alive

__all__ = ["WorkspaceLayout", "RUN_LOG_NAME", "RUN_RECORD_NAME"]

#: Name of a study run's log of charges and releases, in ``runs/<run_id>/``.
RUN_LOG_NAME = "ledger.jsonl"
#: Name of a study run's record, in ``runs/<run_id>/``.
RUN_RECORD_NAME = "record.json"


@dataclass(frozen=True)
class WorkspaceLayout:
    """Paths of one workspace.

    Parameters
    ----------
    workspace : Path
        The workspace directory (:meth:`create` makes its vault folder).
    """

    workspace: Path

    @classmethod
    def create(cls, workspace: str | Path) -> WorkspaceLayout:
        """Resolve ``workspace`` and create its vault folder (mode 0700)."""
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

    # -- the vault's folder -------------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The vault's folder, ``<workspace>/vault``."""
        return self.workspace / "vault"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens.json"

    @property
    def client_token(self) -> Path:
        return self.root / "client_token"

    @property
    def journal(self) -> Path:
        """The hash-chained journal (one JSON entry per line)."""
        return self.root / "audit.jsonl"

    @property
    def journal_head(self) -> Path:
        """The file anchor of the journal's head (used when the ledger database holds none)."""
        return self.root / "audit.head"

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

    # -- the rest of the workspace ------------------------------------------------------------------------------
    @property
    def outbox(self) -> Path:
        return self.workspace / "outbox"

    @property
    def runs(self) -> Path:
        return self.workspace / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    def run_record(self, run_id: str) -> Path:
        return self.run_dir(run_id) / RUN_RECORD_NAME

    def run_log(self, run_id: str) -> Path:
        return self.run_dir(run_id) / RUN_LOG_NAME

    @property
    def reports(self) -> Path:
        return self.workspace / "reports"

    @property
    def review_reports(self) -> Path:
        return self.workspace / "review_reports"

    @property
    def lab(self) -> Path:
        return self.workspace / "lab"

    @property
    def notebooks(self) -> Path:
        """The analyst's working copies of the shipped notebooks, which ``sandbox lab`` serves."""
        return self.workspace / "notebooks"

    @property
    def population(self) -> Path:
        return self.workspace / "population"

    def read_discovery(self) -> dict[str, Any] | None:
        """``vault.json`` if it exists and names a live process, else ``None``."""
        try:
            info = json.loads(self.discovery.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(info, dict) or not isinstance(info.get("pid"), int) or not pid_alive(info["pid"]):
            return None
        return info
