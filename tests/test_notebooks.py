"""The shipped notebooks run through papermill (``run_study``) against a real vault on a small population.

Each notebook is stored without outputs; here it runs end to end, its stored output keeps the sandbox displays,
and a rerun reproduces the released numbers with zero extra ε.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

import sandbox as sb
from sandbox._private.kernel.mime import SANDBOX_BUDGET_MIME, SANDBOX_PUBLIC_MIME, SANDBOX_RESULT_MIME
from sandbox._private.kernel.studies.record import RunRecord
from sandbox._private.shared.layout import WorkspaceLayout

pytestmark = pytest.mark.system

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
HOUSEHOLDS = 2_000


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A workspace with a small synthetic population registered and its vault running (stopped at the end)."""
    import synthetic
    from sandbox._private.vault.server import open_service

    root = tmp_path_factory.mktemp("nb")
    population = synthetic.write_population(root / "population", HOUSEHOLDS, seed=3)
    ws = root / "workspace"
    open_service(ws).registry.add_population(population)
    # Start the vault once, from a child process (so this process holds no Popen of it); every run reuses it.
    code = (
        "import sys, pathlib; from sandbox._private.kernel.studies.vault_access import vault_environment as v; "
        "v(pathlib.Path(sys.argv[1]))"
    )
    subprocess.run([sys.executable, "-c", code, str(ws)], check=True, timeout=120)
    yield ws
    info = WorkspaceLayout.create(ws).read_discovery()
    if info is not None:
        os.kill(int(info["pid"]), signal.SIGTERM)


def outputs(record: RunRecord, workspace: Path) -> list[dict[str, object]]:
    nb = nbformat.read(workspace / "runs" / record.run_id / "output.ipynb", as_version=4)
    return [o for c in nb.cells for o in c.get("outputs", [])]


def mimes(record: RunRecord, workspace: Path) -> set[str]:
    return {m for o in outputs(record, workspace) for m in dict(o.get("data", {}))}


def test_notebooks_are_stored_without_outputs() -> None:
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert len(paths) >= 2
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path.name


def test_01_explore(workspace: Path) -> None:
    record = sb.run_study(NOTEBOOKS / "01_explore_schema_and_dummy_data.ipynb", workspace=workspace, progress=False)
    assert record.status == "succeeded"
    assert {SANDBOX_PUBLIC_MIME, SANDBOX_RESULT_MIME, SANDBOX_BUDGET_MIME} <= mimes(record, workspace)
    charges = [e for e in record.ledger if e["type"] == "charge"]
    assert charges and all(e["vault"]["matches"] for e in charges)  # type: ignore[index]
    assert sum(float(e["epsilon"]) for e in charges) == pytest.approx(0.05)  # type: ignore[arg-type]


def _released(record: RunRecord) -> dict[str, str]:
    return {str(e["result_id"]): str(e["sha256"]) for e in record.ledger if e["type"] == "charge"}


def test_02_statistics_and_rerun_reproduces_with_zero_epsilon(workspace: Path) -> None:
    nb = NOTEBOOKS / "02_dp_statistics_poverty_and_debt.ipynb"
    first = sb.run_study(nb, workspace=workspace, cli_params=[("epsilon_per_statistic", "0.3")], progress=False)
    assert first.status == "succeeded" and first.parameters == {"epsilon_per_statistic": 0.3}
    assert "image/png" in mimes(first, workspace)  # error-bar charts survive storing: they carry the marker
    assert sum(float(e["epsilon"]) for e in first.ledger) == pytest.approx(0.9)  # type: ignore[arg-type]
    with sb.connect(workspace) as ws:
        before = ws.budget("households")["epsilon_spent"]

    again = sb.rerun_study(first.run_id, workspace, progress=False)

    with sb.connect(workspace) as ws:
        assert ws.budget("households")["epsilon_spent"] == before  # zero extra ε
    assert again.rerun_of == first.run_id and again.parameters == first.parameters
    assert _released(again) == _released(first)  # the same stored answers: same ids, same content hashes
    assert all(e["reused"] and float(e["epsilon"]) == 0 for e in again.ledger)  # type: ignore[arg-type]
    assert _shown(again, workspace) == _shown(first, workspace)  # the notebook shows the same numbers


def _shown(record: RunRecord, workspace: Path) -> list[str]:
    """The result displays of a run (id and content sha256 of each result shown), in order."""
    data = [dict(o.get("data", {})) for o in outputs(record, workspace)]  # type: ignore[call-overload]
    return [json.dumps(d[SANDBOX_RESULT_MIME], sort_keys=True) for d in data if SANDBOX_RESULT_MIME in d]


def _printed(record: RunRecord, workspace: Path) -> str:
    return "".join(str(o.get("text", "")) for o in outputs(record, workspace) if o.get("output_type") == "stream")


def test_03_study_and_04_reviewer(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    from sandbox._private.vault.tokens import TokenStore

    study = sb.run_study(
        NOTEBOOKS / "03_study_early_warning_model.ipynb",
        workspace=workspace,
        cli_params=[
            ("epsilon", "1.0"),
            ("features", '["income_band", "arrears_energy", "housing"]'),
            ("register", '{"organization": "Gemeente Noorderhaaks", "publication_category": "Impactvolle algoritmes"}'),
        ],
        progress=False,
    )
    assert study.status == "succeeded"
    kinds = mimes(study, workspace)
    assert SANDBOX_RESULT_MIME in kinds
    charged = sorted(float(e["epsilon"]) for e in study.ledger if e["type"] == "charge")  # type: ignore[arg-type]
    assert charged == [0.5, 1.0]  # the audit (policy's audit_epsilon) and the fit
    match = re.search(r"release request (req_\w+): (\w+)", _printed(study, workspace))
    assert match is not None
    request_id, status = match.groups()
    assert status in ("blocked", "pending_review")
    # the register parameter reached the gate: the draft's required fields nobody gave are flagged, not ours
    printed = _printed(study, workspace)
    assert "the standard requires description_short, contact_email;" in printed, printed
    # the author's fairness reports, written at submission in both languages
    mine = sorted(p.name[-7:] for p in (workspace / "reports" / request_id).glob("r_*_fairness_report_*.html"))
    assert mine == ["en.html", "nl.html"]

    token = TokenStore(WorkspaceLayout.create(workspace).tokens).create("reviewer_one", "reviewer")
    monkeypatch.setenv("SANDBOX_REVIEWER_TOKEN", token)
    review = sb.run_study(NOTEBOOKS / "04_reviewer_pending_requests.ipynb", workspace=workspace, progress=False)
    assert review.status == "succeeded"
    assert token not in json.dumps(review.parameters)  # the token is read from the environment, never recorded
    listed = _printed(review, workspace)
    reports = sorted((workspace / "review_reports").glob(f"{request_id}_*_fairness_report_*.html"))
    if status == "pending_review":  # offered to reviewers, with its fairness reports in Dutch and English
        assert request_id in listed and [p.name[-7:] for p in reports] == ["en.html", "nl.html"]
        assert all("<html" in p.read_text().lower() for p in reports)
    else:  # blocked requests are never offered to reviewers
        assert request_id not in listed and reports == []
    assert not (NOTEBOOKS / "review_reports").exists()
