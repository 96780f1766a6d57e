"""The end-to-end demo behind ``make demo``: population, vault, study 03, release request, fairness report.

:func:`run_demo` goes through the product the way an analyst and an operator would:

1. generate the synthetic population into ``<workspace>/population`` (reused when its manifest matches);
2. register its tables in the workspace's vault (skipped when the latest registered version has the same
   sha256, so a second demo spends from the same budget and reuses every stored answer);
3. start the workspace's local vault, or reuse the one already running;
4. run study 03 through :func:`~sandbox._private.kernel.studies.runner.run_study` (the code path of ``sandbox run``),
   which fits the DP model, audits it for fairness in the vault and submits the release request;
5. fetch the request and write the fairness audit's HTML report to ``<workspace>/reports/`` (the outbox only
   receives it once reviewers approve the release).

The demo is idempotent: ``<workspace>/demo.json`` remembers the run and its request, and a second demo whose
request is still open (or released) reuses both instead of asking the gate to release the same results twice,
which the gate refuses by design.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .shared.canonical import sha256_file
from .shared.errors import SandboxError, StudyRunError
from .shared.files import write_private
from .shared.layout import WorkspaceLayout
from .vault.registry import POPULATION_TABLES

__all__ = ["DemoResult", "run_demo", "as_dict", "STUDY_NOTEBOOK", "DEMO_STATE"]

#: The study the demo runs (relative to the repository root).
STUDY_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "03_study_early_warning_model.ipynb"
#: Where the demo remembers its last run and request, inside the workspace.
DEMO_STATE = "demo.json"
_CLOSED = frozenset({"rejected", "withdrawn"})
_DEPLOYED_VAULT_ENV = ("SANDBOX_VAULT_URL", "SANDBOX_TOKEN")


@dataclass(frozen=True)
class DemoResult:
    """What one demo did and where its outputs are.

    Parameters
    ----------
    workspace, population : Path
        The workspace and its generated population.
    population_reused : bool
        The population on disk matched the requested one and was not generated again.
    registered : tuple of str
        Tables registered by this demo (empty when the vault already held the same files).
    vault_url : str
        Where the vault listened during the demo.
    vault_started : bool
        This demo started the vault (rather than reusing a running one).
    run_id : str
        The study run (``<workspace>/runs/<run_id>/record.json``).
    run_reused : bool
        The run and its request come from an earlier demo.
    release_id, release_status : str
        The release request and its status (``pending_review``, ``blocked``, ...).
    reasons : tuple of str
        The gate's reasons, when it gave any.
    fairness_report : Path
        The HTML fairness report of the request's audit.
    """

    workspace: Path
    population: Path
    population_reused: bool
    registered: tuple[str, ...]
    vault_url: str
    vault_started: bool
    run_id: str
    run_reused: bool
    release_id: str
    release_status: str
    reasons: tuple[str, ...]
    fairness_report: Path

    def __post_init__(self) -> None:
        if not self.release_id.startswith("req_"):
            raise ValueError(f"DemoResult.release_id must be a request id (req_...), got {self.release_id!r}.")

    @property
    def run_record(self) -> Path:
        """Return the path of the run record."""
        return WorkspaceLayout(self.workspace).run_record(self.run_id)


def ensure_population(
    workspace: Path, households: int, *, seed: int, scenario: str, progress: bool = True
) -> tuple[Path, bool]:
    """Generate ``<workspace>/population`` unless its manifest already matches; return ``(path, reused)``."""
    import synthetic

    target = WorkspaceLayout(workspace).population
    if synthetic.population_is_current(target, households, seed=seed, scenario=scenario):
        return target, True
    synthetic.write_population(target, households, seed=seed, scenario=scenario, progress=progress)
    return target, False


def register_population(workspace: Path, population: Path) -> tuple[str, ...]:
    """Register each population table whose files differ from the latest registered version; return their names."""
    from .vault.server import open_service

    service = open_service(workspace)
    latest = {d.name: d.files_sha256 for d in service.ledger.datasets()}
    added = []
    for table in POPULATION_TABLES:
        data = population / f"{table}.parquet"
        if latest.get(table) == sha256_file(data):
            continue
        service.registry.add(table, data, population / "schema" / f"{table}.json")
        added.append(table)
    return tuple(added)


def _load_state(workspace: Path) -> dict[str, Any]:
    try:
        state = json.loads((workspace / DEMO_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _run_ledger(run_dir: Path) -> list[dict[str, Any]]:
    record = json.loads((run_dir / "record.json").read_text(encoding="utf-8"))
    return [dict(e) for e in record.get("ledger", [])]


def _find_request(ws: Any, ledger: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return the release request the run submitted: the last one its record names, else one holding its results."""
    named = [str(e["request_id"]) for e in ledger if e.get("type") == "release" and e.get("request_id")]
    if not named:  # a kernel that did not report its release: find it by the results the run was given
        results = {str(e["result_id"]) for e in ledger if e.get("type") == "charge" and e.get("result_id")}
        listed = ws._t.get("/v1/releases", {"closed": "true"})
        named = [str(r["id"]) for r in listed if results & {i["id"] for i in r["gate"]["items"]}]
    return dict(ws._t.get(f"/v1/releases/{named[-1]}")) if named else None


