"""The neighbouring-dataset conformance harness: does anything an analyst token sees depend on one household?

DESIGN invariant 10: everything an analyst token can observe is public or post-processing of DP answers that the
ledger charged. The harness tests it end to end, through real vault processes:

1. two vaults, one on D and one on D' = D plus the lone household of :mod:`.population` (unique on every
   category column, at the top of every bound, the only member of a class of two targets, the only one with a
   value in a nullable column);
2. the same **battery** of analyst actions on both (:func:`battery`): every aggregate kind restricted to that
   household's categories, with and without a group-by; histograms with many bin counts; person-level
   aggregates; a Gaussian query; every model kind, including targets with a class only that household has and a
   regression on the column only it fills in; fairness audits; a release request of every item; listing, showing,
   withdrawing and commenting requests, and one approved by a reviewer; the cost, budget, result and dummy
   endpoints; the error paths (unknown names, bad epsilon, forged and foreign items, items held twice, the daily
   cap of requests, an exhausted budget, audits of models that cannot be audited, malformed bodies);
3. **byte-identity** (:func:`compare`): with the vaults' noise made data-blind (:mod:`.patches`: both draw the
   same DP values for the same question), every response of the battery, status code and body, must be
   identical once ids, hashes and timestamps are replaced by placeholders. Model parameters, the one DP value
   diffprivlib draws inside the fit, are compared by shape;
4. **statistics** (:func:`repeated`): with real noise, repeated actions (a restricted count, the gate's outcome
   on it, a restricted mean and the gate's outcome from its DP disclosure test, a model coefficient) give
   samples on D and D'; an empirical ε lower bound (threshold test chosen on half the samples, Clopper-Pearson on
   the other half) must not exceed the ε the ledger charged for that output;
5. a **negative control** (``leaky_gate``): a gate that again decides the analyst's verdict on the true counts
   must make the comparison fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent))  # tests/: the shared VaultProcess

from conftest import VaultProcess  # noqa: E402

from .population import CATEGORY_WHERE, write_neighbours  # noqa: E402

__all__ = [
    "harness_policy",
    "Observation",
    "Pair",
    "Size",
    "SMALL",
    "LONG",
    "start_pair",
    "scratch",
    "battery",
    "normalise",
    "compare",
    "repeated",
]


def harness_policy(cap: int = 40) -> dict[str, Any]:
    """Return the harness's policy.

    A budget the battery cannot exhaust except on purpose (analyst ``dora``: 60 per analyst, 20 per query), and a
    daily cap of requests that analyst ``carl`` reaches (``cap``).
    """
    return {
        "version": 1,
        "name": "neighbours",
        "budget": {
            "epsilon_per_dataset": 1_000_000.0,
            "epsilon_per_analyst": 60.0,
            "epsilon_per_query_max": 20.0,
            "epsilon_per_release_max": 8.0,
        },
        "gate": {"max_requests_per_day": cap, "flag_blocked_per_day": 3, "sdc_test_epsilon": SDC_TEST_EPSILON},
    }


SDC_TEST_EPSILON = 0.1
HH, PERSONS = "households", "persons"


@dataclass(frozen=True)
class Size:
    """How much the battery and the repetitions do: ``SMALL`` in ``make test``, ``LONG`` in ``make attack``."""

    name: str
    bins: tuple[int, ...]
    estimators: tuple[str, ...]
    repeats: int
    households: int
    cap: int

    @property
    def policy(self) -> dict[str, Any]:
        """Return the battery's policy at this size."""
        return harness_policy(self.cap)


_CLASSIFIERS = ("logistic_regression", "gaussian_nb", "random_forest")
SMALL = Size("small", (2, 7, 20, 137, 1000), _CLASSIFIERS, 30, 300, 30)
LONG = Size("long", (2, 3, 5, 7, 10, *range(20, 1001, 30)), _CLASSIFIERS, 600, 2000, 30)


@dataclass(frozen=True)
class Observation:
    """One response the analyst saw: which step, the HTTP status and the parsed body."""

    step: str
    status: int
    body: Any
    seconds: float = 0.0
    role: str = "analyst"


