"""The worker pool and jobs, through real vault processes: no lock-out, cancellation, saturation, ownership, limits.

A "long fit" is a DP random forest of 200 trees of depth 15 on 20,000 households (minutes of CPU); every test that
starts one cancels it. The vault of most tests has ONE fit process, a queue of one, and lets an analyst run one job
and keep one waiting, so saturation is reached with three fits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import VaultProcess, register_population, write_policy, write_small_population

import sandbox as sb
from sandbox import ComputeLimitError

pytestmark = pytest.mark.system

LONG = {
    "dataset": "households",
    "epsilon": 1.0,
    "spec": {
        "estimator": "random_forest",
        "target": "arrears",
        "features": ["income", "urbanisation", "household_type", "n_persons"],
        "params": {"n_estimators": 200, "max_depth": 15},
    },
}
SMALL_FIT = {
    "dataset": "households",
    "epsilon": 0.5,
    "spec": {"estimator": "gaussian_nb", "target": "arrears", "features": ["income", "urbanisation"]},
}
WORKERS = {
    "fit_processes": 1,
    "query_processes": 1,
    "queue_per_lane": 1,
    "max_running_per_analyst": 1,
    "max_waiting_per_analyst": 1,
}


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_population(tmp_path_factory.mktemp("population20k"), 20_000)


def _vault(
    vault_factory: Callable[..., VaultProcess], population: Path, tmp: Path, workers: dict[str, Any]
) -> VaultProcess:
    policy = write_policy(tmp / "policy.yaml", epsilon_per_dataset=100.0, sections={"workers": workers})
    v = vault_factory(policy=policy)
    register_population(v.workspace, population, policy)
    return v.start()


@pytest.fixture(scope="module")
def vault(
    vault_factory: Callable[..., VaultProcess], population: Path, tmp_path_factory: pytest.TempPathFactory
) -> VaultProcess:
    return _vault(vault_factory, population, tmp_path_factory.mktemp("policy"), WORKERS)


def _submit(c: httpx.Client, body: dict[str, Any] = LONG) -> dict[str, Any]:
    r = c.post("/v1/fit", json=body, params={"wait": "false"})
    assert r.status_code == 202, r.text
    return dict(r.json())


def _until(c: httpx.Client, job_id: str, states: tuple[str, ...], timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = c.get(f"/v1/jobs/{job_id}", params={"wait": 1}).json()
        if view["state"] in states:
            return dict(view)
    raise AssertionError(f"job {job_id} did not reach {states} in {timeout} s: {view}")


def _spent(c: httpx.Client, dataset: str = "households") -> tuple[float, int]:
    """The population's spent epsilon and stored answers (one budget for every table of the population)."""
    b = c.get(f"/v1/budget/{dataset}").json()
    return float(b["epsilon_spent"]), int(b["answers"])


@pytest.fixture
def clean(vault: VaultProcess) -> Iterator[None]:
    """Cancel every job the test left running, so the next test finds free workers."""
    yield
    for name in ("alice", "bob", "carol"):
        with vault.client("analyst", name) as c:
            for job in c.get("/v1/jobs").json():
                if job["state"] in ("queued", "running"):
                    c.delete(f"/v1/jobs/{job['id']}")


def test_long_fit_does_not_lock_out_a_count_on_another_dataset(vault: VaultProcess, clean: None) -> None:
    with vault.client("analyst", "alice") as alice, vault.client("analyst", "bob") as bob:
        initial = _spent(alice)
        job = _submit(alice)
        _until(alice, job["id"], ("running",))
        started = time.monotonic()
        r = bob.post("/v1/query", json={"dataset": "persons", "kind": "count", "by": ["gender"], "epsilon": 0.1})
        elapsed = time.monotonic() - started
        same = bob.post("/v1/query", json={"dataset": "households", "kind": "count", "epsilon": 0.1})
        assert r.status_code == 200 and same.status_code == 200, (r.text, same.text)
        assert elapsed < 5.0, f"a count waited {elapsed:.1f} s behind a fit"  # a seconds-scale bound, not a benchmark
        assert alice.get(f"/v1/jobs/{job['id']}").json()["state"] == "running"  # the fit was still computing
        cancelled = alice.delete(f"/v1/jobs/{job['id']}").json()
        assert cancelled["state"] == "cancelled"
        assert "is kept" in cancelled["error"]["message"]
        # the fit's charge is kept, beside the count on households (and the one on persons if they share a budget)
        shared = "persons" in alice.get("/v1/budget/households").json()["tables"]
        assert _spent(alice) == (pytest.approx(initial[0] + 1.1 + 0.1 * shared), initial[1] + 1 + shared)


def test_client_that_disconnects_cancels_its_fit(vault: VaultProcess, clean: None) -> None:
    with vault.client("analyst", "carol") as carol:
        before = _spent(carol)
        with pytest.raises(httpx.ReadTimeout):
            carol.post("/v1/fit", json={**LONG, "epsilon": 0.9}, timeout=4.0)  # the client goes away mid-fit
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = [j for j in carol.get("/v1/jobs").json() if j["kind"] == "fit"]
            if jobs and jobs[-1]["state"] == "cancelled":
                break
            time.sleep(0.2)
        assert jobs[-1]["state"] == "cancelled", jobs
        assert carol.get("/v1/health").json()["workers"]["fit"]["busy"] == 0  # its worker stopped computing
        spent, answers = _spent(carol)
        assert spent == pytest.approx(before[0] + 0.9) and answers == before[1]  # the charge is kept, no answer


