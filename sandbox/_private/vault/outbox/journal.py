"""The append-only, hash-chained and keyed journal of the vault (one JSON object per line).

Each entry holds ``seq`` (1, 2, ...), ``time`` (UTC, ISO 8601), ``actor``, ``type``, ``payload``,
``prev_hash`` (the previous entry's ``hash``; 64 zeros for the first), ``hash``, the sha256 of the canonical
JSON of those six fields, and ``mac``, the HMAC-SHA256 of the hash under the vault's journal key. Lines are
themselves canonical JSON (sorted keys, no spaces, UTF-8), so any change to any byte of the file changes either
the parsed entry, its hash, its MAC or its bytes, and :func:`verify_log` names the first line where that happened.

The key: 32 random bytes in ``journal.key`` beside the journal (``vault/journal.key``), mode 0600, created by the
first append; only the vault's OS user can read it. Because every hash covers the previous one, the MAC of the
last entry (the head) vouches for the whole chain: someone who rewrites the log consistently (drops a release,
lowers a logged ε) but has not the key cannot make MACs that verify. Entries written before a workspace had a key
carry no MAC; once one entry is keyed, every later one must be. A log cut back to an earlier entry is detected by
the head kept elsewhere (the ledger's anchor, and the head an operator keeps with each backup).

Writers: every append takes an exclusive ``fcntl.flock`` on the file (so processes and threads are
serialised), reads the last entry, writes its lines with a single ``write`` and ``fdatasync``s them before
returning; :class:`GroupAppender` lets the threads of one process share one append (and one sync). The gate
records the returned head (``seq``, ``hash``) in the ledger database; given that head, :func:`verify_log` also
detects a log whose tail was cut off.

Crash recovery: a crash (or power loss) during an append can leave a *torn* last line without its newline.
Appends refuse to write after a torn line. At startup the vault calls :meth:`AuditLog.recover`, which
truncates the file to its last complete line and appends a ``log.recovered`` event recording how many bytes
were cut and their sha256, so the repair itself is on the record.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox._private.shared.canonical import canonical_json, canonical_sha256, sha256_hex
from sandbox._private.shared.errors import IntegrityError, InternalError, OutputPathError
from sandbox._private.shared.files import fsync_dir

__all__ = [
    "GENESIS_HASH",
    "LogEntry",
    "Head",
    "BrokenLink",
    "LogReport",
    "AuditLog",
    "GroupAppender",
    "KEY_NAME",
    "read_key",
    "verify_log",
    "read_entries",
]

GENESIS_HASH = "0" * 64
_FIELDS = ("seq", "time", "actor", "type", "payload", "prev_hash")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 8192
#: File name of the journal key, beside the journal.
KEY_NAME = "journal.key"
_MAC_CONTEXT = b"sandbox-journal-v1:"


@dataclass(frozen=True)
class LogEntry:
    """One entry of the audit log."""

    seq: int
    time: str
    actor: str
    type: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str
    mac: str | None = None

    def body(self) -> dict[str, Any]:
        """Return the fields covered by ``hash``."""
        return {f: getattr(self, f) for f in _FIELDS} | {"payload": dict(self.payload)}

    def computed_hash(self) -> str:
        """Return the sha256 of the canonical JSON of :meth:`body`."""
        return canonical_sha256(self.body())

    def to_line(self) -> bytes:
        """Return the entry's canonical line, newline included."""
        extra = {"hash": self.hash} | ({"mac": self.mac} if self.mac is not None else {})
        return (canonical_json(self.body() | extra) + "\n").encode()


@dataclass(frozen=True)
class Head:
    """The last entry's ``seq`` and ``hash``: the anchor the ledger keeps."""

    seq: int
    hash: str


@dataclass(frozen=True)
class BrokenLink:
    """The first place where the log is not what was written: 1-based line, seq if known, what differs."""

    line: int
    seq: int | None
    what: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"{where}: {self.what}"


@dataclass(frozen=True)
class LogReport:
    """Outcome of :func:`verify_log`."""

    path: str
    entries: int
    head: Head | None
    problem: BrokenLink | None
    keyed: bool = False

    @property
    def ok(self) -> bool:
        """Whether the whole chain (and the anchor, if given) checked out."""
        return self.problem is None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def entry_mac(key: bytes, entry_hash: str) -> str:
    """Return the HMAC-SHA256 of an entry's hash under the journal key."""
    return hmac.new(key, _MAC_CONTEXT + entry_hash.encode(), hashlib.sha256).hexdigest()


def read_key(path: str | Path) -> bytes | None:
    """Return the journal key stored at ``path``, or ``None`` if there is none.

    Raises
    ------
    IntegrityError
        The key exists but cannot be read (another OS user) or is malformed.
    """
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IntegrityError(
            f"cannot read the journal key {path} ({exc}); run this as the vault's OS user, who alone can read it."
        ) from None
    if not _HEX64.match(text):
        raise IntegrityError(f"the journal key {path} is not 64 hex digits; restore it from the vault's backup.")
    return bytes.fromhex(text)