@dataclass
class Pair:
    """Two running vaults: ``d`` on D and ``d1`` on D'."""

    d: VaultProcess
    d1: VaultProcess

    def mode(self, *, blind: bool, leaky_gate: bool = False) -> None:
        """Switch both vaults' noise (data-blind or real) and the negative control's leaky gate, from now on."""
        for v in (self.d, self.d1):
            for flag, on in (("blind", blind), ("leaky-gate", leaky_gate)):
                path = v.workspace / "harness-flags" / flag
                path.touch() if on else path.unlink(missing_ok=True)


@contextmanager
def scratch(fallback: Path) -> Iterator[Path]:
    """A folder in memory (``/dev/shm``) when there is one, else ``fallback``; removed afterwards.

    The vaults fsync every charge and log line; on a shared disk that is most of the harness's time, and durability
    is not what it tests (the crash tests do).
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield fallback
        return
    folder = Path(tempfile.mkdtemp(prefix="sandbox-neighbours-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write_policy(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@contextmanager
def start_pair(root: Path, size: Size) -> Iterator[Pair]:
    """Start the two vaults (in parallel) with the harness's launcher; both are stopped when the block ends.

    Both start with data-blind noise (:meth:`Pair.mode` switches it, and the leaky gate of the negative control).
    """
    from sandbox._private.vault.server import open_service

    with scratch(root) as folder:
        yield from _pair(folder, size, open_service)


def _pair(root: Path, size: Size, open_service: Any) -> Iterator[Pair]:
    pop_d, pop_d1 = write_neighbours(root / "population", n=size.households)
    vaults = []
    for name, population in (("d", pop_d), ("d_prime", pop_d1)):
        ws = root / f"ws-{name}"
        (ws / "harness-flags").mkdir(parents=True)
        policy_file = _write_policy(ws / "policy.yaml", size.policy)
        open_service(ws, policy=policy_file).registry.add_population(population)
        launcher = (str(_HERE / "launch.py"), "--flags", str(ws / "harness-flags"), "--")
        vaults.append(VaultProcess(ws, policy=policy_file, launcher=launcher))
    pair = Pair(vaults[0], vaults[1])
    pair.mode(blind=True)
    with ExitStack() as stack:
        for v in vaults:
            stack.callback(v.stop)
        _start_all(vaults)
        yield pair


def _start_all(vaults: Sequence[VaultProcess]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(vaults)) as pool:
        for future in [pool.submit(v.start) for v in vaults]:
            future.result()


# -- the battery ---------------------------------------------------------------------------------------------


@dataclass
class _Session:
    """What one run of the battery saw, and the results it can refer back to (by step name)."""

    vault: VaultProcess
    size: Size
    analyst: str = "alice"
    seen: list[Observation] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def close(self) -> None:
        for c in self.clients.values():
            c.close()

    def call(self, who: str, method: str, path: str, step: str, **kw: Any) -> Any:
        role = "reviewer" if who in _REVIEWERS else "analyst"
        if who not in self.clients:
            self.clients[who] = self.vault.client(role, who)
        start = time.perf_counter()
        r = self.clients[who].request(method, path, **kw)
        took = time.perf_counter() - start
        try:
            body: Any = r.json()
        except ValueError:
            body = r.text
        self.seen.append(Observation(f"{who}: {step}", r.status_code, body, took, role))
        return body if r.status_code < 400 else None

    def query(self, step: str, body: dict[str, Any], who: str | None = None) -> dict[str, Any] | None:
        who = who or self.analyst
        if who == self.analyst and self.analyst != "alice":  # new questions: stored answers are shared (invariant 3)
            body = {**body, "epsilon": body["epsilon"] * (1 + 1e-7)}
        self.call(who, "POST", "/v1/cost", f"cost {step}", json=body)
        out = self.call(who, "POST", "/v1/query", step, json=body)
        if out is not None:
            self.results[step] = out
        return out

    def fit(self, step: str, spec: dict[str, Any], epsilon: float = 1.0, dataset: str = HH) -> dict[str, Any] | None:
        body = {"dataset": dataset, "spec": spec, "epsilon": epsilon}
        self.call(self.analyst, "POST", "/v1/fit/cost", f"cost {step}", json=body)
        out = self.call(self.analyst, "POST", "/v1/fit", step, json=body)
        if out is not None:
            self.results[step] = out
        return out

    def ref(self, step: str) -> dict[str, Any]:
        r = self.results[step]
        return {"id": r["id"], "sha256": r["sha256"], "values": r["values"]}

    def release(self, step: str, items: Sequence[str], who: str | None = None) -> dict[str, Any] | None:
        who = who or self.analyst
        body = {"items": [self.ref(s) for s in items], "title": f"Harness {step}", "purpose": "neighbours"}
        return self.call(who, "POST", "/v1/releases", f"release {step}", json=body)


_REVIEWERS = ("rita",)


def _aggregates(s: _Session) -> list[str]:
    """Every aggregate kind restricted to the lone household's categories (ungrouped and by a group column)."""
    steps = []
    for kind in ("count", "sum", "mean", "variance", "quantile", "histogram"):
        for by in ([], ["arrears"]):
            extra: dict[str, Any] = {"q": 0.5} if kind == "quantile" else {"bins": 4} if kind == "histogram" else {}
            column = None if kind == "count" else "income"
            body = {"dataset": HH, "kind": kind, "column": column, "by": by, "epsilon": 0.3, "where": CATEGORY_WHERE}
            step = f"{kind} by {by or 'none'} where lone"
            if s.query(step, {k: v for k, v in {**body, **extra}.items() if v is not None}):
                steps.append(step)
    for kind, column in (("count", None), ("sum", "savings"), ("mean", "savings"), ("quantile", "savings")):
        extra = {"q": 0.9} if kind == "quantile" else {}
        body = {"dataset": HH, "kind": kind, "epsilon": 0.3, "by": ["household_type"], **extra}
        step = f"{kind} {column or ''} by household_type"
        if s.query(step, {**body, **({"column": column} if column else {})}):
            steps.append(step)
    for kind in ("count", "sum", "mean", "histogram"):
        extra = {"bins": 6} if kind == "histogram" else {}
        body = {"dataset": PERSONS, "kind": kind, "epsilon": 0.3, "where": {"role": ["lodger"]}, **extra}
        step = f"persons {kind} where lodger"
        if s.query(step, {**body, **({} if kind == "count" else {"column": "age"})}):
            steps.append(step)
    gaussian = {"dataset": HH, "kind": "count", "by": ["urbanisation"], "epsilon": 0.3, "delta": 1e-8}
    if s.query("gaussian count by urbanisation", gaussian):
        steps.append("gaussian count by urbanisation")
    s.query("stored answer: the same count again", {**gaussian, "by": ["urbanisation"]})
    return steps


