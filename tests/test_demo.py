"""``sandbox demo``'s logic on small populations with a stub study (issue 14 point 1).

The real demo (notebook 03 and its variants, at a size where the plan holds) runs in ``tests/test_demo_clone.py``
on a fresh clone. Here a small stub study (a request without its audit is always blocked; one with it passes on
a small population, where every interval is wide) forces each way an outcome can differ from the plan, so that
each is stated and handled, never a crash; checks that a second demo reuses everything and spends nothing; and
that a demo of another population in the same workspace never shows the earlier demo's results.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import sandbox as sb
from sandbox._private.demo import DEMO_REVIEWERS, Variant, run_demo
from sandbox._private.shared.errors import StudyRunError
from sandbox._private.shared.layout import WorkspaceLayout

pytestmark = pytest.mark.system


def _spent(workspace: Path) -> float:
    """The population's spent ε, through the analyst's API (the vault this starts is stopped again)."""
    from sandbox._private.kernel.launch import stop_local_vault

    try:
        with sb.connect(workspace) as ws:
            return float(ws.budget("households")["epsilon_spent"])
    finally:
        stop_local_vault(workspace)


# -- outcomes against the plan, forced with a stub study ----------------------------------------------------------
STUB_PARAMS = """\
dataset = "households"
epsilon = 1.0
release = "table"  # table: a DP count, which the gate passes; model: a model without its audit, always blocked
title = "Stub study"
purpose = "Early warning of problematic debt (a test of the demo)."
justification = "A test of the demo."
"""
STUB_BODY = """\
import sandbox as sb
ws = sb.connect()
hh = ws.dataset(dataset)
if release == "table":
    items = [hh.count(epsilon=epsilon)]  # one cell of all households: passes the DP minimum-count rule always
else:
    spec = sb.ModelSpec("logistic_regression", target="registered_problematic_debt", features=["total_debt"])
    items = [hh.fit(spec, epsilon=epsilon)]
request = ws.release(items, title=title, purpose=purpose, justification=justification)
print(request.status)
"""


def _stub(path: Path) -> Path:
    nb = new_notebook(cells=[new_code_cell(STUB_PARAMS, metadata={"tags": ["parameters"]}), new_code_cell(STUB_BODY)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


PASSES = Variant("passes", "passing stub", "a DP table", {"release": "table", "epsilon": 0.5}, "blocked")
BLOCKED = Variant("blocked", "blocked stub", "a model without its audit", {"release": "model"}, "pending_review")
FALLBACK = Variant("fallback", "fallback stub", "a DP table", {"release": "table", "epsilon": 0.6}, "pending_review")


def test_outcomes_against_the_plan_are_stated_and_another_population_starts_afresh(tmp_path: Path) -> None:
    notebook = _stub(tmp_path / "stub.ipynb")
    workspace = tmp_path / "workspace"
    lines: list[str] = []
    # model 1 passes (withdrawn, said), the planned variant is blocked (said), the fallback passes: released
    result = run_demo(
        workspace, 1_500, progress=False, notebook=notebook, echo=lines.append, variants=(PASSES, BLOCKED, FALLBACK)
    )
    out = "\n".join(lines)
    assert result.released and [a.variant for a in result.attempts] == ["passes", "blocked", "fallback"]
    assert [a.status for a in result.attempts] == ["withdrawn", "blocked", "released"]
    assert len(result.deviations) == 2 and out.count("NOT AS PLANNED: ") == 2
    assert "the gate did not block model 1" in result.deviations[0]
    assert "the gate blocked the blocked stub (reasons above); trying the fallback stub" in result.deviations[1]
    assert "has no fairness audit in this request" in out  # the gate's reason, as the analyst sees it
    assert "fairness audit: none; the request holds no fairness audit" in out
    assert "the fallback stub passed instead of the planned blocked stub" in out
    assert list(result.reviewers) == [DEMO_REVIEWERS[0]] and "DEMO IDENTITIES" in out  # a table needs one
    # the same demo again: everything reused, no study run, nothing spent, the same release
    runs = sorted(p.name for p in (workspace / "runs").iterdir())
    spent = _spent(workspace)
    lines.clear()
    again = run_demo(
        workspace, 1_500, progress=False, notebook=notebook, echo=lines.append, variants=(PASSES, BLOCKED, FALLBACK)
    )
    assert again.reused and again.population_reused and again.release_id == result.release_id and again.released
    assert sorted(p.name for p in (workspace / "runs").iterdir()) == runs
    assert _spent(workspace) == spent
    assert "was released by an earlier demo" in "\n".join(lines)
    # nothing passes: a message naming the fix, after every step was printed
    lines.clear()
    with pytest.raises(StudyRunError, match=r"no variant passed the gate .* nothing was released.*--help-notebook"):
        run_demo(workspace, 1_500, progress=False, notebook=notebook, echo=lines.append, variants=(BLOCKED, BLOCKED))
    assert "[4/7]" in "\n".join(lines) and "[5/7]" not in "\n".join(lines)
    assert WorkspaceLayout(workspace).read_discovery() is None
    # another population in the same workspace: generated, registered and run anew; never the old results
    lines.clear()
    other = run_demo(
        workspace, 1_200, progress=False, notebook=notebook, echo=lines.append, variants=(BLOCKED, FALLBACK)
    )
    out = "\n".join(lines)
    assert "(this workspace held an earlier demo of another population" in out
    assert not other.population_reused and other.registered and other.released
    for earlier in result.attempts:
        assert earlier.request_id not in out and earlier.run_id not in out
    assert other.release_id != result.release_id


def test_a_failing_study_is_reported_with_its_cell_and_its_record_kept(tmp_path: Path) -> None:
    broken = new_notebook()
    broken.cells = [
        new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        new_code_cell("import sandbox as sb\nraise ValueError('no model today')"),
    ]
    path = tmp_path / "broken.ipynb"
    nbformat.write(broken, path)
    other = tmp_path / "ws"
    with pytest.raises(StudyRunError, match=r"(?s)the demo's study run failed.*Cell 1 .*raised ValueError: no model"):
        run_demo(other, 1_200, progress=False, notebook=path, echo=lambda _line: None)
    records = [json.loads(p.read_text()) for p in (other / "runs").glob("*/record.json")]
    assert [r["status"] for r in records] == ["failed"]
    assert WorkspaceLayout(other).read_discovery() is None
