"""``sandbox lab`` in a real browser: the shipped notebooks run and save in JupyterLab, and the budget shows.

The tests start ``sandbox lab`` (JupyterLab on 127.0.0.1 with a token, the workspace's vault, the pre-save hook
and the IPython extension), open notebooks in headless Chromium, run all cells, and:

- notebook 01: wait for the budget line that the extension shows after the cell that spent ε;
- notebooks 01-04, in order (03 submits a release request that 04 then lists as a reviewer): save each with
  Ctrl+S after Run All, and check through the contents API that the save was accepted with its outputs (the
  pre-save hook refuses a notebook that shows unmarked frames; a refused save shows "File Save Error");
- through the same server's contents API, that the pre-save hook refuses a notebook with an unmarked data-frame
  output.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox._private.shared.layout import WorkspaceLayout

pytestmark = [pytest.mark.browser, pytest.mark.system]

CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = "01_explore_schema_and_dummy_data.ipynb"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``sandbox lab`` on a small population; yields (url, workspace) and stops lab and vault afterwards."""
    import synthetic
    from sandbox._private.vault.server import open_service

    root = tmp_path_factory.mktemp("lab")
    population = synthetic.write_population(root / "population", 2_000, seed=5)
    ws = root / "workspace"
    service = open_service(ws)
    service.registry.add_population(population)
    reviewer = service.tokens.create("rita", "reviewer")  # notebook 04 reads it from SANDBOX_REVIEWER_TOKEN
    notebooks = shutil.copytree(REPO / "notebooks", root / "notebooks")  # checkpoints stay out of the repo
    cmd = [sys.executable, "-c", "from sandbox.cli import run; run()", "lab", "--workspace", str(ws)]
    env = {**os.environ, "SANDBOX_REVIEWER_TOKEN": reviewer}
    proc = subprocess.Popen(
        [*cmd, "--notebooks", str(notebooks), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "token=" in url, (url, proc.stderr.read() if proc.stderr else "")
        yield url, ws
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        info = WorkspaceLayout.create(ws).read_discovery()
        if info is not None:
            os.kill(int(info["pid"]), signal.SIGTERM)


#: The notebook in the visible tab (JupyterLab may restore other notebooks as hidden tabs).
_ACTIVE = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def _run_all_cells(page: Any, attempts: int = 6) -> None:
    """Run > Run All Cells, retried until every code cell is queued or done.

    The menu item is inert until the kernel is ready, and a click while the notebook is still settling has been
    seen to run only the first cell; so success means no code cell is left with an empty prompt ``[ ]``.
    """
    started = (
        f"() => {{ const p = [...document.querySelectorAll('{_ACTIVE} .jp-CodeCell .jp-InputPrompt')];"
        " return p.length > 0 && p.every(x => /\\[(\\*|\\d+)\\]/.test(x.textContent)); }"
    )
    dialogs: list[str] = []
    for _ in range(attempts):
        dialogs += _accept_dialogs(page)
        try:
            page.click(".lm-MenuBar-itemLabel:text-is('Run')", timeout=15_000)
            page.click(".lm-Menu-itemLabel:text-is('Run All Cells')", timeout=15_000)
            page.wait_for_function(started, timeout=20_000)
            return
        except Exception:  # playwright's TimeoutError: the kernel was not ready yet, or a dialog took the click
            page.keyboard.press("Escape")
    raise AssertionError(f"Run All Cells did not start execution after {attempts} attempts (dialogs: {dialogs})")


def _accept_dialogs(page: Any) -> list[str]:
    """Accept every modal dialog JupyterLab shows (e.g. "Select Kernel" when the kernel spec answers late under load,
    whose default is the notebook's own kernel); return their texts. A dialog left open takes every click."""
    seen = []
    for _ in range(3):
        dialog = page.locator(".jp-Dialog")
        if dialog.count() == 0:
            break
        seen.append(dialog.first.inner_text(timeout=5_000)[:200])
        accept = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
        if accept.count():
            accept.first.click(timeout=10_000)
        else:
            page.keyboard.press("Escape")
        page.wait_for_timeout(500)
    return seen


_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]  # fmt: skip
_ALL_DONE = (
    f"() => {{ const p = [...document.querySelectorAll('{_ACTIVE} .jp-CodeCell .jp-InputPrompt')];"
    " return p.length > 0 && p.every(x => /\\[\\d+\\]/.test(x.textContent)); }"
)


def _open(page: Any, base: str, token: str, name: str) -> None:
    """Open ``name`` alone (``?reset``: no tabs restored from an earlier page) and wait for its kernel."""
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}")
    page.wait_for_selector(f"{_ACTIVE} .jp-Cell", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)


