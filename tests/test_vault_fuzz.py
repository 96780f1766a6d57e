"""Fuzz every endpoint of a real vault process from its OpenAPI schema (schemathesis + hypothesis).

Whatever the body, path or query, the vault answers with a proper status (never a 5xx), every error is the JSON
``{"error", "message"}`` shape, and no response carries the protected-row markers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from conftest import MARKER_ID, MARKER_INCOME, VaultProcess, register_population, write_policy
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def fuzz_vault(
    vault_factory: Callable[..., VaultProcess], small_population: Path, tmp_path_factory: pytest.TempPathFactory
) -> VaultProcess:
    policy = write_policy(
        tmp_path_factory.mktemp("policy") / "fuzz.yaml",
        limits={"max_dummy_rows": 2000, "max_request_bytes": 20000},
        epsilon_per_dataset=1e9,
        epsilon_per_query_max=1e6,
    )
    v = vault_factory(policy=policy)
    register_population(v.workspace, small_population, policy)
    return v.start()


def _check(case: Any, vault: VaultProcess) -> None:
    response = case.call(headers={"Authorization": f"Bearer {vault.token()}"}, timeout=120)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    assert str(MARKER_INCOME) not in response.text and str(MARKER_ID) not in response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "message"} and body["message"], body


def test_every_endpoint_answers_cleanly(fuzz_vault: VaultProcess) -> None:
    api = schemathesis.openapi.from_url(fuzz_vault.url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10
    for op in operations:

        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=op.as_strategy())
        def fuzz(case: Any) -> None:
            _check(case, fuzz_vault)

        fuzz()