def _create_key(path: Path) -> bytes:
    """Create the journal key (0600) unless another process just did; return the key on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (secrets.token_hex(32) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # never replaces a key that exists
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    fsync_dir(path.parent)
    key = read_key(path)
    assert key is not None
    return key


def _parse_line(raw: bytes, line: int) -> tuple[LogEntry | None, BrokenLink | None]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, BrokenLink(line, None, "not valid UTF-8 JSON")
    if not isinstance(data, dict) or set(data) - {"mac"} != {*_FIELDS, "hash"}:
        return None, BrokenLink(line, None, f"expected an object with fields {sorted({*_FIELDS, 'hash', 'mac'})}")
    seq = data["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        return None, BrokenLink(line, None, f"seq is {seq!r}, not an integer")
    strings = ("time", "actor", "type", "prev_hash", "hash", *(("mac",) if "mac" in data else ()))
    if not all(isinstance(data[f], str) for f in strings):
        return None, BrokenLink(line, seq, "time, actor, type, prev_hash, hash and mac must be strings")
    if not isinstance(data["payload"], dict):
        return None, BrokenLink(line, seq, "payload must be an object")
    return LogEntry(**data), None


def _check_entry(entry: LogEntry, raw: bytes, line: int, prev: LogEntry | None) -> BrokenLink | None:
    expected_seq = 1 if prev is None else prev.seq + 1
    expected_prev = GENESIS_HASH if prev is None else prev.hash
    if entry.seq != expected_seq:
        return BrokenLink(line, entry.seq, f"seq is {entry.seq}, expected {expected_seq}")
    if entry.prev_hash != expected_prev:
        return BrokenLink(
            line, entry.seq, f"prev_hash {entry.prev_hash[:12]}... != previous hash {expected_prev[:12]}..."
        )
    if not _HEX64.match(entry.hash) or entry.computed_hash() != entry.hash:
        return BrokenLink(line, entry.seq, f"hash {entry.hash[:12]}... does not match the entry's content")
    if entry.to_line() != raw + b"\n":
        return BrokenLink(line, entry.seq, "the line is not in canonical form (bytes changed without changing values)")
    return None


def _scan(data: bytes) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (line number, bytes without newline, complete?) for each line of ``data``."""
    lines = data.split(b"\n")
    for i, raw in enumerate(lines[:-1], start=1):
        yield i, raw, True
    if lines[-1]:
        yield len(lines), lines[-1], False


def _check_anchor(
    anchor: Head, hashes: dict[int, tuple[str, int]], last: LogEntry | None, lines: int
) -> BrokenLink | None:
    if last is None or last.seq < anchor.seq:
        ends = "is empty" if last is None else f"ends at seq {last.seq}"
        return BrokenLink(
            lines + 1, anchor.seq, f"the log {ends} but the ledger anchors seq {anchor.seq}: entries were removed"
        )
    found, line = hashes.get(anchor.seq, ("", 0))
    if found != anchor.hash:
        return BrokenLink(line, anchor.seq, f"entry seq {anchor.seq} differs from the hash anchored in the ledger")
    return None


def _check_mac(entry: LogEntry, line: int, key: bytes | None, keyed_since: int | None) -> BrokenLink | None:
    if entry.mac is None:
        if keyed_since is not None:
            return BrokenLink(
                line, entry.seq, f"entry has no MAC although the journal is keyed since seq {keyed_since}: it was "
                "written without the vault's key (a rewrite of the log)",
            )  # fmt: skip
        return None
    if key is None:
        return BrokenLink(
            line, entry.seq, f"entry carries a MAC but there is no journal key ({KEY_NAME}) to check it: restore the "
            "key from the vault's backup",
        )  # fmt: skip
    if not hmac.compare_digest(entry.mac, entry_mac(key, entry.hash)):
        return BrokenLink(line, entry.seq, "MAC does not match the vault's journal key: the log was rewritten")
    return None


