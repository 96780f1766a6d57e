"""The gate through a real HTTP server: ws.release from the client and `sandbox review`.

The reviewer web page in a browser is tested in ``tests/test_review_page_browser.py``.

The vault app (with the gate router mounted) is served by uvicorn on 127.0.0.1 on a free port in a thread of
the test process, and stopped by the fixture that started it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import uvicorn
from conftest import free_port, register_population

from sandbox._private.kernel.release import release
from sandbox._private.kernel.workspace import Workspace
from sandbox._private.shared.errors import ReleaseError
from sandbox._private.shared.policy import default_policy_path
from sandbox._private.vault.http.app import create_app
from sandbox._private.vault.server import open_service
from sandbox.cli import main


@dataclass
class Live:
    workspace: Path
    url: str
    service: Any
    tokens: dict[str, str] = field(default_factory=dict)

    def ws(self, name: str = "alice") -> Workspace:
        return Workspace(self.url, self.tokens[name])


@pytest.fixture
def live(tmp_path: Path, small_population: Path) -> Iterator[Live]:
    workspace = tmp_path / "ws"
    policy = tmp_path / "policy.yaml"  # min_count 15, so the fine table below has a failing cell (of 10)
    policy.write_text(default_policy_path().read_text().replace("min_count: 10", "min_count: 15"))
    register_population(workspace, small_population, policy)
    service = open_service(workspace, policy=policy)
    port = free_port()
    config = uvicorn.Config(create_app(service), host="127.0.0.1", port=port,
                            log_level="warning", access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test vault did not start"
        time.sleep(0.05)
    roles = [("alice", "analyst"), ("bob", "reviewer"), ("erin", "reviewer")]
    live = Live(workspace, f"http://127.0.0.1:{port}", service, {n: service.tokens.create(n, r) for n, r in roles})
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(30)


def test_ws_release_of_real_dp_results(live: Live) -> None:
    with live.ws() as ws:
        hh = ws.dataset("households")
        safe = hh.count(by=["household_type"], epsilon=0.5)
        fine = hh.count(by=["household_type", "urbanisation", "arrears"], epsilon=0.5)
        req = release(ws._t, [safe], title="Huishoudens per type", purpose="Omvang doelgroep")
        assert req.status == "pending_review", req.reasons
        blocked = release(ws._t, [fine], title="Te fijn", purpose="Laat de SDC-regels zien")
        assert blocked.status == "blocked"
        # judged on the noisy counts (cells of ~20 households and empty ones, noise scale 2): some fall below 15
        expected = "below the minimum of 15 households: merge categories or drop the cell"
        assert any(expected in r for r in blocked.reasons) and not any("rests on" in r for r in blocked.reasons)
        with pytest.raises(ReleaseError, match="not a DataFrame"):
            release(ws._t, [pd.DataFrame({"a": [1]})], title="x", purpose="y")
        edited = hh.count(by=["urbanisation"], epsilon=0.5)
        rows = [dict(r) for r in edited.values["rows"]]
        rows[0]["value"] += 100
        object.__setattr__(edited, "values", {**edited.values, "rows": rows})
        with pytest.raises(ReleaseError, match="values were changed on the client"):
            release(ws._t, [edited], title="x", purpose="y")
        with pytest.raises(ReleaseError, match=f"already in request {req.id}"):
            release(ws._t, [safe], title="again", purpose="y")


def test_review_cli_against_the_vault(live: Live, capsys: pytest.CaptureFixture[str]) -> None:
    with live.ws() as ws:
        t = ws.dataset("households").count(by=["household_type"], epsilon=0.5)
        req = release(ws._t, [t], title="Tabel", purpose="Doel")
    base = ["review", "--url", live.url, "--token", live.tokens["bob"]]
    assert main([*base, "list"]) == 0
    assert req.id in capsys.readouterr().out
    assert main([*base, "show", req.id]) == 0
    shown = capsys.readouterr().out
    assert "gate=pass" in shown and "provenance:" in shown and "purpose: Doel" in shown
    assert main([*base, "return", req.id]) == 2  # -m is required
    capsys.readouterr()
    assert main([*base, "comment", req.id, "-m", "ziet er goed uit"]) == 0
    assert main([*base, "approve", req.id]) == 2  # -m is required for an approval too
    assert main([*base, "approve", req.id, "-m", "ok"]) == 2  # and must say something
    assert "too short" in capsys.readouterr().err
    assert main([*base, "approve", req.id, "-m", "Counts per household type answer the purpose; no SDC findings."]) == 0
    assert "released" in capsys.readouterr().out
    analyst = ["review", "--url", live.url, "--token", live.tokens["alice"]]
    assert main([*analyst, "approve", req.id]) == 2
    assert "approve is a reviewer action" in capsys.readouterr().err
    assert main(["verify", "--workspace", str(live.workspace)]) == 0
