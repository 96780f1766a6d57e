"""The analyst's client (``import sandbox as sb``) against a real vault process."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import VaultProcess, register_population, write_policy

import sandbox as sb
from sandbox._private.kernel import spend
from sandbox._private.kernel.launch import stop_local_vault
from sandbox._private.kernel.results import DPResult
from sandbox._private.shared.files import pid_alive
from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.vault.ledger.ledger import Ledger

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def vault(
    vault_factory: Callable[..., VaultProcess], small_population: Path, tmp_path_factory: pytest.TempPathFactory
) -> VaultProcess:
    policy = write_policy(
        tmp_path_factory.mktemp("policy") / "p.yaml", epsilon_per_dataset=1e7, epsilon_per_query_max=1e6
    )
    v = vault_factory(policy=policy)
    register_population(v.workspace, small_population, policy)
    return v.start()


@pytest.fixture
def ws(vault: VaultProcess) -> Any:
    with sb.connect(url=vault.url, token=vault.token(), run_id="client-test") as w:
        yield w


def test_datasets_schema_and_dummy(ws: Any) -> None:
    assert ws.datasets() == ["households", "persons", "signals"]
    hh = ws.dataset("households")
    assert isinstance(hh.schema, sb.TableSchema) and hh.schema.column("income").bounds == (0.0, 200_000.0)
    df = hh.dummy(50, seed=3)
    assert df.shape == (50, 6) and list(df.columns) == list(hh.schema.names)
    assert list(df["urbanisation"].cat.categories) == list(hh.schema.column("urbanisation").categories)


def test_result_is_immutable_and_tabular(ws: Any) -> None:
    t = ws.dataset("households").count(by=["household_type", "urbanisation"], epsilon=0.5)
    assert isinstance(t, sb.DPResult) and t.epsilon == 0.5 and t.delta == 0.0 and t.id.startswith("r_")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.epsilon = 0.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        t.values["rows"] = ()  # type: ignore[index]
    df = t.to_pandas()
    assert len(df) == 25 and {"household_type", "urbanisation", "value", "noise_scale", "ci95"} <= set(df.columns)
    assert t.run_id == "client-test"
    html = t._repr_html_()
    assert "ε=0.5" in html and "±" in html and t.id in html


def test_html_escapes_values() -> None:
    payload = {
        "id": "r_x",
        "sha256": "0" * 64,
        "dataset": "households",
        "version": 1,
        "kind": "aggregate",
        "query": {"kind": "count", "column": None, "by": ["g"]},
        "epsilon": 1.0,
        "delta": 0.0,
        "mechanism": "Geometric",
        "values": {
            "columns": ["g", "value", "noise_scale", "ci95"],
            "rows": [{"g": "<script>alert(1)</script>", "value": 3, "noise_scale": 1.0, "ci95": 2.9}],
        },
    }
    html = DPResult.from_payload(payload)._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html and "±2.9" in html


def test_huge_epsilon_mean_matches_pandas(ws: Any, small_population: Path) -> None:
    hh = pd.read_parquet(small_population / "households.parquet")
    got = ws.dataset("households").mean("income", by="household_type", epsilon=1e6).to_pandas()
    exact = hh.groupby("household_type")["income"].mean()
    for _, row in got.iterrows():
        assert row["value"] == pytest.approx(exact[row["household_type"]], rel=1e-4)


def test_median_is_the_stored_half_quantile(ws: Any) -> None:
    hh = ws.dataset("households")
    q = hh.quantile("income", 0.5, epsilon=0.2)
    m = hh.median("income", epsilon=0.2)
    assert m.id == q.id and m.reused and m.charged_epsilon == 0.0


@pytest.mark.parametrize("eps", [0, -1.0, math.nan, math.inf, -math.inf])
def test_client_refuses_bad_epsilon_before_sending(ws: Any, vault: VaultProcess, eps: float) -> None:
    before = ws.budget("households")
    with pytest.raises(sb.QueryError, match="epsilon must be finite and greater than 0"):
        ws.dataset("households").count(epsilon=eps)
    assert ws.budget("households") == before


def test_server_errors_become_matching_exceptions(ws: Any, vault: VaultProcess) -> None:
    with pytest.raises(sb.NotFoundError, match="No dataset 'nope'"):
        ws.dataset("nope")
    with pytest.raises(sb.QueryError, match="no column 'incme'"):
        ws.dataset("households").mean("incme", epsilon=0.1)
    with pytest.raises(sb.QueryError, match="per-query maximum"):
        ws.dataset("households").count(epsilon=2e6)
    bad = sb.connect(url=vault.url, token="sbx_" + "x" * 43)
    with pytest.raises(sb.AuthError, match="Unknown token"):
        bad.datasets()
    bad.close()


def test_cost_spends_nothing(ws: Any) -> None:
    hh = ws.dataset("households")
    before = ws.budget("households")
    c = hh.cost("variance", "income", by=["urbanisation"], epsilon=0.7)
    spec = {"estimator": "gaussian_nb", "target": "arrears", "features": ["income", "urbanisation"]}
    f = hh.cost(spec, epsilon=0.9)
    assert (c.epsilon, c.delta, f.epsilon, f.delta) == (0.7, 0.0, 0.9, 0.0)
    assert ws.budget("households") == before


def test_fit_and_predict_on_dummy(ws: Any, vault: VaultProcess) -> None:
    hh = ws.dataset("households")
    spec = {"estimator": "logistic_regression", "target": "arrears", "features": ["income", "household_type"]}
    m = hh.fit(spec, epsilon=1.0)
    assert isinstance(m, sb.FittedModel) and m.epsilon == 1.0 and m.kind == "model"
    dummy = hh.dummy(40, seed=1)
    proba = m.predict_proba(dummy)
    assert proba.shape == (40, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert set(np.unique(m.predict(dummy))) <= {False, True}
    again = ws.result(m.id)
    assert isinstance(again, sb.FittedModel) and again.sha256 == m.sha256
    assert "private" not in json.dumps(m.to_dict())
    row = Ledger(vault.layout.ledger).result(m.id)
    assert row.run_id == "client-test" and row.kind == "model"


def test_spend_is_reported_to_the_notebook_display(ws: Any) -> None:
    spend.drain()
    r = ws.dataset("persons").count(by=["gender"], epsilon=0.25)
    ws.dataset("persons").count(by=["gender"], epsilon=0.25)
    seen = spend.drain()
    assert [s.epsilon for s in seen] == [0.25, 0.0]
    assert seen[-1].remaining == pytest.approx(ws.budget("persons")["epsilon_remaining"])
    assert r.charged_epsilon == 0.25


def test_connect_without_arguments_starts_and_reuses_a_local_vault(
    small_population: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("SANDBOX_VAULT_URL", "SANDBOX_TOKEN", "SANDBOX_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    register_population(tmp_path / "workspace", small_population)
    layout = WorkspaceLayout(tmp_path.resolve() / "workspace")
    try:
        first = sb.connect()
        pid = json.loads(layout.discovery.read_text())["pid"]
        second = sb.connect()
        assert second.url == first.url and json.loads(layout.discovery.read_text())["pid"] == pid
        assert first.datasets() == ["households", "persons", "signals"]
        assert oct(layout.client_token.stat().st_mode & 0o777) == "0o600"
        assert oct(layout.tokens.stat().st_mode & 0o777) == "0o600"
        first.close()
        second.close()
    finally:
        stopped = stop_local_vault(layout.workspace)
    assert stopped and not pid_alive(pid)
    assert not layout.discovery.exists()  # a clean shutdown retracts vault.json
