"""``%load_ext sandbox``: the remaining budget is displayed after a cell that spent some, and only then."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

from sandbox._private.kernel import spend
from sandbox._private.kernel.mime import SANDBOX_BUDGET_MIME
from sandbox._private.kernel.studies.ipython_ext import BudgetDisplay, summarise


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    spend.drain()
    sh = InteractiveShell.instance()
    sh.run_cell("%load_ext sandbox", store_history=False)
    yield sh
    sh.run_cell("%unload_ext sandbox", store_history=False)
    InteractiveShell.clear_instance()


def run(sh: InteractiveShell, code: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    result = sh.run_cell(code, store_history=False)
    assert result.success, result.error_in_exec
    return capsys.readouterr().out


def test_budget_shown_after_spending_cell_only(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    code = (
        "from sandbox._private.kernel.spend import record_spend\n"
        "record_spend('households', 0.1, 9.9)\nrecord_spend('households', 0.2, 9.7)\nrecord_spend('persons', 0.5, 4.5)"
    )
    out = run(shell, code, capsys)
    assert "households: spent ε=0.3 in this cell, ε=9.7 remaining" in out
    assert "persons: spent ε=0.5 in this cell, ε=4.5 remaining" in out
    assert "privacy budget" not in run(shell, "x = 1", capsys)
    stored = "from sandbox._private.kernel.spend import record_spend\nrecord_spend('households', 0.0, 9.7)"
    assert "privacy budget" not in run(shell, stored, capsys)  # a stored answer spends nothing


def test_loading_twice_registers_once(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_cell("%reload_ext sandbox", store_history=False)
    out = run(
        shell, "from sandbox._private.kernel.spend import record_spend\nrecord_spend('households', 0.1, 1.0)", capsys
    )
    assert out.count("privacy budget") == 1


def test_bundle_is_marked_and_escaped() -> None:
    rows = summarise([spend.Spend("<b>x</b>", 0.25, 1.5)])
    bundle = BudgetDisplay(tuple(rows))._repr_mimebundle_()
    assert bundle[SANDBOX_BUDGET_MIME] == {
        "datasets": [{"dataset": "<b>x</b>", "spent": 0.25, "remaining": 1.5, "queries": 1}]
    }
    assert "&lt;b&gt;x&lt;/b&gt;" in bundle["text/html"] and "sandbox-budget" in bundle["text/html"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(("", 0.1, 1.0), "needs a dataset"), (("d", -0.1, 1.0), "must be >= 0"), (("d", float("nan"), 1.0), "finite")],
)
def test_spend_validates_itself(args: tuple[str, float, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spend.record_spend(*args)


def test_drain_empties() -> None:
    spend.drain()
    spend.record_spend("d", 0.1, 1.0)
    assert spend.peek() == [spend.Spend("d", 0.1, 1.0)]
    assert spend.drain() == [spend.Spend("d", 0.1, 1.0)]
    assert spend.drain() == []


PAYLOAD = {
    "id": "r_test",
    "sha256": "ab" * 32,
    "dataset": "households",
    "version": 1,
    "kind": "aggregate",
    "query": {"kind": "mean", "column": "poverty", "by": ["household_type"]},
    "epsilon": 0.2,
    "delta": 0.0,
    "mechanism": "Laplace",
    "values": {
        "columns": ["household_type", "value", "noise_scale", "ci95"],
        "rows": [["single", 0.06, 0.01, 0.02], ["couple", 0.02, 0.01, 0.02]],
    },
}


def test_results_schemas_and_tagged_frames_display_with_markers(shell: InteractiveShell) -> None:
    import pandas as pd

    from sandbox import errorbar_plot
    from sandbox._private.kernel.mime import DUMMY_ATTR, SANDBOX_DUMMY_MIME, SANDBOX_PUBLIC_MIME, SANDBOX_RESULT_MIME
    from sandbox._private.kernel.results import DPResult
    from sandbox._private.kernel.studies.scrub import classify_output
    from sandbox._private.shared.schema import Column, TableSchema

    def bundle(obj: object) -> dict[str, object]:
        data, _ = shell.display_formatter.format(obj)
        return dict(data)

    result = DPResult.from_payload(PAYLOAD)
    shown = bundle(result)
    assert shown[SANDBOX_RESULT_MIME] == {
        "kind": "aggregate", "id": "r_test", "sha256": "ab" * 32, "dataset": "households", "epsilon": 0.2
    }  # fmt: skip
    assert shown["text/html"] == result._repr_html_()
    schema = TableSchema(
        name="households", label_nl="Huishoudens", label_en="Households", privacy_unit="household",
        unit_column="household_id", max_rows_per_unit=1,
        columns=(Column("household_id", "id", "id", "id", lower=1, upper=10),
                 Column("poverty", "bool", "armoede", "poverty")),
    )  # fmt: skip
    assert SANDBOX_PUBLIC_MIME in bundle(schema)
    frame = pd.DataFrame({"income": [1200, 35000, 900]})
    assert SANDBOX_DUMMY_MIME not in bundle(frame)  # an untagged frame keeps IPython's display ...
    assert classify_output({"output_type": "execute_result", "data": bundle(frame)}) is not None  # ... and is refused
    frame.attrs[DUMMY_ATTR] = {"dataset": "households"}
    assert bundle(frame.head(2))[SANDBOX_DUMMY_MIME] == {"dataset": "households", "rows": 2}  # attrs survive head()
    plot = bundle(errorbar_plot(result))
    assert str(plot["image/png"]).startswith("iVBOR") and SANDBOX_RESULT_MIME in plot
    for obj in (result, schema, frame, errorbar_plot(result)):
        assert classify_output({"output_type": "execute_result", "data": bundle(obj)}) is None