def _histograms(s: _Session, size: Size) -> list[str]:
    steps = []
    for bins in size.bins:
        body = {"dataset": HH, "kind": "histogram", "column": "income", "bins": bins, "epsilon": 0.05}
        step = f"histogram of income, {bins} bins, where lone"
        if s.query(step, {**body, "where": CATEGORY_WHERE}):
            steps.append(step)
    return steps


_FEATURES = ["household_type", "urbanisation", "migration_background", "income", "savings", "n_persons"]


def _models(s: _Session, size: Size) -> tuple[list[str], list[str]]:
    """Fit every model kind; return (binary classifiers, other models)."""
    binary, other = [], []
    for est in size.estimators:
        for target in ("eviction", "arrears", "debt_status"):
            step = f"fit {est} on {target}"
            if s.fit(step, {"estimator": est, "target": target, "features": _FEATURES}):
                (binary if target != "debt_status" else other).append(step)
    for target, features in (("savings", ["household_type", "income"]), ("income", _FEATURES)):
        step = f"fit linear_regression on {target}"
        if s.fit(step, {"estimator": "linear_regression", "target": target, "features": features}):
            other.append(step)
    return binary, other


def _audits(s: _Session, binary: Sequence[str], other: Sequence[str]) -> dict[str, str]:
    audits = {}
    for step in binary:
        model = s.results[step]
        out = s.call(s.analyst, "POST", f"/v1/models/{model['id']}/audit", f"audit {step}", json={"epsilon": 0.4})
        if out is not None:
            s.results[f"audit {step}"] = out
            audits[step] = f"audit {step}"
    for step in other[:2]:  # a multi-class model and a regression cannot be audited: the same refusal on both
        s.call(s.analyst, "POST", f"/v1/models/{s.results[step]['id']}/audit", f"audit {step}", json={})
    return audits


