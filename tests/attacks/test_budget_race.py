"""Budget race: many processes spend at the same moment, hoping two charges both see the same remaining budget.

32 worker processes (plain ``urllib``, started together and released at one instant) each send distinct queries
of ε ≈ 0.1 against a dataset budget of 1.0, so at most 10 can be answered. Defence (DESIGN invariant 2): a
charge is one transaction that locks the dataset, checks the remaining budget and records the answer before it
returns; concurrent charges serialise. The slow variant splits the workers over two vault processes that share
one ledger file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from ._vault_http import assert_clean_error, charges, spent

BUDGET = 1.0
EPS = 0.1
WORKERS = 32
PER_WORKER = 3

_WORKER = r"""
import json, sys, time, urllib.request, urllib.error
url, token, start, bodies = sys.argv[1], sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
time.sleep(max(0.0, start - time.time()))
out = []
for body in bodies:
    req = urllib.request.Request(url + "/v1/query", data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            out.append([r.status, json.loads(r.read())])
    except urllib.error.HTTPError as e:
        out.append([e.code, e.read().decode()])
print(json.dumps(out))
"""


def _bodies(worker: int) -> list[dict[str, Any]]:
    # Distinct ε per request (nudged down, so 10 of them fit in 1.0): no request is a stored-answer hit.
    return [
        {"dataset": "households", "kind": "count", "epsilon": EPS * (1 - (worker * PER_WORKER + j + 1) * 1e-9)}
        for j in range(PER_WORKER)
    ]


def _race(urls: list[str], token: str) -> list[tuple[int, Any]]:
    start = time.time() + 8.0  # every worker has started Python and waits for this instant
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, urls[w % len(urls)], token, str(start), json.dumps(_bodies(w))],
            stdout=subprocess.PIPE,
        )
        for w in range(WORKERS)
    ]
    results: list[tuple[int, Any]] = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0
        results += [(int(s), body) for s, body in json.loads(out)]
    return results


def _check(vaults: list[Any], attack_figure: Callable[[str], None]) -> None:
    ws = vaults[0].workspace
    token = vaults[0].token("analyst")
    before = len(charges(ws))
    results = _race([v.url for v in vaults], token)
    ok = [body for status, body in results if status == 200]
    refused = [(status, body) for status, body in results if status != 200]
    assert all(status == 409 for status, _ in refused), {s for s, _ in refused}
    assert all("budget" in json.loads(body)["message"].lower() for _, body in refused)
    with vaults[0].client("analyst") as c:
        total = spent(c, "households")
        assert_clean_error(c.post("/v1/query", json=_bodies(WORKERS)[0]), 409, match="(?i)budget")
    answered = sum(b["charged_epsilon"] for b in ok)
    assert total <= BUDGET + 1e-12, f"overspent: {total} > {BUDGET}"
    assert answered == pytest.approx(total), "the vault's spent ε must equal what it answered"
    assert len(charges(ws)) - before == len(ok)
    assert len(ok) == round(BUDGET / EPS), f"{len(ok)} answered; the ledger should allow exactly 10"
    attack_figure(
        f"{WORKERS} processes x {PER_WORKER} queries over {len(vaults)} vault process(es): {len(ok)} answered, "
        f"{len(refused)} refused (409); ε spent {total:.9f} of {BUDGET:g}"
    )


@pytest.mark.system
@pytest.mark.attack("budget race", defence="one locking transaction per charge (invariant 2)")
def test_32_processes_cannot_overspend(attack_vault: Callable[..., Any], attack_figure: Callable[[str], None]) -> None:
    vault = attack_vault(budget={"epsilon_per_dataset": BUDGET, "epsilon_per_query_max": 0.5}, fresh=True)
    _check([vault], attack_figure)


@pytest.mark.slow
@pytest.mark.system
@pytest.mark.attack("budget race", defence="one locking transaction per charge (invariant 2)")
def test_32_processes_over_two_vaults_sharing_a_ledger(
    attack_vault: Callable[..., Any], vault_factory: Callable[..., Any], attack_figure: Callable[[str], None]
) -> None:
    first = attack_vault(budget={"epsilon_per_dataset": BUDGET, "epsilon_per_query_max": 0.5}, fresh=True)
    second = vault_factory(first.workspace, policy=first.policy).start()
    second.tokens = first.tokens
    _check([first, second], attack_figure)
