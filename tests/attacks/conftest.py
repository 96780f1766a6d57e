"""Fixtures and reporting for the adversarial suite (``tests/attacks``).

Every attack test carries ``@pytest.mark.attack(name, defence=...)`` and may add a key figure with the
``attack_figure`` fixture. At the end of the session a table (attack, defence, result, key figure) is printed
in the terminal summary, in Markdown so it can be pasted into a release note.

Long variants carry ``@pytest.mark.slow`` and run only with ``--run-slow`` (``make attack``); plain
``make test`` runs at least one small case of every attack.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

_HERE = Path(__file__).resolve().parent


@dataclass
class _Row:
    nodeid: str
    attack: str
    defence: str
    result: str = "not run"
    figure: str = ""


_ROWS = pytest.StashKey[dict[str, _Row]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    with contextlib.suppress(ValueError):  # another conftest already defines it: reuse that option
        parser.addoption(
            "--run-slow",
            action="store_true",
            default=False,
            help="also run the long variants of tests/attacks (make attack)",
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "attack(name, defence): an adversarial test; listed in the attack summary table")
    config.stash[_ROWS] = {}


def _run_slow(config: pytest.Config) -> bool:
    return bool(config.getoption("--run-slow", default=False))


def _in_suite(item: pytest.Item) -> bool:
    return _HERE in Path(str(item.path)).resolve().parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="long attack variant: run with --run-slow (make attack)")
    rows = config.stash[_ROWS]
    for item in items:
        if not _in_suite(item):
            continue
        if item.get_closest_marker("slow") is not None and not _run_slow(config):
            item.add_marker(skip)
        mark = item.get_closest_marker("attack")
        if mark is not None:
            defence = str(mark.kwargs.get("defence", ""))
            rows[item.nodeid] = _Row(item.nodeid, str(mark.args[0]), defence)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    row = item.config.stash[_ROWS].get(item.nodeid)
    if row is None:
        return report
    if hasattr(report, "wasxfail"):
        if report.skipped:  # the attack succeeds, as recorded: a known gap, listed in SECURITY.md
            row.result = f"KNOWN GAP (xfail): {report.wasxfail}"
        elif report.when == "call":  # strict xfail that passed: the gap is closed, remove the mark
            row.result = "FAILED (gap closed? remove the xfail)"
    elif report.failed:
        row.result = "FAILED" if report.when == "call" else f"ERROR ({report.when})"
    elif report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        row.result = "skipped: " + str(reason).removeprefix("Skipped: ")
    elif report.when == "call" and row.result == "not run":
        row.result = "held"
    return report


@pytest.fixture
def attack_figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record the key figure of this attack (for example "ε lower bound 0.83 ≤ claimed 1.0")."""
    row = request.config.stash[_ROWS].get(request.node.nodeid)

    def record(text: str) -> None:
        if row is not None:
            row.figure = f"{row.figure}; {text}" if row.figure else text

    return record


def _cell(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    rows = [r for r in config.stash.get(_ROWS, {}).values() if r.result != "not run"]
    if not rows:
        return
    tr = terminalreporter
    tr.section("attack summary")
    tr.write_line("| attack | test | defence | result | key figure |")
    tr.write_line("|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r.attack, r.nodeid)):
        test = r.nodeid.split("::", 1)[-1]
        tr.write_line(f"| {r.attack} | {test} | {r.defence} | {_cell(r.result, 70)} | {r.figure} |")
    held = sum(r.result == "held" for r in rows)
    failed = sum(r.result.startswith(("FAILED", "ERROR")) for r in rows)
    known = sum(r.result.startswith("KNOWN GAP") for r in rows)
    skipped = len(rows) - held - failed - known
    tr.write_line(f"{held} held, {known} known gaps, {failed} failed, {skipped} skipped (of {len(rows)} attack cases)")


# -- a real vault process for the HTTP attacks ---------------------------------------------------------------


def write_attack_policy(
    path: Path, *, budget: dict[str, float] | None = None, limits: dict[str, int] | None = None
) -> Path:
    """A policy file: the shipped defaults with ``budget`` and ``limits`` overrides."""
    data: dict[str, object] = {"version": 1, "name": "attack"}
    if budget:
        data["budget"] = budget
    if limits:
        data["limits"] = limits
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def attack_vault(
    vault_factory: Callable[..., Any], small_population: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Any]:
    """Start a vault process with the small population registered under a policy with the given overrides.

    Call it as ``attack_vault(population=None, budget={...}, limits={...})``. Within a module the same arguments
    give the same running vault unless ``fresh=True`` (a test that needs an untouched ledger). Vaults are stopped
    when the module ends (by the shared ``vault_factory``).
    """
    running: dict[str, Any] = {}

    def start(
        population: Path | None = None,
        budget: dict[str, float] | None = None,
        limits: dict[str, int] | None = None,
        fresh: bool = False,
    ) -> Any:
        from sandbox._private.vault.server import open_service

        key = json.dumps([str(population), budget, limits], sort_keys=True)
        if key in running and not fresh:
            return running[key]
        ws = tmp_path_factory.mktemp("attack-ws")
        policy = write_attack_policy(ws / "policy.yaml", budget=budget, limits=limits)
        open_service(ws, policy=policy).registry.add_population(population or small_population)
        running[key] = vault_factory(ws, policy=policy).start()
        return running[key]

    return start


#: The policy of the vault that several attack modules share (one process start instead of five): a budget that the
#: attacks cannot exhaust, few groups and few dummy rows so that the limits are reached by small requests.
SHARED_POLICY: dict[str, Any] = {
    "budget": {"epsilon_per_dataset": 1e6, "epsilon_per_query_max": 2.0},
    "limits": {"max_groups": 40, "max_dummy_rows": 5000, "max_request_bytes": 1_000_000},
}


@pytest.fixture(scope="session")
def shared_vault(small_population: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One vault process for the attacks that only compare the ledger before and after themselves."""
    from conftest import VaultProcess  # tests/conftest.py (the vault engineer's fixtures)

    from sandbox._private.vault.server import open_service

    ws = tmp_path_factory.mktemp("attack-shared-ws")
    policy = write_attack_policy(ws / "policy.yaml", **SHARED_POLICY)
    open_service(ws, policy=policy).registry.add_population(small_population)
    vault = VaultProcess(ws, policy=policy).start()
    try:
        yield vault
    finally:
        vault.stop()