def _releases(
    s: _Session, aggregates: Sequence[str], audits: dict[str, str], histograms: Sequence[str] = ()
) -> list[str]:
    """A request of each aggregate, one of all histograms, one of each model with its audit."""
    requests = []
    for step in aggregates:
        if (out := s.release(step, [step])) is not None:
            requests.append(out["id"])
    if histograms and (out := s.release("every histogram", histograms)) is not None:
        requests.append(out["id"])
    for model, audit in audits.items():
        if (out := s.release(model, [model, audit])) is not None:
            requests.append(out["id"])
    s.release("an item held twice", aggregates[:1])
    s.call(s.analyst, "GET", "/v1/releases", "list requests")
    s.call(s.analyst, "GET", "/v1/releases", "list closed requests too", params={"closed": "true"})
    for i, rid in enumerate(requests):
        s.call(s.analyst, "GET", f"/v1/releases/{rid}", f"show request {i}")
    if requests:
        s.call(s.analyst, "POST", f"/v1/releases/{requests[0]}/actions", "comment", json={"action": "comment",
               "comment": "Cells are merged in the next version."})  # fmt: skip
        s.call(s.analyst, "POST", f"/v1/releases/{requests[-1]}/actions", "withdraw", json={"action": "withdraw"})
        s.call("rita", "POST", f"/v1/releases/{requests[0]}/actions", "reviewer comment", json={"action": "comment",
               "comment": "Noted."})  # fmt: skip
        s.call(s.analyst, "GET", f"/v1/releases/{requests[0]}", "show request after comments")
    return requests


def _approved_release(s: _Session) -> None:
    """A request whose exact checks pass on D and D' alike, approved by a reviewer: the analyst sees it released."""
    body = {"dataset": HH, "kind": "count", "by": ["arrears"], "epsilon": 0.5}
    if s.query("count by arrears (large cells)", body) is None:
        return
    out = s.release("large cells", ["count by arrears (large cells)"])
    if out is None:
        return
    approve = {"action": "approve", "comment": "Large cells only; the purpose is met and the spend is small."}
    s.call("rita", "POST", f"/v1/releases/{out['id']}/actions", "approve", json=approve)
    s.call(s.analyst, "GET", f"/v1/releases/{out['id']}", "show the released request")


def _errors(s: _Session, steps: Sequence[str]) -> None:
    q = {"dataset": HH, "kind": "count", "epsilon": 0.1}
    s.call(s.analyst, "POST", "/v1/query", "unknown dataset", json={**q, "dataset": "nobody"})
    s.call(s.analyst, "POST", "/v1/query", "unknown column", json={**q, "by": ["nationality"]})
    s.call(s.analyst, "POST", "/v1/query", "unknown category", json={**q, "where": {"urbanisation": ["mars"]}})
    s.call(s.analyst, "POST", "/v1/query", "epsilon too small", json={**q, "epsilon": 1e-9})
    s.call(s.analyst, "POST", "/v1/query", "epsilon above the cap", json={**q, "epsilon": 50.0})
    s.call(s.analyst, "POST", "/v1/query", "malformed body", content=b"{not json", headers={"content-type":
           "application/json"})  # fmt: skip
    s.call(s.analyst, "POST", "/v1/fit", "forbidden feature", json={"dataset": HH, "epsilon": 1.0, "spec": {
           "estimator": "logistic_regression", "target": "arrears", "features": ["nationality"]}})  # fmt: skip
    s.call(s.analyst, "POST", "/v1/models/r_doesnotexist0000000000000/audit", "audit of an unknown id", json={})
    s.call(s.analyst, "GET", "/v1/results/r_doesnotexist0000000000000", "unknown result")
    s.call(s.analyst, "GET", "/v1/budget/nobody", "budget of an unknown dataset")
    forged = {"items": [{"id": "r_" + "A" * 24, "sha256": "0" * 64}], "title": "Forged", "purpose": "x"}
    s.call(s.analyst, "POST", "/v1/releases", "release a forged id", json=forged)
    if steps:
        ref = s.ref(steps[0])
        s.call("bob", "POST", "/v1/releases", "release another analyst's item", json={"items": [ref], "title": "Not "
               "mine", "purpose": "x"})  # fmt: skip
        edited = {**ref, "values": {**ref["values"], "rows": []}}
        s.call(s.analyst, "POST", "/v1/releases", "release edited values", json={"items": [edited], "title": "Edited",
               "purpose": "x"})  # fmt: skip
    s.call(s.analyst, "GET", "/v1/releases/req_0123456789abcdef", "unknown request")