def _run_study(workspace: Path, notebook: Path, progress: bool, ws: Any) -> tuple[str, dict[str, Any]]:
    """Run the study; return its run id and release request, or raise with the failing cell."""
    from .kernel.studies.runner import failure_report, run_study

    record = run_study(notebook, workspace=workspace, progress=progress, check=False, vault=True)
    if record.failure is not None:
        raise StudyRunError(f"the demo study failed: {failure_report(record)}")
    request = _find_request(ws, _run_ledger(WorkspaceLayout(workspace).run_dir(record.run_id)))
    if request is None:
        raise StudyRunError(
            f"run {record.run_id} of {notebook.name} submitted no release request; "
            "the notebook's last cells must call ws.release([...])."
        )
    return record.run_id, request


def _write_report(workspace: Path, ws: Any, request: dict[str, Any]) -> Path:
    audits = [i["id"] for i in request["gate"]["items"] if i.get("kind") == "audit"]
    if not audits:
        raise StudyRunError(f"release request {request['id']} holds no fairness audit; the study must release one.")
    folder = WorkspaceLayout(workspace).reports
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{request['id']}_fairness_report.html"
    path.write_text(ws.result(audits[0]).to_html(), encoding="utf-8")
    return path


def run_demo(
    workspace: str | Path,
    households: int,
    *,
    seed: int = 0,
    scenario: str = "default",
    keep_vault: bool = False,
    progress: bool = True,
    notebook: str | Path = STUDY_NOTEBOOK,
) -> DemoResult:
    """Run the whole demo in ``workspace`` (see the module docstring) and return what it did.

    Parameters
    ----------
    workspace : str or Path
        The demo workspace (created if needed).
    households : int
        Size of the synthetic population.
    seed, scenario
        Of the population (see :func:`synthetic.write_population`).
    keep_vault : bool
        Leave a vault this demo started running (by default it is stopped at the end).
    progress : bool
        Show the generator's and papermill's progress bars.
    notebook : str or Path
        The study notebook (default: ``notebooks/03_study_early_warning_model.ipynb``).

    Raises
    ------
    StudyRunError
        The study failed (the message shows the failing cell; its run record is marked failed).
    """
    from .kernel.launch import ensure_local_vault, stop_local_vault

    root = Path(workspace).resolve()
    root.mkdir(parents=True, exist_ok=True)
    population, reused = ensure_population(root, households, seed=seed, scenario=scenario, progress=progress)
    registered = register_population(root, population)
    with _local_vault_only():
        started = WorkspaceLayout.create(root).read_discovery() is None
        url, token = ensure_local_vault(root)
        try:
            prepared = _Prepared(root, population, reused, registered, url, started)
            return _study_and_report(prepared, Path(notebook), progress, token)
        finally:
            if started and not keep_vault:
                stop_local_vault(root)


@contextlib.contextmanager
def _local_vault_only() -> Iterator[None]:
    """Hide a deployed vault's ``SANDBOX_VAULT_URL``/``SANDBOX_TOKEN``: the demo uses the workspace's own vault."""
    saved = {k: os.environ.pop(k) for k in _DEPLOYED_VAULT_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@dataclass(frozen=True)
class _Prepared:
    """What the demo set up before the study: the first six fields of :class:`DemoResult`."""

    workspace: Path
    population: Path
    population_reused: bool
    registered: tuple[str, ...]
    vault_url: str
    vault_started: bool


def _study_and_report(prepared: _Prepared, notebook: Path, progress: bool, token: str) -> DemoResult:
    """Run (or reuse) the study, write the fairness report and remember the run and request."""
    from .kernel.workspace import Workspace

    root = prepared.workspace
    with Workspace(prepared.vault_url, token) as ws:
        run_id, request = _reuse(root, ws)
        run_reused = request is not None
        if request is None:
            run_id, request = _run_study(root, notebook, progress, ws)
        report = _write_report(root, ws, request)
    reasons = [*request["gate"]["reasons"], *(r for i in request["gate"]["items"] for r in i["reasons"])]
    result = DemoResult(
        **asdict(prepared),
        run_id=run_id,
        run_reused=run_reused,
        release_id=str(request["id"]),
        release_status=str(request["status"]),
        reasons=tuple(str(r) for r in reasons),
        fairness_report=report,
    )
    state = {"run_id": result.run_id, "release_id": result.release_id, "fairness_report": str(report)}
    write_private(root / DEMO_STATE, json.dumps(state, indent=2) + "\n")
    return result


def _reuse(root: Path, ws: Any) -> tuple[str, dict[str, Any] | None]:
    """Return the earlier demo's run id and request when that request is still open or released."""
    state = _load_state(root)
    run_id, request_id = state.get("run_id"), state.get("release_id")
    if not isinstance(run_id, str) or not isinstance(request_id, str):
        return "", None
    if not WorkspaceLayout(root).run_record(run_id).is_file():
        return "", None
    try:
        request = dict(ws._t.get(f"/v1/releases/{request_id}"))
    except SandboxError:  # an unknown request (e.g. a fresh vault in an old workspace): run the study anew
        return "", None
    return (run_id, request) if request.get("status") not in _CLOSED else ("", None)


def as_dict(result: DemoResult) -> dict[str, Any]:
    """Return the result as JSON-ready values (paths as strings)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(result).items()}