def _saved(base: str, token: str, name: str) -> dict[str, Any]:
    resp = httpx.get(f"{base}/api/contents/{name}", headers={"Authorization": f"token {token}"}, timeout=30)
    resp.raise_for_status()
    return dict(resp.json()["content"])


def test_notebook_01_runs_in_jupyterlab_and_shows_the_budget(lab: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    url, _ = lab
    base, token = url.split("/lab?token=")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make sysdeps`")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=_ARGS)
        page = browser.new_page()
        try:
            _open(page, base, token, NOTEBOOK)
            _run_all_cells(page)
            # JupyterLab renders off-screen cells lazily (content-visibility): wait for presence, read the text.
            budget = page.wait_for_selector(".sandbox-budget", state="attached", timeout=300_000)
            assert budget is not None
            text = str(budget.text_content())
            assert "households: spent ε = 0.05 in this cell" in text and "remaining" in text
            schema = page.locator("text=public schema, privacy unit household")
            assert schema.count() == 1
        except Exception:
            print(page.inner_text(".jp-Notebook")[-4000:])  # what the notebook showed, for the failure report
            raise
        finally:
            browser.close()


NOTEBOOKS = (
    "01_explore_schema_and_dummy_data.ipynb",
    "02_dp_statistics_poverty_and_debt.ipynb",
    "03_study_early_warning_model.ipynb",
    "04_reviewer_pending_requests.ipynb",
)


def test_notebooks_01_to_04_run_and_save_in_jupyterlab(lab: tuple[str, Path]) -> None:
    """Run All, then Ctrl+S: each shipped notebook saves with its outputs (no "File Save Error")."""
    from playwright.sync_api import sync_playwright

    url, _ = lab
    base, token = url.split("/lab?token=")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make sysdeps`")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=_ARGS)
        page = browser.new_page()
        try:
            for name in NOTEBOOKS:
                _open(page, base, token, name)
                _run_all_cells(page)
                page.wait_for_function(_ALL_DONE, timeout=600_000)  # every code cell finished: [n]
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=600_000)
                errors = page.locator(f"{_ACTIVE} .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
                assert errors.count() == 0, page.inner_text(_ACTIVE)[-3000:]
                page.click(f"{_ACTIVE} .jp-Notebook")
                page.keyboard.press("Control+s")
                page.wait_for_timeout(1_500)
                assert page.locator(".jp-Dialog:has-text('File Save Error')").count() == 0, page.inner_text("body")
                saved = _saved(base, token, name)
                code = [c for c in saved["cells"] if c["cell_type"] == "code"]
                assert code and all(isinstance(c.get("execution_count"), int) for c in code), name
                # 04 may list no request (03's can be blocked by the gate on this small population): 1 output then
                assert sum(len(c.get("outputs", [])) for c in code) >= (1 if name.startswith("04") else 3), name
        except Exception:
            print(page.inner_text(_ACTIVE)[-4000:])  # what the notebook showed, for the failure report
            raise
        finally:
            browser.close()
    dummy = json.dumps(_saved(base, token, NOTEBOOKS[0]))
    assert "application/vnd.sandbox.dummy+json" in dummy  # df.head() of dummy rows was saved, marked


def test_presave_hook_refuses_protected_outputs(lab: tuple[str, Path]) -> None:
    url, _ = lab
    base, token = url.split("/lab?token=")
    frame = "   income municipality\n0   35000        Delft\n1   41000          Ede"
    cell = {"cell_type": "code", "id": "a1", "source": "df", "metadata": {}, "execution_count": 1,
            "outputs": [{"output_type": "execute_result", "execution_count": 1, "metadata": {},
                         "data": {"text/plain": frame}}]}  # fmt: skip
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]}
    headers = {"Authorization": f"token {token}"}
    resp = httpx.put(f"{base}/api/contents/leak.ipynb", json={"type": "notebook", "content": nb}, headers=headers)
    assert resp.status_code == 422
    assert "may show protected data" in resp.json()["message"]
    cell["outputs"] = []
    ok = httpx.put(f"{base}/api/contents/clean.ipynb", json={"type": "notebook", "content": nb}, headers=headers)
    assert ok.status_code in (200, 201)