def verify_log(path: str | Path, expected_head: Head | None = None, *, key_path: str | Path | None = None) -> LogReport:
    """Recompute the hash chain and MACs of a journal and name the first broken link.

    Parameters
    ----------
    path : str or Path
        The log file. A missing file is an empty log.
    expected_head : Head, optional
        The head recorded in the ledger; if given, a log that ends before it, or whose entry at that seq has
        another hash, is reported (detects a cut-off tail).
    key_path : str or Path, optional
        The journal key (default: ``journal.key`` beside the log). Every MAC is checked; once one entry is keyed
        every later one must be; and when the key exists, the head must carry a valid MAC.

    Returns
    -------
    LogReport
        Number of valid entries, the head, and the first :class:`BrokenLink` (``None`` when intact).
    """
    p = Path(path)
    try:
        key = read_key(key_path if key_path is not None else p.with_name(KEY_NAME))
    except IntegrityError as exc:
        return LogReport(str(p), 0, None, BrokenLink(0, None, str(exc)))
    data = p.read_bytes() if p.exists() else b""
    prev: LogEntry | None = None
    anchor_seq = expected_head.seq if expected_head else -1
    hashes: dict[int, tuple[str, int]] = {}
    count, keyed_since = 0, None
    for line, raw, complete in _scan(data):
        if not complete:
            what = f"torn last line ({len(raw)} bytes without a newline), left by a crash during an append; "
            problem: BrokenLink | None = BrokenLink(line, None, what + "run recovery (the vault does at startup)")
        else:
            entry, problem = _parse_line(raw, line)
            problem = problem or _check_entry(entry, raw, line, prev)  # type: ignore[arg-type]
            problem = problem or _check_mac(entry, line, key, keyed_since)  # type: ignore[arg-type]
        if problem is not None:
            return LogReport(str(p), count, _head(prev), problem)
        prev, count = entry, count + 1
        if keyed_since is None and prev is not None and prev.mac is not None:
            keyed_since = prev.seq
        if prev is not None and prev.seq == anchor_seq:
            hashes[prev.seq] = (prev.hash, line)
    if key is not None and prev is not None and prev.mac is None:
        what = f"the head (seq {prev.seq}) carries no MAC although the vault has a journal key: the log was rewritten"
        return LogReport(str(p), count, _head(prev), BrokenLink(count, prev.seq, what))
    problem = _check_anchor(expected_head, hashes, prev, count) if expected_head else None
    return LogReport(str(p), count, _head(prev), problem, keyed=prev is not None and prev.mac is not None)


def _head(entry: LogEntry | None) -> Head | None:
    return None if entry is None else Head(entry.seq, entry.hash)


def read_entries(path: str | Path) -> list[LogEntry]:
    """Parse every complete entry of a log, without checking the chain (use :func:`verify_log` for that)."""
    p = Path(path)
    data = p.read_bytes() if p.exists() else b""
    out = []
    for line, raw, complete in _scan(data):
        entry, _ = _parse_line(raw, line) if complete else (None, None)
        if entry is not None:
            out.append(entry)
    return out


