"""``verify_workspace`` and ``sandbox verify``: log + outbox + anchor, first broken link, exit codes."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.vault.outbox.files import ReleaseFile, publish_release
from sandbox._private.vault.outbox.journal import AuditLog, Head
from sandbox._private.vault.outbox.verify import read_anchor, verify_workspace, write_anchor
from sandbox.cli import main


def make_workspace(ws: Path, n: int = 3) -> WorkspaceLayout:
    layout = WorkspaceLayout(ws)
    log = AuditLog(layout.journal)
    for i in range(n):
        log.append("alice", "request.create", {"request_id": f"req-{i}"})
        publish_release(
            layout.outbox,
            log,
            "bob",
            f"rel-{i}",
            files=[ReleaseFile(f"t{i}.csv", f"a\n{i}\n".encode()), ReleaseFile("m.json", b'{"k": %d}' % i)],
            request_id=f"req-{i}",
            title=f"Release {i}",
            policy_sha256="0" * 64,
            ledger_entries=[{"id": f"r-{i}", "epsilon": 0.5}],
            provenance={"run": i},
        )
    head = log.head()
    assert head is not None
    write_anchor(layout.journal_head, head)
    return layout


def test_intact_workspace_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_workspace(tmp_path)
    report = verify_workspace(tmp_path)
    assert report.ok and report.releases == 3 and report.log.entries == 6
    assert main(["verify", "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "audit log: 6 valid entries" in out and "outbox: 3 releases" in out and out.strip().endswith("ok")


def test_empty_workspace_verifies(tmp_path: Path) -> None:
    assert verify_workspace(tmp_path).ok


def test_every_byte_flip_anywhere_is_detected(tmp_path: Path) -> None:
    layout = make_workspace(tmp_path)
    files = [layout.journal, *sorted(p for p in layout.outbox.rglob("*") if p.is_file())]
    rng = random.Random(5)
    for _ in range(200):
        target = rng.choice(files)
        original = target.read_bytes()
        data = bytearray(original)
        data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
        os.chmod(target, 0o644)
        target.write_bytes(bytes(data))
        report = verify_workspace(tmp_path)
        assert not report.ok, f"change to {target} not detected"
        target.write_bytes(original)
    assert verify_workspace(tmp_path).ok


def test_first_broken_link_named_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = make_workspace(tmp_path)
    lines = layout.journal.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"req-1", b"req-X")
    layout.journal.write_bytes(b"".join(lines))
    report = verify_workspace(tmp_path)
    assert report.first_problem is not None
    assert report.first_problem.startswith(f"audit log {layout.journal}: line 3 (seq 3): hash")
    assert main(["verify", "--workspace", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "FAILED: first broken link: audit log" in err and "line 3 (seq 3)" in err


def test_cut_tail_detected_through_anchor(tmp_path: Path) -> None:
    layout = make_workspace(tmp_path)
    anchor = read_anchor(layout.journal_head)
    assert anchor == Head(6, anchor.hash if anchor else "")
    lines = layout.journal.read_bytes().splitlines(keepends=True)
    layout.journal.write_bytes(b"".join(lines[:-1]))  # drops the last release event
    report = verify_workspace(tmp_path)
    assert not report.ok
    assert "ends at seq 5 but the ledger anchors seq 6" in str(report.first_problem)
    # the release folder without its event is reported too
    assert [str(p) for p in report.outbox] == ["outbox/rel-2: has no release event in the audit log"]


def test_cli_head_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_workspace(tmp_path, 1)
    assert main(["verify", "--workspace", str(tmp_path), "--head-seq", "9", "--head-hash", "a" * 64]) == 2
    assert "anchors seq 9" in capsys.readouterr().err
    assert main(["verify", "--workspace", str(tmp_path), "--head-seq", "9"]) == 2
    assert "give both --head-seq and --head-hash" in capsys.readouterr().err
