"""``sandbox verify`` against a restored older ledger, a consistent rewrite of the journal, and the keyed head.

The figures of issue 11: spent ε 3.50, a ledger restored from a backup taken at 1.50 printed ``ok``. Here the
restore must fail and name the charges it lost. A journal rewritten consistently (hash chain recomputed, anchors
updated) by someone without the vault's key must fail too.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from sandbox._private.shared.canonical import canonical_json, sha256_hex
from sandbox._private.vault.ledger.ledger import CHARGE_EVENT
from sandbox._private.vault.outbox.journal import (
    GENESIS_HASH,
    KEY_NAME,
    AuditLog,
    GroupAppender,
    entry_mac,
    read_entries,
    verify_log,
)
from sandbox._private.vault.outbox.verify import verify_workspace, write_anchor
from sandbox._private.vault.server import open_service
from sandbox.cli import main


def _vault(tmp_path: Path, population: Path) -> Any:
    svc = open_service(tmp_path / "ws")
    svc.registry.add_population(population)
    svc.tokens.create("ann", "analyst")
    return svc, svc.tokens.list()[0]


def _count(svc: Any, caller: Any, by: str, eps: float, table: str = "households") -> dict[str, Any]:
    return dict(svc.query({"dataset": table, "kind": "count", "by": [by], "epsilon": eps}, caller, None))


def _backup(src: Path, dst: Path) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def _restore(backup: Path, ledger: Path) -> None:
    """Restore the backup over the ledger (with SQLite's backup API, as an operator restoring a copy would)."""
    _backup(backup, ledger)


def test_restored_older_ledger_fails_verify_and_names_the_lost_charges(
    small_population: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    svc, ann = _vault(tmp_path, small_population)
    _count(svc, ann, "household_type", 1.0)
    _count(svc, ann, "urbanisation", 0.5)
    assert svc.ledger.budget(svc.ledger.dataset("households")).epsilon_spent == pytest.approx(1.5)
    ws = svc.layout.workspace
    assert main(["verify", "--workspace", str(ws)]) == 0
    assert "population population: ε spent 1.5 (journal logs 1.5)" in capsys.readouterr().out
    _backup(svc.layout.ledger, tmp_path / "backup.sqlite")
    lost = [_count(svc, ann, "arrears", 1.0), {"id": svc.query(
        {"dataset": "persons", "kind": "count", "by": ["gender"], "epsilon": 1.0}, ann, None
    )["id"]}]  # fmt: skip
    assert svc.ledger.budget(svc.ledger.dataset("signals")).epsilon_spent == pytest.approx(3.5)
    svc.ledger.db.close()
    _restore(tmp_path / "backup.sqlite", svc.layout.ledger)

    assert main(["verify", "--workspace", str(ws)]) == 2
    captured = capsys.readouterr()
    assert "2 charges in the journal are missing from the ledger" in captured.err
    for item in lost:
        assert item["id"] in captured.err
    assert "population population: the ledger's spent ε 1.5 is less than the 3.5 the journal logged" in captured.err
    assert "restored from an older copy" in captured.err


def test_kept_charge_lost_by_a_restore_is_named(small_population: Path, tmp_path: Path) -> None:
    svc, ann = _vault(tmp_path, small_population)
    _count(svc, ann, "household_type", 0.5)
    _backup(svc.layout.ledger, tmp_path / "backup.sqlite")
    ds = svc.ledger.dataset("households")

    def boom() -> Any:
        raise RuntimeError("fit failed")

    with pytest.raises(RuntimeError):
        svc.ledger.charge(
            ds, kind="model", query_key="m", query={}, epsilon=2.0, delta=0.0, analyst="ann", run_id=None,
            compute=boom,
        )  # fmt: skip
    failed = svc.ledger.kept_charges(state="failed")[0]
    svc.ledger.db.close()
    _restore(tmp_path / "backup.sqlite", svc.layout.ledger)
    report = verify_workspace(svc.layout.workspace)
    assert not report.ok and report.ledger is not None
    assert failed.id in report.ledger.problems[0] and "spent ε 0.5 is less than the 2.5" in report.ledger.problems[1]


def test_edited_running_total_is_detected(small_population: Path, tmp_path: Path) -> None:
    svc, ann = _vault(tmp_path, small_population)
    _count(svc, ann, "household_type", 2.0)
    with svc.ledger.db.transaction() as tx:
        tx.execute("UPDATE populations SET epsilon_spent = 0.5")
    report = verify_workspace(svc.layout.workspace)
    assert not report.ok
    assert "the ledger's spent ε 0.5 is less than the 2 the journal logged" in str(report.first_problem)


def _rewrite(path: Path, keep: Any, key: bytes | None) -> Any:
    """Rewrite the journal consistently: drop entries ``keep`` rejects, renumber, rehash (and MAC with ``key``)."""
    prev_hash, seq, out = GENESIS_HASH, 0, []
    for e in read_entries(path):
        if not keep(e):
            continue
        seq += 1
        body = {"seq": seq, "time": e.time, "actor": e.actor, "type": e.type, "payload": dict(e.payload)}
        body["prev_hash"] = prev_hash
        digest = sha256_hex(canonical_json(body))
        line = body | {"hash": digest} | ({"mac": entry_mac(key, digest)} if key is not None else {})
        out.append(canonical_json(line) + "\n")
        prev_hash = digest
    path.write_text("".join(out))
    return seq, prev_hash


@pytest.mark.parametrize("forged_key", [None, b"\x01" * 32])
def test_consistent_rewrite_without_the_key_is_detected(
    small_population: Path, tmp_path: Path, forged_key: bytes | None
) -> None:
    svc, ann = _vault(tmp_path, small_population)
    first = _count(svc, ann, "household_type", 0.5)
    _count(svc, ann, "urbanisation", 0.7)
    layout = svc.layout
    assert verify_workspace(layout.workspace).ok

    # lower the logged ε of the first charge and drop the second: chain, anchors and head all made consistent
    def keep(e: Any) -> bool:
        if e.type == CHARGE_EVENT and e.payload["id"] == first["id"]:
            e.payload["epsilon"] = 0.01  # type: ignore[index]
        return not (e.type == CHARGE_EVENT and e.payload["id"] != first["id"])

    seq, head = _rewrite(layout.journal, keep, forged_key)
    from sandbox._private.vault.outbox.journal import Head

    write_anchor(layout.journal_head, Head(seq, head))
    report = verify_workspace(layout.workspace, Head(seq, head))
    assert not report.ok
    assert report.log.problem is not None
    what = report.log.problem.what
    assert ("no MAC although the vault has a journal key" in what) or ("MAC does not match" in what)


def test_the_journal_key_is_private_and_every_entry_keyed(small_population: Path, tmp_path: Path) -> None:
    svc, ann = _vault(tmp_path, small_population)
    _count(svc, ann, "household_type", 0.5)
    key = svc.layout.journal.with_name(KEY_NAME)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    entries = read_entries(svc.layout.journal)
    assert entries and all(e.mac is not None for e in entries)
    report = verify_log(svc.layout.journal)
    assert report.ok and report.keyed
    key.unlink()  # a log with MACs and no key to check them
    assert "there is no journal key" in str(verify_log(svc.layout.journal).problem)


def test_verify_prints_the_head_to_keep_and_a_restored_whole_vault_fails_against_it(
    small_population: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    svc, ann = _vault(tmp_path, small_population)
    _count(svc, ann, "household_type", 0.5)
    ws = svc.layout.workspace
    shutil.copytree(ws / "vault", tmp_path / "old-vault")  # a backup of everything, consistent with itself
    _count(svc, ann, "urbanisation", 0.5)
    assert main(["verify", "--workspace", str(ws)]) == 0
    kept = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("keep with your backup:"))
    seq, digest = kept.split("--head-seq ")[1].split(" --head-hash ")
    assert len(digest) == 64
    svc.ledger.db.close()
    shutil.rmtree(ws / "vault")
    shutil.copytree(tmp_path / "old-vault", ws / "vault")
    assert main(["verify", "--workspace", str(ws)]) == 0  # consistent with itself: only the kept head tells
    assert main(["verify", "--workspace", str(ws), "--head-seq", seq, "--head-hash", digest]) == 2
    assert f"but the ledger anchors seq {seq}: entries were removed" in capsys.readouterr().err


def test_group_appender_shares_appends_and_keeps_one_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    group = GroupAppender(log)
    calls: list[int] = []
    original = log.append_many

    def slow(events: Any) -> Any:
        calls.append(len(events))
        threading.Event().wait(0.02)  # a slow disk: others queue meanwhile
        return original(events)

    monkeypatch.setattr(log, "append_many", slow)
    got: list[Any] = []
    threads = [
        threading.Thread(target=lambda i=i: got.append(group.append_many([("t", "x", {"i": i})]))) for i in range(24)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(calls) == 24 and len(calls) < 24  # shared appends
    assert sorted(e[0].payload["i"] for e in got) == list(range(24))  # each caller got its own entry
    assert verify_log(log.path).ok and verify_log(log.path).entries == 24


def test_dataset_registrations_are_journalled_for_reviewers(small_population: Path, tmp_path: Path) -> None:
    svc, _ = _vault(tmp_path, small_population)
    types = [
        (e.type, e.payload.get("dataset") or e.payload.get("population")) for e in read_entries(svc.layout.journal)
    ]
    assert types[:2] == [("population.created", "population"), ("dataset.registered", "households")]
    assert ("population.table_added", "persons") in types and ("population.table_added", "signals") in types
    added = next(e for e in read_entries(svc.layout.journal) if e.type == "population.table_added")
    assert added.actor == "admin" and added.payload["tables_before"] == ["households"]
    assert json.loads(json.dumps(added.payload))["tables"] == ["households", "persons"]