def _cap(s: _Session) -> None:
    """Analyst carl makes the daily cap of requests (withdrawing each), then one more: refused, nothing charged."""
    if s.query("carl's count", {"dataset": HH, "kind": "count", "by": ["gender"], "epsilon": 0.2}, who="carl") is None:
        return
    for i in range(s.size.cap):
        out = s.release(f"carl {i}", ["carl's count"], who="carl")
        if out is not None:
            s.call("carl", "POST", f"/v1/releases/{out['id']}/actions", f"carl withdraws {i}", json={"action":
                   "withdraw"})  # fmt: skip
    s.release("carl over the cap", ["carl's count"], who="carl")
    s.call("carl", "GET", f"/v1/budget/{HH}", "carl's budget after the refusal")


def _exhaust(s: _Session) -> None:
    """Analyst dora spends her analyst budget (60) in three queries of ε=20; the fourth is refused."""
    for i in range(4):
        body = {"dataset": HH, "kind": "count", "by": ["arrears"], "epsilon": 20.0 - i * 1e-6, "where":
                {"urbanisation": ["none"]}}  # fmt: skip
        s.query(f"dora {i}", body, who="dora")
    s.call("dora", "GET", f"/v1/budget/{HH}", "dora's budget")


def battery(vault: VaultProcess, size: Size, *, gate_only: bool = False, analyst: str = "alice") -> list[Observation]:
    """Run the analyst actions on one vault (see the module docstring); return what the analysts saw.

    ``gate_only`` runs the restricted aggregates and their release requests only (the negative control).
    """
    s = _Session(vault, size, analyst)
    try:
        _run(s, size, gate_only)
    finally:
        s.close()
    return s.seen


def _run(s: _Session, size: Size, gate_only: bool) -> None:
    if not gate_only:
        s.call(s.analyst, "GET", "/v1/health", "health")
        s.call(s.analyst, "GET", "/v1/datasets", "datasets")
        for name in (HH, PERSONS, "signals"):
            s.call(s.analyst, "GET", f"/v1/datasets/{name}/schema", f"schema {name}")
        s.call(s.analyst, "GET", f"/v1/datasets/{HH}/dummy", "dummy rows", params={"n": 25, "seed": 4})
    aggregates = _aggregates(s)
    histograms = _histograms(s, size) if not gate_only else []
    binary, other = ([], []) if gate_only else _models(s, size)
    audits = _audits(s, binary, other)
    for step in [*aggregates, *histograms, *binary, *other, *audits.values()]:
        s.call(s.analyst, "GET", f"/v1/results/{s.results[step]['id']}", f"result of {step}")
    _releases(s, aggregates, audits, histograms)
    if not gate_only:
        _approved_release(s)
        _errors(s, aggregates)
        _cap(s)
        _exhaust(s)
    for name in (HH, PERSONS):
        s.call(s.analyst, "GET", f"/v1/budget/{name}", f"budget {name}")


# -- byte-identity ---------------------------------------------------------------------------------------------

_PLACEHOLDERS = (
    (re.compile(r"(?<![A-Za-z0-9_-])r_[A-Za-z0-9_-]{24}(?![A-Za-z0-9_-])"), "<result-id>"),
    (re.compile(r"req_[0-9a-f]{16}"), "<request-id>"),
    (re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])"), "<sha256>"),
    (re.compile(r"[0-9a-f]{12}\.\.\."), "<sha256-prefix>..."),
    (re.compile(r"incident [0-9a-f]{16}"), "incident <id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?"), "<time>"),
)


def _text(value: str) -> str:
    for pattern, placeholder in _PLACEHOLDERS:
        value = pattern.sub(placeholder, value)
    return value


def _shape(value: Any) -> Any:
    """A model's parameters by shape: nested list lengths, numbers replaced by a marker."""
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return "<dp>" if isinstance(value, int | float) and not isinstance(value, bool) else value


