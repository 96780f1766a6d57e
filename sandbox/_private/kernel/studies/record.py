"""Run records: what a study run was, stored so a reviewer can trust and repeat it.

A run lives in ``<workspace>/runs/<run_id>/``:

- ``record.json`` (format ``sandbox.run/1``): run id, parameters, notebook sha256, git commit, package versions,
  status (``running`` / ``succeeded`` / ``failed``), start and end time, the failing cell and its error, and the
  ledger entries (charges and releases) the vault recorded under the run id;
- ``source.ipynb``: the exact notebook that ran (its sha256 is in the record), used by ``sandbox rerun``;
- ``output.ipynb``: the executed notebook after :func:`~sandbox._private.kernel.studies.scrub.scrub_notebook`.

The record is written as soon as the run starts (status ``running``) and rewritten atomically when it ends, so
a run that fails, even before its notebook could be read, is marked failed and never lost.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from sandbox._private.shared.errors import IntegrityError, NotFoundError
from sandbox._private.shared.layout import RUN_RECORD_NAME, WorkspaceLayout

__all__ = [
    "RUN_FORMAT",
    "RUN_ID_ENV",
    "WORKSPACE_ENV",
    "Failure",
    "RunRecord",
    "RunStore",
    "new_run_id",
    "git_commit",
    "package_versions",
    "now_iso",
]

RUN_FORMAT = "sandbox.run/1"
#: Environment variable through which the kernel of a run learns its run id (sent as ``X-Sandbox-Run``).
RUN_ID_ENV = "SANDBOX_RUN_ID"
#: Environment variable naming the workspace of a run (``sb.connect()`` uses it when set).
WORKSPACE_ENV = "SANDBOX_WORKSPACE"
Status = Literal["running", "succeeded", "failed"]
_STATUSES = ("running", "succeeded", "failed")
_RUN_ID = re.compile(r"^run-\d{8}T\d{6}Z-[0-9a-f]{8}$")
_KEY_PACKAGES = (
    "dutch-analysis-sandbox",
    "numpy",
    "pandas",
    "polars",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "diffprivlib",
    "fairlearn",
    "papermill",
    "nbclient",
    "ipykernel",
)
#: Failure kinds, the ``sandbox run`` exit code of each, and what the kind means.
FAILURE_KINDS: dict[str, tuple[int, str]] = {
    "missing_notebook": (2, "the notebook file does not exist or is not a notebook"),
    "no_parameters_cell": (2, "the notebook has no cell tagged 'parameters'"),
    "invalid_parameters": (2, "a parameter is unknown or has the wrong type"),
    "cell_error": (3, "a cell raised an exception"),
    "kernel_died": (4, "the kernel died or could not start"),
    "vault_unavailable": (5, "the vault was not reachable from the notebook"),
    "interrupted": (130, "the run was interrupted"),
}


def new_run_id(now: datetime | None = None) -> str:
    """Return a fresh run id, ``run-<UTC time>-<8 random hex digits>``, sortable by start time."""
    now = now or datetime.now(UTC)
    return f"run-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"


def now_iso() -> str:
    """Return the current UTC time in ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Failure:
    """Why a run failed.

    Parameters
    ----------
    kind : str
        One of :data:`FAILURE_KINDS`.
    message : str
        What happened and what to do, for a person.
    cell_index : int, optional
        Index of the failing cell in the executed notebook.
    source_head : str, optional
        The first lines of the failing cell's source.
    ename, evalue : str, optional
        Exception name and message raised in the cell.
    """

    kind: str
    message: str
    cell_index: int | None = None
    source_head: str | None = None
    ename: str | None = None
    evalue: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAILURE_KINDS:
            raise ValueError(f"Unknown failure kind {self.kind!r}; use one of {sorted(FAILURE_KINDS)}.")

    @property
    def exit_code(self) -> int:
        """The exit code of ``sandbox run`` for this failure."""
        return FAILURE_KINDS[self.kind][0]


@dataclass(frozen=True)
class RunRecord:
    """The record of one study run (see the module docstring for where it is stored)."""

    run_id: str
    notebook: str
    status: Status
    started: str
    parameters: dict[str, Any] = field(default_factory=dict)
    notebook_sha256: str | None = None
    git_commit: str | None = None
    git_dirty: bool | None = None
    python: str = field(default_factory=lambda: sys.version.split()[0])
    packages: dict[str, str] = field(default_factory=dict)
    ended: str | None = None
    failure: Failure | None = None
    rerun_of: str | None = None
    scrubbed_outputs: int = 0
    ledger: tuple[dict[str, Any], ...] = ()
    format: str = RUN_FORMAT

    def __post_init__(self) -> None:
        if not _RUN_ID.match(self.run_id):
            raise ValueError(f"Run id {self.run_id!r} does not look like run-YYYYMMDDTHHMMSSZ-xxxxxxxx.")
        if self.status not in _STATUSES:
            raise ValueError(f"Run status {self.status!r} is not one of {_STATUSES}.")
        if self.status == "failed" and self.failure is None:
            raise ValueError("A failed run record needs a failure.")
        if self.format != RUN_FORMAT:
            raise ValueError(f"Run record format {self.format!r} is not {RUN_FORMAT!r}.")

    def finished(self, failure: Failure | None = None, **changes: Any) -> RunRecord:
        """Return a copy marked succeeded (no failure) or failed, with its end time."""
        status: Status = "failed" if failure else "succeeded"
        return replace(self, status=status, failure=failure, ended=now_iso(), **changes)

    def to_json(self) -> str:
        """Return the record as indented JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Rebuild a record from :meth:`to_json`'s output."""
        values = dict(data)
        if values.get("failure") is not None:
            values["failure"] = Failure(**values["failure"])
        values["ledger"] = tuple(values.get("ledger", ()))
        return cls(**values)


class RunStore:
    """The runs of one workspace, in ``<workspace>/runs/``."""

    def __init__(self, workspace: str | Path) -> None:
        self.workspace = Path(workspace).resolve()
        self.layout = WorkspaceLayout(self.workspace)
        self.root = self.layout.runs

    def run_dir(self, run_id: str) -> Path:
        """Folder of run ``run_id`` (created on demand)."""
        if not _RUN_ID.match(run_id):
            raise NotFoundError(f"{run_id!r} is not a run id (run-YYYYMMDDTHHMMSSZ-xxxxxxxx); see `sandbox runs`.")
        path = self.root / run_id
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def save(self, record: RunRecord) -> Path:
        """Write ``record.json`` atomically; return its path."""
        path = self.layout.run_record(self.run_dir(record.run_id).name)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(record.to_json() + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    def load(self, run_id: str) -> RunRecord:
        """Read the record of ``run_id``; NotFoundError names the runs folder when it is missing."""
        path = self.layout.run_record(run_id)
        if not _RUN_ID.match(run_id) or not path.is_file():
            raise NotFoundError(f"No run {run_id!r} in {self.root}; list the runs with `ls {self.root}`.")
        try:
            return RunRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as exc:
            raise IntegrityError(f"Run record {path} is damaged: {exc}.") from None

    def list(self) -> list[str]:
        """Run ids in this workspace, oldest first."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / RUN_RECORD_NAME).is_file())


def git_commit(path: Path) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git repository holding ``path``, or ``(None, None)`` outside one.

    ``dirty`` says whether ``path`` itself differs from the commit (or is untracked).
    """
    folder = path.parent if path.is_file() else path
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
        if head.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--", path.name],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    return head.stdout.strip(), bool(status.stdout.strip())


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide a study's numbers."""
    out = {}
    for name in _KEY_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
