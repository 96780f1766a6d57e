"""The hash-chained audit log: chain, tamper detection (every mutation), anchors, torn lines, concurrent writers."""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing as mp
import os
import random
import signal
import time
from pathlib import Path

import pytest

from sandbox._private.shared.canonical import canonical_json
from sandbox._private.shared.errors import IntegrityError, InternalError
from sandbox._private.vault.outbox.journal import GENESIS_HASH, AuditLog, Head, read_entries, verify_log


def build_log(path: Path, n: int = 30) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.append(
            f"user{i % 3}",
            "request.comment" if i % 2 else "ledger.charge",
            {"i": i, "text": "geen schulden — één regel\nmet newline", "eps": 0.1 * i, "ok": i % 2 == 0},
        )
    return log


def test_chain_links_and_hashes(tmp_path: Path) -> None:
    log = build_log(tmp_path / "audit.jsonl", 5)
    entries = read_entries(log.path)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    for prev, cur in itertools.pairwise(entries):
        assert cur.prev_hash == prev.hash
    body = {k: v for k, v in json.loads(log.path.read_bytes().splitlines()[2]).items() if k not in ("hash", "mac")}
    assert hashlib.sha256(canonical_json(body).encode()).hexdigest() == entries[2].hash
    report = verify_log(log.path, expected_head=log.head())
    assert report.ok and report.entries == 5 and report.head == Head(5, entries[-1].hash)


def test_missing_log_is_empty_and_anchor_detects_it(tmp_path: Path) -> None:
    assert verify_log(tmp_path / "none.jsonl").ok
    r = verify_log(tmp_path / "none.jsonl", expected_head=Head(3, "a" * 64))
    assert not r.ok and "the log is empty but the ledger anchors seq 3" in str(r.problem)


def test_every_random_byte_flip_is_detected(tmp_path: Path) -> None:
    log = build_log(tmp_path / "audit.jsonl")
    original = log.path.read_bytes()
    rng = random.Random(20261129)
    target = tmp_path / "mutated.jsonl"
    lines_start = [0] + [i + 1 for i, b in enumerate(original) if b == 0x0A]
    for _ in range(600):
        pos = rng.randrange(len(original))
        data = bytearray(original)
        data[pos] ^= rng.randrange(1, 256)
        target.write_bytes(bytes(data))
        report = verify_log(target)
        assert not report.ok, f"flip at byte {pos} not detected"
        line_of_pos = sum(1 for s in lines_start if s <= pos)
        assert report.problem is not None and report.problem.line <= line_of_pos + 1


def test_first_broken_link_is_named(tmp_path: Path) -> None:
    log = build_log(tmp_path / "audit.jsonl", 6)
    lines = log.path.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"i":3', b'"i":4')
    log.path.write_bytes(b"".join(lines))
    report = verify_log(log.path)
    assert str(report.problem) == "line 4 (seq 4): hash " + read_entries(log.path)[3].hash[:12] + (
        "... does not match the entry's content"
    )
    assert report.entries == 3


def test_removed_and_reordered_lines_detected(tmp_path: Path) -> None:
    log = build_log(tmp_path / "audit.jsonl", 8)
    lines = log.path.read_bytes().splitlines(keepends=True)
    anchor = log.head()
    log.path.write_bytes(b"".join(lines[:3] + lines[4:]))
    assert "seq is 5, expected 4" in str(verify_log(log.path).problem)
    log.path.write_bytes(b"".join(lines[:-2]))
    assert verify_log(log.path).ok  # a clean cut is only visible against the ledger's anchor
    r = verify_log(log.path, expected_head=anchor)
    assert "ends at seq 6 but the ledger anchors seq 8: entries were removed" in str(r.problem)
    log.path.write_bytes(b"".join(lines))
    assert "differs from the hash anchored" in str(verify_log(log.path, Head(8, "b" * 64)).problem)