def normalise(value: Any) -> Any:
    """Replace ids, hashes and timestamps by placeholders, and model parameters by their shape."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = _text(k)
            if k == "params" and "estimator" in value:
                out[key] = _shape(v)
            elif k in ("created", "time", "pid"):  # a timestamp, or the vault's process id
                out[key] = f"<{k}>"
            else:
                out[key] = normalise(v)
        return out
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        return _text(value)
    return value


@dataclass(frozen=True)
class Difference:
    """The first place where the analyst's view on D and on D' differ."""

    step: str
    path: str
    on_d: Any
    on_d1: Any

    def __str__(self) -> str:
        return f"{self.step} at {self.path}: D gives {self.on_d!r:.200}, D' gives {self.on_d1!r:.200}"


def _first_difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any] | None:
    if type(a) is not type(b):
        return path or "/", a, b
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}/{k}", a.get(k, "<absent>"), b.get(k, "<absent>")
            found = _first_difference(a[k], b[k], f"{path}/{k}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path} (length)", len(a), len(b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else (path or "/", a, b)


def compare(on_d: Sequence[Observation], on_d1: Sequence[Observation]) -> list[Difference]:
    """Return the analyst steps whose normalised status and body differ between the runs (JSON, byte for byte).

    The reviewers' responses are not compared: they carry the exact findings on purpose.
    """
    on_d, on_d1 = [o for o in on_d if o.role == "analyst"], [o for o in on_d1 if o.role == "analyst"]
    if [o.step for o in on_d] != [o.step for o in on_d1]:
        a, b = [o.step for o in on_d], [o.step for o in on_d1]
        i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        return [Difference("(the sequence of steps)", f"[{i}]", a[i : i + 1], b[i : i + 1])]
    out = []
    for x, y in zip(on_d, on_d1, strict=True):
        nx, ny = [x.status, normalise(x.body)], [y.status, normalise(y.body)]
        if json.dumps(nx, sort_keys=True) != json.dumps(ny, sort_keys=True):
            path, a, b = _first_difference(nx, ny) or ("/", nx, ny)
            out.append(Difference(x.step, path, a, b))
    return out


# -- repeated actions, compared statistically ---------------------------------------------------------------


@dataclass(frozen=True)
class Repeated:
    """Samples of one repeated analyst-visible output on D and D', and the ε the ledger charged for it."""

    name: str
    epsilon: float
    on_d: list[float]
    on_d1: list[float]


def _sample(v: VaultProcess, size: Size) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"count": [], "gate on count": [], "mean": [], "gate on mean": [], "coef": []}
    clients: dict[str, httpx.Client] = {}
    try:
        for i in range(size.repeats):
            who = f"sam{i // 10}"  # ten repetitions per analyst: within the analyst budget and the daily cap
            c = clients.setdefault(who, v.client("analyst", who))
            nudge = 1 + i * 1e-9  # a new question each time: a stored answer would repeat its noise (invariant 3)
            where = {"where": CATEGORY_WHERE, "epsilon": 0.5 * nudge}
            count = _post(c, "/v1/query", {"dataset": HH, "kind": "count", **where})
            mean = _post(c, "/v1/query", {"dataset": HH, "kind": "mean", "column": "income", **where})
            out["count"].append(float(count["values"]["rows"][0]["value"]))
            out["mean"].append(float(mean["values"]["rows"][0]["value"]))
            for name, item in (("gate on count", count), ("gate on mean", mean)):
                ref = {"id": item["id"], "sha256": item["sha256"]}
                req = _post(c, "/v1/releases", {"items": [ref], "title": f"Repeat {i}", "purpose": "statistics"})
                out[name].append(1.0 if req["status"] == "blocked" else 0.0)
            if i % 3 == 0:
                spec = {"estimator": "logistic_regression", "target": "eviction", "features": ["household_type"]}
                fit = _post(c, "/v1/fit", {"dataset": HH, "spec": spec, "epsilon": 1.0 * nudge})
                out["coef"].append(float(fit["values"]["params"]["intercept"][0]))
    finally:
        for c in clients.values():
            c.close()
    return out


def _post(c: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post(path, json=body)
    if r.status_code != 200:
        raise AssertionError(f"{path}: {r.status_code} {r.text[:300]}")
    return dict(r.json())


def repeated(pair: Pair, size: Size) -> list[Repeated]:
    """Run the repeated actions on both vaults (in parallel, with real noise); see :class:`Repeated`."""
    from concurrent.futures import ThreadPoolExecutor

    pair.mode(blind=False)
    with ThreadPoolExecutor(2) as pool:
        on_d, on_d1 = pool.submit(_sample, pair.d, size), pool.submit(_sample, pair.d1, size)
        d, d1 = on_d.result(), on_d1.result()
    charged = {"count": 0.5, "gate on count": 0.5, "mean": 0.5, "gate on mean": SDC_TEST_EPSILON, "coef": 1.0}
    return [Repeated(name, charged[name], d[name], d1[name]) for name in d]