def test_saturated_vault_answers_503_and_an_analyst_over_limit_429(vault: VaultProcess, clean: None) -> None:
    with vault.client("analyst", "alice") as alice, vault.client("analyst", "bob") as bob:
        running = _submit(alice)
        _until(alice, running["id"], ("running",))
        waiting = _submit(alice, {**LONG, "epsilon": 0.8})  # alice may run one at a time: this one waits
        before, bobs = _spent(alice), bob.get("/v1/jobs").json()
        third = alice.post("/v1/fit", json={**LONG, "epsilon": 0.7}, params={"wait": "false"})
        full = bob.post("/v1/fit", json=SMALL_FIT)
        assert third.status_code == 429, third.text
        assert full.status_code == 503, full.text
        for r in (third, full):
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"] == "VaultBusyError" and "nothing was charged" in r.json()["message"]
        assert "max_waiting_per_analyst" in third.json()["message"]
        assert "All 1 fit workers of the vault are busy and 1 jobs are waiting" in full.json()["message"]
        assert _spent(alice) == before  # neither refusal wrote anything
        assert bob.get("/v1/jobs").json() == bobs  # and made no job
        assert alice.get(f"/v1/jobs/{waiting['id']}").json()["state"] == "queued"


def test_a_job_is_visible_to_its_owner_only(vault: VaultProcess, clean: None) -> None:
    with vault.client("analyst", "alice") as alice, vault.client("analyst", "bob") as bob:
        job = _submit(alice, SMALL_FIT)
        done = _until(alice, job["id"], ("done", "failed"))
        assert done["state"] == "done", done
        theirs, unknown = bob.get(f"/v1/jobs/{job['id']}"), bob.get("/v1/jobs/job_0123456789abcdef01234567")
        cancel = bob.delete(f"/v1/jobs/{job['id']}")
        assert theirs.status_code == unknown.status_code == cancel.status_code == 404
        assert theirs.json()["message"].replace(job["id"], "X") == unknown.json()["message"].replace(
            "job_0123456789abcdef01234567", "X"
        )  # another's job is exactly as unknown as a job that never was
        assert job["id"] not in {j["id"] for j in bob.get("/v1/jobs").json()}
        with vault.client("admin", "ops") as admin:
            assert admin.get(f"/v1/jobs/{job['id']}").status_code == 404
        stored = alice.get(f"/v1/results/{done['result']['id']}").json()  # the answer is in the ledger for good
        assert stored["sha256"] == done["result"]["sha256"]


def test_fit_wait_false_from_the_library(vault: VaultProcess, clean: None) -> None:
    ws = sb.connect(url=vault.url, token=vault.token("analyst", "alice"))
    hh = ws.dataset("households")
    job = hh.fit({**SMALL_FIT["spec"], "params": {}}, epsilon=0.3, wait=False)
    model = job.result(timeout=120)
    assert job.status == "done" and model.id == job._view["result"]["id"]
    blocking = hh.fit({**SMALL_FIT["spec"], "params": {}}, epsilon=0.3)  # the same question: the stored answer
    assert blocking.id == model.id
    assert ws.job(job.id).result().id == model.id
    ws.close()


def test_workers_read_the_registered_file_in_place(vault: VaultProcess, clean: None) -> None:
    """The query and the fit worker both answer from the registered Parquet file: no copy of the rows is written."""
    before = _files(vault.layout.root)
    with vault.client("analyst", "alice") as alice:
        for eps in (0.11, 0.12):
            assert alice.post("/v1/query", json={"dataset": "households", "kind": "count", "epsilon": eps}).is_success
        assert alice.post("/v1/fit", json={**SMALL_FIT, "epsilon": 0.21}).is_success
    with vault.client("admin", "ops") as admin:
        pids = admin.get("/v1/health").json()["worker_pids"]
    assert pids["query"] and pids["fit"], pids  # both lanes have a worker of their own
    registered = vault.layout.root / "data" / "households" / "1" / "data.parquet"
    size = registered.stat().st_size
    new = [p for p in _files(vault.layout.root) - before if p.stat().st_size >= size // 4]
    assert new == [], f"files as large as the table appeared: {new}"  # nothing converted or copied per worker


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"fit_wall_seconds": 3, "fit_cpu_seconds": 3600}, r"wall-time limit of 3 s \(workers.fit_wall_seconds"),
        ({"fit_wall_seconds": 600, "fit_cpu_seconds": 2}, r"CPU limit of 2 s \(workers.fit_cpu_seconds\)"),
    ],
    ids=["wall", "cpu"],
)
def test_fit_over_its_limit_states_the_limit_and_the_charge_kept(
    vault_factory: Callable[..., VaultProcess],
    population: Path,
    tmp_path: Path,
    limits: dict[str, float],
    message: str,
) -> None:
    v = _vault(vault_factory, population, tmp_path, {"fit_processes": 1, "query_processes": 1, **limits})
    try:
        ws = sb.connect(url=v.url, token=v.token())
        hh = ws.dataset("households")
        before = hh.budget()["epsilon_spent"]
        with pytest.raises(ComputeLimitError, match=message) as err:
            hh.fit(LONG["spec"], epsilon=1.0)
        assert "Its charge of epsilon=1 on dataset 'households' v1 is kept" in str(err.value)
        assert hh.budget()["epsilon_spent"] == pytest.approx(before + 1.0)
        assert hh.count(epsilon=0.1).to_pandas()["value"].iloc[0] > 0  # the vault goes on serving
        ws.close()
    finally:
        v.stop()


