"""The outbox: atomic content-addressed releases, manifests, tamper detection, crash recovery, unsafe names."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from _crash import fork, kill_and_read

from sandbox._private.shared.errors import ReleaseError
from sandbox._private.vault.outbox.files import (
    MANIFEST_NAME,
    ReleaseFile,
    publish_release,
    recover_outbox,
    unfinished,
    verify_outbox,
    write_release,
)
from sandbox._private.vault.outbox.journal import AuditLog, read_entries, verify_log
from sandbox._private.vault.outbox.render import html_file, json_file, table_files, table_html

ROWS = [
    {"household_type": "single_parent", "urbanisation": "rotterdam", "value": 131.5, "noise_scale": 10.0},
    {"household_type": "couple", "urbanisation": "utrecht", "value": 912.25, "noise_scale": 10.0},
]
COLUMNS = ["household_type", "urbanisation", "value", "noise_scale"]


def release_kwargs(i: int = 0) -> dict[str, Any]:
    files = [
        *table_files(f"count_{i}", ROWS, COLUMNS),
        json_file("model.json", {"coef": [0.1, -0.2], "i": i}),
        html_file("report.html", table_html("Report <1>", ROWS, COLUMNS)),
    ]
    return {
        "files": files,
        "request_id": f"req-{i}",
        "title": "Vroegsignalering model v1",
        "policy_sha256": "p" * 64,
        "ledger_entries": [{"id": f"r-{i}", "epsilon": 0.1, "query": {"count": ["household_type"]}}],
        "provenance": {"dataset": "households", "version": 1},
        "review": {"approvers": ["bob"]},
    }


def publish(root: Path, log: AuditLog, i: int) -> None:
    publish_release(root / "outbox", log, "bob", f"rel-{i}", **release_kwargs(i))


def test_release_layout_and_manifest(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    out = publish_release(tmp_path / "outbox", log, "bob", "rel-1", **release_kwargs(1))
    manifest = json.loads((out.path / MANIFEST_NAME).read_bytes())
    assert hashlib.sha256((out.path / MANIFEST_NAME).read_bytes()).hexdigest() == out.manifest_sha256
    names = {f["name"]: f for f in manifest["files"]}
    assert sorted(names) == ["count_1.csv", "count_1.parquet", "model.json", "report.html"]
    for entry in manifest["files"]:
        data = (out.path / entry["file"]).read_bytes()
        assert entry["file"] == f"{hashlib.sha256(data).hexdigest()}.{entry['name'].rsplit('.', 1)[1]}"
        assert entry["bytes"] == len(data)
    assert manifest["policy_sha256"] == "p" * 64 and manifest["request_id"] == "req-1"
    csv_text = (out.path / names["count_1.csv"]["file"]).read_text()
    assert csv_text.splitlines()[1] == "single_parent,rotterdam,131.5,10.0"
    table = pq.read_table(io.BytesIO((out.path / names["count_1.parquet"]["file"]).read_bytes()))
    assert table.to_pylist() == ROWS
    assert "Report &lt;1&gt;" in (out.path / names["report.html"]["file"]).read_text()
    assert out.log_entry is not None and out.log_entry.payload["manifest_sha256"] == out.manifest_sha256
    assert verify_outbox(tmp_path / "outbox", read_entries(log.path)) == []


def test_release_twice_refused(tmp_path: Path) -> None:
    write_release(tmp_path, "rel-1", **release_kwargs())
    with pytest.raises(ReleaseError, match="release rel-1 already exists in the outbox"):
        write_release(tmp_path, "rel-1", **release_kwargs())
    assert unfinished(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../etc/passwd.csv", "path separator or '..'"),
        ("a/b.csv", "path separator"),
        ("a\\b.csv", "path separator"),
        ("x..csv", "'..'"),
        ("bad\x00name.csv", "control or formatting characters \\(U\\+0000\\)"),
        ("evil\u202ecsv.exe.html", "U\\+202E"),
        ("line\nbreak.csv", "U\\+000A"),
        (".hidden.csv", "must not start with '.'"),
        ("noext", "must have an extension"),
        ("manifest.json", "must not be 'manifest.json'"),
        ("", "non-empty name"),
        ("x.exe", "extension 'exe'"),
    ],
)
def test_unsafe_file_names_refused(name: str, match: str) -> None:
    with pytest.raises(ReleaseError, match=match):
        ReleaseFile(name, b"x")


@pytest.mark.parametrize(
    ("title", "match"),
    [
        ("../../outside", "contains '../'"),
        ("a..\\b", "contains '../'"),
        ("title\x1b[31m", "control or formatting characters \\(U\\+001B\\)"),
        ("hidden\u200bspace", "U\\+200B"),
        ("  ", "needs a title"),
        ("x" * 201, "maximum is 200"),
    ],
)
def test_unsafe_titles_refused(tmp_path: Path, title: str, match: str) -> None:
    kwargs = release_kwargs() | {"title": title}
    with pytest.raises(ReleaseError, match=match):
        write_release(tmp_path, "rel-1", **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rid", ["../x", "a/b", ".tmp-x", "", "a..b", "x\n"])
def test_unsafe_release_ids_refused(tmp_path: Path, rid: str) -> None:
    with pytest.raises(ReleaseError, match=r"release id .* is not allowed"):
        write_release(tmp_path, rid, **release_kwargs())


def test_duplicate_names_and_empty_release_refused(tmp_path: Path) -> None:
    kwargs = release_kwargs() | {"files": [ReleaseFile("a.csv", b"1"), ReleaseFile("a.csv", b"2")]}
    with pytest.raises(ReleaseError, match=r"repeated: \['a.csv'\]"):
        write_release(tmp_path, "rel-1", **kwargs)
    with pytest.raises(ReleaseError, match="has no files"):
        write_release(tmp_path, "rel-1", **(release_kwargs() | {"files": []}))


def test_equal_contents_stored_once(tmp_path: Path) -> None:
    kwargs = release_kwargs() | {"files": [ReleaseFile("a.csv", b"same"), ReleaseFile("b.csv", b"same")]}
    path, _ = write_release(tmp_path, "rel-1", **kwargs)
    assert len(list(path.iterdir())) == 2  # one data file + manifest
    assert verify_outbox(tmp_path) == []


def test_every_random_byte_flip_in_an_outbox_file_is_detected(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(3):
        publish(tmp_path, log, i)
    entries = read_entries(log.path)
    files = sorted(p for p in (tmp_path / "outbox").rglob("*") if p.is_file())
    assert len(files) == 15
    rng = random.Random(11)
    for _ in range(300):
        target = rng.choice(files)
        original = target.read_bytes()
        data = bytearray(original)
        pos = rng.randrange(len(data))
        data[pos] ^= rng.randrange(1, 256)
        os.chmod(target, 0o644)
        target.write_bytes(bytes(data))
        problems = verify_outbox(tmp_path / "outbox", entries)
        assert problems, f"flip at byte {pos} of {target.name} not detected"
        assert problems[0].release_id == target.parent.name
        target.write_bytes(original)
    assert verify_outbox(tmp_path / "outbox", entries) == []


def test_structural_changes_detected(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    publish(tmp_path, log, 1)
    publish(tmp_path, log, 2)
    entries = read_entries(log.path)
    outbox = tmp_path / "outbox"
    (outbox / "rel-1" / "extra.csv").write_bytes(b"x")
    victim = next(p for p in (outbox / "rel-2").iterdir() if p.suffix == ".json" and p.name != MANIFEST_NAME)
    victim.unlink()
    (outbox / "rel-3").mkdir()
    found = [str(p) for p in verify_outbox(outbox, entries)]
    assert found[0] == "outbox/rel-1: unexpected file extra.csv (not in the manifest)"
    assert found[1].startswith(f"outbox/rel-2: file {victim.name} (model.json) is missing")
    assert "outbox/rel-3: manifest.json is missing" in found
    assert "outbox/rel-3: has no release event in the audit log" in found
    (outbox / "rel-3").rmdir()
    shutil.rmtree(outbox / "rel-1")
    assert "outbox/rel-1: is in the audit log (seq 1) but its folder is missing" in [
        str(p) for p in verify_outbox(outbox, entries)
    ]


def test_recover_removes_unfinished_and_records_unlogged(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    outbox = tmp_path / "outbox"
    write_release(outbox, "rel-9", **release_kwargs(9))  # renamed into place, crash before the log event
    (outbox / ".tmp-rel-10-abc").mkdir()
    assert [str(p) for p in verify_outbox(outbox, [])] == ["outbox/rel-9: has no release event in the audit log"]
    actions = recover_outbox(outbox, log)
    assert actions == ["removed unfinished .tmp-rel-10-abc", "recorded release rel-9"]
    (event,) = read_entries(log.path)
    assert event.payload["recovered"] is True and event.type == "release"
    assert verify_outbox(outbox, read_entries(log.path)) == [] and recover_outbox(outbox, log) == []


def publish_forever(progress: int, root: Path, start: int, limit: int) -> None:
    """Publish up to ``limit`` releases, then idle until killed (so every run has several kills)."""
    log = AuditLog(root / "audit.jsonl")
    for i in range(start, start + limit):
        files = [ReleaseFile(f"table_{i}.csv", f"a,b\n{i},{i * 7}\n".encode()), ReleaseFile("model.json", b"{}" * i)]
        publish_release(
            root / "outbox", log, "bob", f"rel-{i}", files=files, request_id=f"req-{i}", title=f"t{i}",
            policy_sha256="p" * 64, ledger_entries=[{"id": f"r-{i}"}], provenance={},
        )  # fmt: skip
        os.write(progress, f"{i}\n".encode())
    time.sleep(600)


@pytest.mark.slow
def test_sigkill_during_many_releases_leaves_each_complete_or_absent(tmp_path: Path) -> None:
    """A forked child publishes releases and is SIGKILLed at random moments; afterwards each release is whole."""
    rng = random.Random(1129)
    start, kills = 0, 0
    while start < 200:
        # at most 40 releases per child: at least 5 kills for 200 releases, however fast the machine
        pid, fd = fork(publish_forever, tmp_path, start, rng.randint(10, 40))
        time.sleep(rng.uniform(0.0, 0.6))
        out = kill_and_read(pid, fd).decode()
        done = [int(x) for x in out.split()]
        kills += 1
        log = AuditLog(tmp_path / "audit.jsonl")
        log.recover()
        recover_outbox(tmp_path / "outbox", log)
        assert verify_log(log.path).ok
        entries = read_entries(log.path)
        assert verify_outbox(tmp_path / "outbox", entries) == []
        released = {e.payload["release_id"] for e in entries if e.type == "release"}
        folders = {p.name for p in (tmp_path / "outbox").iterdir()} if (tmp_path / "outbox").exists() else set()
        assert released == folders
        assert {f"rel-{i}" for i in done} <= released  # what the child reported as done is there
        start += len(done) + 1  # the release in flight when killed is complete or absent
    assert kills >= 5 and len(released) >= 150
