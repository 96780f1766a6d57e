"""``sandbox demo`` end to end on a small population: population, vault, study 03, release request, report.

The demo runs twice in one workspace: the second time everything is reused (population, registration, run and
request) and no budget is spent. The vault the demo starts is stopped at the end.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from sandbox._private.demo import DEMO_STATE, run_demo
from sandbox._private.shared.errors import StudyRunError
from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.vault.server import open_service
from sandbox.cli import cli

pytestmark = pytest.mark.system

HOUSEHOLDS = 1_500


def _budget_spent(workspace: Path) -> float:
    svc = open_service(workspace)
    return svc.ledger.budget(svc.ledger.dataset("households")).epsilon_spent


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    workspace = tmp_path_factory.mktemp("demo") / "workspace"
    result = CliRunner().invoke(
        cli, ["demo", "--workspace", str(workspace), "--households", str(HOUSEHOLDS), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return workspace, result.output


def test_demo_prints_run_release_and_fairness_report(demo_run: tuple[Path, str]) -> None:
    workspace, out = demo_run
    run_id = re.search(r"^run id:\s+(run-\S+)", out, re.MULTILINE)
    release = re.search(r"^release id:\s+(req_[0-9a-f]{16})", out, re.MULTILINE)
    status = re.search(r"^release status:\s+(\w+)", out, re.MULTILINE)
    report = re.search(r"^fairness report:\s+(\S+)", out, re.MULTILINE)
    assert run_id and release and status and report, out
    assert "sandbox review" in out and "/review" in out and "indicator" in out  # next steps and calibration
    record = json.loads((workspace / "runs" / run_id.group(1) / "record.json").read_text())
    assert record["status"] == "succeeded"
    assert record["notebook"].endswith("03_study_early_warning_model.ipynb")
    charges = [e for e in record["ledger"] if e["type"] == "charge"]
    assert len(charges) == 2 and all(e["vault"]["matches"] for e in charges)  # the fit and the audit
    html = Path(report.group(1)).read_text(encoding="utf-8")
    assert Path(report.group(1)).parent == workspace / "reports"
    assert html.startswith("<!DOCTYPE html>") and "<title>Fairness audit</title>" in html
    for section in ("summary", "direct", "indirect", "tables", "limitations"):
        assert f'id="{section}"' in html
    state = json.loads((workspace / DEMO_STATE).read_text())
    assert state["release_id"] == release.group(1) and state["run_id"] == run_id.group(1)
    assert status.group(1) in ("blocked", "pending_review")


def test_the_demo_stops_the_vault_it_started(demo_run: tuple[Path, str]) -> None:
    workspace, out = demo_run
    assert WorkspaceLayout.create(workspace).read_discovery() is None
    assert "started by this demo" in out


def test_a_second_demo_reuses_everything_and_spends_nothing(demo_run: tuple[Path, str]) -> None:
    workspace, first = demo_run
    spent = _budget_spent(workspace)
    stamp = (workspace / "population" / "households.parquet").stat().st_mtime_ns
    again = run_demo(workspace, HOUSEHOLDS, progress=False)
    assert (workspace / "population" / "households.parquet").stat().st_mtime_ns == stamp
    assert again.population_reused and again.registered == () and again.run_reused
    assert f"release id:       {again.release_id}" in first
    assert f"run id:           {again.run_id}" in first
    assert _budget_spent(workspace) == spent
    assert again.fairness_report.is_file()
    assert WorkspaceLayout.create(workspace).read_discovery() is None


def test_keep_vault_leaves_it_running(demo_run: tuple[Path, str]) -> None:
    from sandbox._private.kernel.launch import stop_local_vault

    workspace, _ = demo_run
    result = run_demo(workspace, HOUSEHOLDS, progress=False, keep_vault=True)
    try:
        info = WorkspaceLayout.create(workspace).read_discovery()
        assert info is not None and info["url"] == result.vault_url
    finally:
        assert stop_local_vault(workspace)


def test_a_failing_study_is_reported_with_its_cell_and_its_record_kept(tmp_path: Path) -> None:
    import nbformat

    broken = nbformat.v4.new_notebook()
    broken.cells = [
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import sandbox as sb\nraise ValueError('no model today')"),
    ]
    path = tmp_path / "broken.ipynb"
    nbformat.write(broken, path)
    other = tmp_path / "ws"
    with pytest.raises(StudyRunError, match=r"(?s)the demo study failed.*Cell 1 .*raised ValueError: no model today"):
        run_demo(other, HOUSEHOLDS, progress=False, notebook=path)
    records = [json.loads(p.read_text()) for p in (other / "runs").glob("*/record.json")]
    assert [r["status"] for r in records] == ["failed"]
    assert WorkspaceLayout.create(other).read_discovery() is None