class AuditLog:
    """Writer of one audit log file; safe across threads and processes (every append takes a file lock).

    Parameters
    ----------
    path : str or Path
        The log file; it and its folder are created on first append.
    """

    def __init__(self, path: str | Path, key_path: str | Path | None = None) -> None:
        self.path = Path(path)
        self.key_path = Path(key_path) if key_path is not None else self.path.with_name(KEY_NAME)
        self._key: bytes | None = None
        # the entry this object appended last, its line, and the file's (inode, size) right after: while the file
        # still ends with that line, the next append chains onto the entry without parsing and rehashing it
        self._tail: tuple[tuple[int, int], bytes, LogEntry] | None = None

    def key(self) -> bytes:
        """Return the journal key, creating it (0600) on first use."""
        if self._key is None:
            self._key = read_key(self.key_path) or _create_key(self.key_path)
        return self._key

    @contextmanager
    def _locked(self) -> Iterator[int]:
        try:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
            except FileNotFoundError:  # the first append: make the folder
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        except OSError as exc:
            raise OutputPathError(f"cannot open audit log {self.path}: {exc.strerror}; check the workspace.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing releases the lock

    def append(self, actor: str, type: str, payload: Mapping[str, Any] | None = None) -> LogEntry:
        """Append one event durably and return it (its ``seq`` and ``hash`` are the new head)."""
        return self.append_many([(actor, type, payload or {})])[-1]

    def append_many(self, events: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[LogEntry]:
        """Append several events under one lock and one fsync (all of them or, after a crash, a prefix)."""
        key = self.key()
        with self._locked() as fd:
            st = os.fstat(fd)
            size, tail = st.st_size, self._tail
            self._tail = None
            if tail is not None and tail[0] == (st.st_ino, size) and _ends_with(fd, size, tail[1]):
                prev: LogEntry | None = tail[2]
            else:
                prev = _last_entry(fd, size, self.path)
            entries, lines, line = [], b"", b""
            for actor, kind, payload in events:
                entry = _make_entry(prev, actor, kind, payload, key)
                entries.append(entry)
                line = entry.to_line()
                lines += line
                prev = entry
            _write_all(fd, lines)
            os.fdatasync(fd)
            if entries:
                self._tail = ((st.st_ino, size + len(lines)), line, entries[-1])
        if size == 0:
            fsync_dir(self.path.parent)
        return entries

    def head(self) -> Head | None:
        """Return the last entry's seq and hash (``None`` for an empty log)."""
        with self._locked() as fd:
            return _head(_last_entry(fd, os.fstat(fd).st_size, self.path))

    def recover(self, actor: str = "vault") -> LogEntry | None:
        """Repair a torn last line left by a crash: truncate to the last complete line, log the repair.

        Returns
        -------
        LogEntry or None
            The ``log.recovered`` entry, or ``None`` when the log was not torn.
        """
        with self._locked() as fd:
            self._tail = None
            size = os.fstat(fd).st_size
            keep = _last_newline_end(fd, size)
            if keep == size:
                return None
            key = self.key()
            os.lseek(fd, keep, os.SEEK_SET)
            torn = os.read(fd, size - keep)
            os.ftruncate(fd, keep)
            os.fsync(fd)
            payload = {"truncated_bytes": len(torn), "truncated_sha256": hashlib.sha256(torn).hexdigest()}
            entry = _make_entry(_last_entry(fd, keep, self.path), actor, "log.recovered", payload, key)
            _write_all(fd, entry.to_line())
            os.fsync(fd)
            return entry


def _ends_with(fd: int, size: int, line: bytes) -> bool:
    """Whether the first ``size`` bytes of the file end with ``line`` (one ``pread``)."""
    return size >= len(line) and os.pread(fd, len(line), size - len(line)) == line


def _make_entry(prev: LogEntry | None, actor: str, kind: str, payload: Mapping[str, Any], key: bytes) -> LogEntry:
    body: dict[str, Any] = {
        "seq": 1 if prev is None else prev.seq + 1,
        "time": _now(),
        "actor": actor,
        "type": kind,
        "payload": dict(payload),
        "prev_hash": GENESIS_HASH if prev is None else prev.hash,
    }
    try:
        text = canonical_json(body)
    except (TypeError, ValueError) as exc:
        raise InternalError(f"audit event {kind!r} has a payload that is not plain JSON: {exc}") from None
    digest = sha256_hex(text)
    return LogEntry(**json.loads(text), hash=digest, mac=entry_mac(key, digest))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _last_newline_end(fd: int, size: int) -> int:
    """Offset just after the last newline in the first ``size`` bytes (0 if none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - _CHUNK)
        chunk = os.pread(fd, pos - start, start)
        idx = chunk.rfind(b"\n")
        if idx >= 0:
            return start + idx + 1
        pos = start
    return 0


def _last_entry(fd: int, size: int, path: Path) -> LogEntry | None:
    end = _last_newline_end(fd, size)
    if end != size:
        raise IntegrityError(
            f"audit log {path} ends with a torn line ({size - end} bytes without a newline), left by a crash; "
            "run AuditLog.recover() (the vault does this at startup) before appending."
        )
    if end == 0:
        return None
    start = _last_newline_end(fd, end - 1)
    raw = os.pread(fd, end - 1 - start, start)
    entry, problem = _parse_line(raw, 0)
    if entry is None or entry.computed_hash() != entry.hash:
        raise IntegrityError(f"the last entry of audit log {path} is damaged ({problem}); run `sandbox verify`.")
    return entry


class GroupAppender:
    """Appends of the threads of one process, grouped: one lock, one write and one sync for all who wait.

    A thread that calls :meth:`append_many` while another thread's append is running queues its events; the
    next append writes every queued event at once. Each caller returns once its own events are durable, with
    its own entries (or the error of the append that carried them).

    Parameters
    ----------
    log : AuditLog
        The journal written to.
    """

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._queue: list[tuple[object, Sequence[tuple[str, str, Mapping[str, Any]]]]] = []
        self._results: dict[object, list[LogEntry] | BaseException] = {}
        self._running = False

    def append_many(self, events: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[LogEntry]:
        """Append ``events`` (grouped with concurrent callers') durably; return their entries."""
        if os.getpid() != self._pid:
            self._reset()  # a forked child never waits on its parent's threads
        ticket = object()
        with self._cond:
            self._queue.append((ticket, events))
            while ticket not in self._results:
                if self._running:
                    self._cond.wait()
                    continue
                self._running, batch, self._queue = True, self._queue, []
                self._cond.release()
                try:
                    outcome: list[LogEntry] | BaseException = self.log.append_many([e for _, evs in batch for e in evs])
                except BaseException as exc:  # every waiter of this batch gets the error
                    outcome = exc
                finally:
                    self._cond.acquire()
                    self._running = False
                start = 0
                for t, evs in batch:
                    self._results[t] = (
                        outcome if isinstance(outcome, BaseException) else outcome[start : start + len(evs)]
                    )
                    start += len(evs)
                self._cond.notify_all()
            got = self._results.pop(ticket)
        if isinstance(got, BaseException):
            raise got
        return got
