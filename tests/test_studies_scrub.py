"""Output hygiene: what a stored or saved notebook may keep, on crafted notebooks with real reprs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from jupyter_server.services.contents.filemanager import FileContentsManager
from tornado.web import HTTPError

from sandbox._private.kernel.mime import SANDBOX_DUMMY_MIME, SANDBOX_RESULT_MIME, dummy_bundle, result_bundle
from sandbox._private.kernel.studies.presave import STATUS, pre_save_hook, refusal_message
from sandbox._private.kernel.studies.scrub import (
    PLACEHOLDER_PREFIX,
    Finding,
    classify_output,
    find_protected_outputs,
    looks_tabular,
    scrub_notebook,
)

FRAME = pd.DataFrame({"income": [1200, 35000, 900, 41000], "municipality": ["Delft", "Ede", "Epe", "Oss"]})


def result(data: dict[str, Any]) -> dict[str, Any]:
    return {"output_type": "execute_result", "execution_count": 1, "data": data, "metadata": {}}


def stream(text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": "stdout", "text": text}


def nb_with(*outputs: dict[str, Any]) -> dict[str, Any]:
    cells = [
        {"cell_type": "code", "id": f"c{i}", "source": "x", "metadata": {}, "execution_count": 1, "outputs": [o]}
        for i, o in enumerate(outputs)
    ]
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {"widgets": {"state": {}}}, "cells": cells}


@pytest.mark.parametrize(
    "text",
    [
        repr(FRAME),
        repr(FRAME.head(1)),
        repr(FRAME[["income"]].head(1)),
        repr(FRAME.income),
        FRAME.to_string(),
        repr(FRAME.describe()),
        repr(pl.from_pandas(FRAME)),
        repr(pl.from_pandas(FRAME)["income"]),
        repr(np.arange(12).reshape(4, 3)),
        str(np.arange(12).reshape(4, 3)),
        "a  1  x\nb  2  y\nc  3  z\n",
    ],
    ids=lambda t: t.splitlines()[0][:20],
)
def test_frame_and_array_dumps_look_tabular(text: str) -> None:
    assert looks_tabular(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Fitted in 2.3 s\nAUC 0.71\n",
        "Released: rel-123\nFairness report: /tmp/x/report.html\n",
        "privacy budget: households: spent ε=0.1 in this cell, ε=9.9 remaining",
        "The model flags 4.1% of households; see the audit below.\n\nNext we fit the tree.",
        repr(np.array([0.1, 0.2, 0.3])),
    ],
)
def test_narrative_text_is_not_tabular(text: str) -> None:
    assert not looks_tabular(text)


def test_unmarked_frame_outputs_are_refused() -> None:
    html_out = result({"text/html": FRAME._repr_html_(), "text/plain": repr(FRAME)})
    assert classify_output(html_out) == "an HTML table not marked as a sandbox result or dummy data"
    assert classify_output(result({"text/plain": repr(FRAME)})) == "text that looks like a data frame or table of rows"
    assert classify_output(stream(FRAME.to_string())) == "printed text that looks like a table of rows"
    assert "image/png" in str(classify_output(result({"image/png": "iVBOR", "text/plain": "<Figure>"})))
    assert classify_output(result({"text/html": "<pre>" + FRAME.to_string() + "</pre>"})) is not None


def test_marked_results_and_dummy_frames_are_kept() -> None:
    dummy = result(dummy_bundle(FRAME, dataset="households"))
    assert SANDBOX_DUMMY_MIME in dummy["data"] and "<table" in dummy["data"]["text/html"]
    assert classify_output(dummy) is None
    dp = result(result_bundle({"kind": "statistic", "id": "r1"}, html="<table><tr><td>5</td></tr></table>", text="5"))
    assert SANDBOX_RESULT_MIME in dp["data"]
    assert classify_output(dp) is None


def test_errors_and_plain_prints_are_kept() -> None:
    err = {"output_type": "error", "ename": "ValueError", "evalue": "bad", "traceback": ["ValueError: bad"]}
    assert classify_output(err) is None
    assert classify_output(stream("epsilon spent: 0.1\n")) is None
    assert classify_output(result({"text/html": "<b>done</b>", "text/plain": "done"})) is None
    assert classify_output({"output_type": "weird"}) == "an output of unknown type 'weird'"


def test_scrub_replaces_only_refused_outputs_and_drops_widget_state() -> None:
    keep = stream("done\n")
    dummy = result(dummy_bundle(FRAME, dataset="households"))
    leak = result({"text/html": FRAME._repr_html_(), "text/plain": repr(FRAME)})
    nb = nb_with(keep, leak, dummy)
    clean, findings = scrub_notebook(nb)
    assert [f.cell_index for f in findings] == [1]
    assert clean["cells"][0]["outputs"] == [keep]
    assert clean["cells"][2]["outputs"] == [dummy]
    placeholder = clean["cells"][1]["outputs"][0]
    assert placeholder["output_type"] == "stream" and placeholder["text"].startswith(PLACEHOLDER_PREFIX)
    assert "35000" not in str(clean["cells"][1]) and "Delft" not in str(clean["cells"][1])
    assert "widgets" not in clean["metadata"]
    assert find_protected_outputs(clean) == []  # a scrubbed notebook passes the pre-save hook
    assert "widgets" in nb["metadata"] and nb["cells"][1]["outputs"] == [leak]  # the input is untouched


def test_refusal_message_lists_cells_and_names_the_fix() -> None:
    leak = stream(repr(FRAME))
    model = {"type": "notebook", "content": nb_with(*[leak] * 7)}
    msg = refusal_message("study.ipynb", model)
    assert msg is not None
    assert "study.ipynb has 7 output(s)" in msg and "(and 2 more)" in msg
    # cells are named as JupyterLab shows them: by the prompt number, and counted from 1 from the top
    assert "cell [1] (1st cell from the top)" in msg and "cell 0" not in msg
    assert "Clear those outputs" in msg
    assert refusal_message("a.py", {"type": "file", "content": repr(FRAME)}) is None


def test_a_refused_cell_is_named_by_its_prompt_and_position() -> None:
    cells = [
        {"cell_type": "markdown", "id": "m", "source": "# t", "metadata": {}},
        {"cell_type": "code", "id": "a", "source": "x", "metadata": {}, "execution_count": None, "outputs": []},
        {
            "cell_type": "code",
            "id": "b",
            "source": "df",
            "metadata": {},
            "execution_count": 7,
            "outputs": [stream("ok\n"), stream(repr(FRAME))],
        },
    ]
    findings = find_protected_outputs({"cells": cells})
    assert [f.describe().split(":")[0] for f in findings] == ["cell [7] (3rd cell from the top), output 2"]
    unrun = Finding(1, 0, "x").describe()
    assert unrun.startswith("the 2nd cell from the top") and "[" not in unrun


def test_jupyter_contents_manager_refuses_the_save(tmp_path: Path) -> None:
    cm = FileContentsManager(root_dir=str(tmp_path))
    cm.register_pre_save_hook(pre_save_hook)
    leak = result({"text/html": FRAME._repr_html_(), "text/plain": repr(FRAME)})
    with pytest.raises(HTTPError, match="may show protected data") as info:
        cm.save({"type": "notebook", "format": "json", "content": nb_with(leak)}, "leak%.ipynb")
    assert info.value.status_code == STATUS
    assert not (tmp_path / "leak%.ipynb").exists()
    dummy = result(dummy_bundle(FRAME, dataset="households"))
    cm.save({"type": "notebook", "format": "json", "content": nb_with(dummy)}, "ok.ipynb")
    assert (tmp_path / "ok.ipynb").is_file()
