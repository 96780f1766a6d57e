"""``sandbox lab`` in a real browser: notebook 01 runs in JupyterLab and the budget display appears.

The test starts ``sandbox lab`` (JupyterLab on 127.0.0.1 with a token, the workspace's vault, the pre-save hook
and the IPython extension), opens notebook 01 in headless Chromium, runs all cells and waits for the budget
line that the extension shows after the cell that spent ε. It also checks, through the same server's contents
API, that the pre-save hook refuses a notebook with an unmarked data-frame output.
"""

from __future__ import annotations

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
    population = synthetic.write_population(root / "population", 1_000, seed=5)
    ws = root / "workspace"
    open_service(ws).registry.add_population(population)
    notebooks = shutil.copytree(REPO / "notebooks", root / "notebooks")  # checkpoints stay out of the repo
    cmd = [sys.executable, "-c", "from sandbox.cli import run; run()", "lab", "--workspace", str(ws)]
    proc = subprocess.Popen(
        [*cmd, "--notebooks", str(notebooks), "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
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


def _run_all_cells(page: Any, attempts: int = 6) -> None:
    """Run > Run All Cells, retried until every code cell is queued or done.

    The menu item is inert until the kernel is ready, and a click while the notebook is still settling has been
    seen to run only the first cell; so success means no code cell is left with an empty prompt ``[ ]``.
    """
    started = (
        "() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];"
        " return p.length > 0 && p.every(x => /\\[(\\*|\\d+)\\]/.test(x.textContent)); }"
    )
    for _ in range(attempts):
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        try:
            page.wait_for_function(started, timeout=20_000)
            return
        except Exception:  # playwright's TimeoutError: the kernel was not ready yet
            page.keyboard.press("Escape")
    raise AssertionError(f"Run All Cells did not start execution after {attempts} attempts")


def test_notebook_01_runs_in_jupyterlab_and_shows_the_budget(lab: tuple[str, Path]) -> None:
    from playwright.sync_api import sync_playwright

    url, _ = lab
    base, token = url.split("/lab?token=")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make sysdeps`")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run"]  # fmt: skip
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page()
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
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