def test_worker_processes_end_with_the_vault(vault_factory: Callable[..., VaultProcess], population: Path) -> None:
    v = vault_factory()
    register_population(v.workspace, population)
    v.start()
    with v.client("admin", "ops") as admin:
        pids = [p for lane in admin.get("/v1/health").json()["worker_pids"].values() for p in lane]
    v.kill()  # SIGKILL: no shutdown code runs in the vault
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") and _alive(p) for p in pids):
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "worker processes outlived the vault"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def test_a_release_request_computes_the_deferred_disclosure_statistics_in_a_worker(
    vault: VaultProcess, population: Path, clean: None
) -> None:
    """A served answer is stored without its disclosure statistics; the release request computes them in a worker.

    Reference: the same statistics computed in this process by the engine with the answer (``disclosure=True``)
    on the same file. The reviewer's exact findings state the true households of every cell below the minimum,
    which only the completed statistics carry; the analyst's responses carry none of them.
    """
    from sandbox._private.shared.policy import load_policy
    from sandbox._private.shared.query import AggregateQuery
    from sandbox._private.shared.schema import TableSchema
    from sandbox._private.vault.dp.engine import DPEngine
    from sandbox._private.vault.dp.tabledata import TableData

    where = {"op": "between", "column": "income", "lower": 110000.0, "upper": 150000.0}
    body = {"dataset": "persons", "kind": "sum", "column": "income", "by": ["gender"], "where": where}
    schema = TableSchema.load(population / "schema" / "persons.json")
    table = TableData.load(population / "persons.parquet", schema)
    query = AggregateQuery.from_dict({**body, "epsilon": 0.25})
    policy = load_policy(vault.policy)
    reference = DPEngine(policy).answer(query, table).private
    small = {tuple(c["key"]): c["units"] for c in reference["cells"] if 0 < c["units"] < policy.disclosure.min_count}
    assert small, reference["cells"]  # the population has cells of a few high incomes (precondition)
    with vault.client("analyst", "carol") as carol, vault.client("reviewer", "rita") as rita:
        r = carol.post("/v1/query", json={**query.to_dict()})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert "units" not in r.text and "top1" not in r.text
        items = [{"id": answer["id"], "sha256": answer["sha256"]}]
        created = carol.post("/v1/releases", json={"items": items, "title": "Hoge inkomens", "purpose": "Test"})
        assert created.status_code == 200, created.text
        assert "reviewer_findings" not in created.text and "rests on" not in created.text
        view = rita.get(f"/v1/releases/{created.json()['id']}").json()
    (item,) = view["reviewer_findings"]["items"]
    reasons = " ".join(item["reasons"])
    for key, units in small.items():
        assert f"cell ({', '.join(key)}) rests on {units} households" in reasons, (key, units, reasons)


def test_audits_after_release_requests_are_answered(vault: VaultProcess, clean: None) -> None:
    """A fit, a count, a release request of it (a disclosure job in a fit worker), then an audit: answered, 3 times.

    On uvloop the pool's worker pipes were non-blocking (see ``tests/test_vault_pool_loop.py``): in about half of the
    runs the audit's task reached the worker half-written, the pool stopped reading that worker and the audit
    waited for ever. Each round here must answer within the client's timeout of 60 s (it takes well under 5 s).
    """
    with vault.client("analyst", "dora") as dora:
        for i in range(3):
            fit = dora.post("/v1/fit", json={**SMALL_FIT, "epsilon": 0.5 + i / 100}, timeout=60)
            assert fit.status_code == 200, fit.text
            count = {"dataset": "households", "kind": "count", "by": ["household_type"], "epsilon": 0.3 + i / 100}
            answer = dora.post("/v1/query", json=count, timeout=60).json()
            item = {"id": answer["id"], "sha256": answer["sha256"]}
            created = dora.post(
                "/v1/releases", json={"items": [item], "title": f"Ronde {i}", "purpose": "Test"}, timeout=60
            )
            assert created.status_code == 200, created.text
            model = fit.json()["id"]
            audit = dora.post(f"/v1/models/{model}/audit", json={"protected": ["household_type"]}, timeout=60)
            assert audit.status_code == 200, audit.text
            got = audit.json()
            assert got["kind"] == "audit" and not got["reused"] and got["charged_epsilon"] > 0, got