def test_torn_line_refuses_appends_until_recovered(tmp_path: Path) -> None:
    log = build_log(tmp_path / "audit.jsonl", 4)
    torn = b'{"actor":"vault","hash":"12'
    with log.path.open("ab") as fh:
        fh.write(torn)
    report = verify_log(log.path)
    assert report.problem is not None and report.problem.line == 5
    assert "torn last line (27 bytes without a newline)" in report.problem.what
    with pytest.raises(IntegrityError, match=r"ends with a torn line \(27 bytes .*run AuditLog.recover\(\)"):
        log.append("x", "y", {})
    entry = log.recover()
    assert entry is not None and entry.seq == 5 and entry.type == "log.recovered"
    assert entry.payload == {"truncated_bytes": 27, "truncated_sha256": hashlib.sha256(torn).hexdigest()}
    assert log.recover() is None
    log.append("x", "y", {})
    assert verify_log(log.path).entries == 6


def test_damaged_last_entry_refuses_appends(tmp_path: Path) -> None:
    log = build_log(tmp_path / "audit.jsonl", 3)
    data = log.path.read_bytes()
    log.path.write_bytes(data[:-20] + b"0" * 19 + b"\n")
    with pytest.raises(IntegrityError, match=r"last entry of audit log .* is damaged"):
        log.append("x", "y", {})


def test_payload_must_be_plain_json(tmp_path: Path) -> None:
    with pytest.raises(InternalError, match="not plain JSON"):
        AuditLog(tmp_path / "a.jsonl").append("x", "y", {"bad": object()})
    assert verify_log(tmp_path / "a.jsonl").entries == 0
    # the one canonical JSON rule: a non-finite float is stored as null, and the entry verifies
    entry = AuditLog(tmp_path / "a.jsonl").append("x", "y", {"nan": float("nan"), "inf": float("inf")})
    assert dict(entry.payload) == {"nan": None, "inf": None}
    assert verify_log(tmp_path / "a.jsonl").entries == 1


def _writer(path: str, name: str, n: int) -> None:
    log = AuditLog(path)
    for i in range(n):
        log.append(name, "test.event", {"i": i})


def test_concurrent_processes_keep_one_chain(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.jsonl")
    ctx = mp.get_context("fork")  # forked writers: separate processes without an interpreter start-up each
    procs = [ctx.Process(target=_writer, args=(path, f"p{k}", 40)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    report = verify_log(path)
    assert report.ok and report.entries == 160
    assert sorted((e.actor, e.payload["i"]) for e in read_entries(path)) == sorted(
        (f"p{k}", i) for k in range(4) for i in range(40)
    )


def append_forever(path: str) -> None:
    log = AuditLog(path)
    i = 0
    while True:
        log.append_many([("child", "a", {"i": i}), ("child", "b", {"i": i, "pad": "x" * 5000})])
        i += 1


def test_sigkill_during_appends_leaves_a_valid_or_recoverable_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    rng = random.Random(7)
    ctx = mp.get_context("fork")  # no interpreter start-up per kill
    for _ in range(6):
        proc = ctx.Process(target=append_forever, args=(str(path),))
        proc.start()
        time.sleep(rng.uniform(0.05, 0.3))
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        AuditLog(path).recover()
        report = verify_log(path)
        assert report.ok, report.problem
    assert len(read_entries(path)) > 6, "the child wrote too little to have been killed mid-way"


def test_appends_chain_onto_the_file_not_onto_a_remembered_tail(tmp_path: Path) -> None:
    """A writer remembers its last entry, but chains onto whatever the file ends with: another writer's entry, an
    edited last line of the same length (refused), a log cut back and regrown."""
    path = tmp_path / "audit.jsonl"
    a, b = AuditLog(path), AuditLog(path)
    for i in range(6):  # two writers of one process, alternating and in runs
        (a if i % 3 else b).append("x", "t", {"i": i})
    assert verify_log(path).problem is None and verify_log(path).entries == 6
    data = path.read_bytes()
    path.write_bytes(data[:-20] + b"0" * 19 + b"\n")  # same size, same inode, last line changed
    with pytest.raises(IntegrityError, match=r"last entry of audit log .* is damaged"):
        a.append("x", "y", {})
    path.write_bytes(data)
    cut = data[: data.rindex(b"\n", 0, len(data) - 1) + 1]
    path.write_bytes(cut)  # cut back to 5 entries, then regrown by another writer to the remembered size
    b.append("x", "t", {"i": 5})
    a.append("x", "t", {"i": 6})
    report = verify_log(path)
    assert report.problem is None and report.entries == 7
    assert [e.payload.get("i") for e in read_entries(path)] == [0, 1, 2, 3, 4, 5, 6]
