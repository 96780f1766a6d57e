"""The outbox: every approved release as one folder of content-addressed files and a manifest.

``outbox/<release_id>/`` holds each released file under ``<sha256>.<ext>`` and ``manifest.json``, which maps
the human names to those files and records the sha256 and size of each, the policy's sha256, the ledger entries
(ids, epsilon, query, result sha256), the review and the run provenance.

A release is all or nothing: the files are written into a temporary folder on the same filesystem
(``outbox/.tmp-<release_id>-*``), each file and the folder are fsynced, and the folder is renamed into place
in one step; only then is the ``release`` event (with the manifest's sha256) appended to the audit log. After a
crash, :func:`recover_outbox` removes temporary folders (never published) and records the ``release`` event of
a folder that was renamed into place but not yet logged, after checking every hash in it: a release is then
either complete (folder + log event) or absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox._private.shared.errors import OutputPathError, ReleaseError
from sandbox._private.shared.files import fsync_dir
from sandbox._private.vault.gate.names import check_file_name, check_release_id, check_title

from .journal import AuditLog, LogEntry, read_entries

__all__ = [
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "RELEASE_EVENT",
    "ReleaseFile",
    "OutboxProblem",
    "PublishedRelease",
    "write_release",
    "publish_release",
    "recover_outbox",
    "verify_outbox",
    "unfinished",
]

MANIFEST_FORMAT = "sandbox.manifest/1"
MANIFEST_NAME = "manifest.json"
RELEASE_EVENT = "release"
_TMP_PREFIX = ".tmp-"
_MEDIA = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "json": "application/json",
    "html": "text/html",
    "txt": "text/plain",
    "png": "image/png",
}


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a release: a human name (checked) and its bytes."""

    name: str
    data: bytes

    def __post_init__(self) -> None:
        check_file_name(self.name)
        if self.extension not in _MEDIA:
            raise ReleaseError(
                f"file {self.name!r} has extension {self.extension!r}; the outbox takes {', '.join(sorted(_MEDIA))}."
            )
        if not isinstance(self.data, bytes):
            raise ReleaseError(f"file {self.name!r}: content must be bytes, got {type(self.data).__name__}.")

    @property
    def extension(self) -> str:
        """Return the lower-case extension without the dot."""
        return self.name.rsplit(".", 1)[1].lower()

    @property
    def sha256(self) -> str:
        """Return the sha256 of the content."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def stored_name(self) -> str:
        """Return the content-addressed name ``<sha256>.<ext>``."""
        return f"{self.sha256}.{self.extension}"


@dataclass(frozen=True)
class OutboxProblem:
    """Something in the outbox that does not match what was recorded."""

    release_id: str
    what: str

    def __str__(self) -> str:
        return f"outbox/{self.release_id}: {self.what}"


@dataclass(frozen=True)
class PublishedRelease:
    """A release that is in the outbox and in the audit log."""

    release_id: str
    path: Path
    manifest_sha256: str
    manifest: Mapping[str, Any] = field(repr=False)
    log_entry: LogEntry | None = None


def _manifest(release_id: str, files: Sequence[ReleaseFile], meta: Mapping[str, Any]) -> bytes:
    names = [f.name for f in files]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ReleaseError(f"file names must be unique within a release; repeated: {dupes}. Rename them.")
    entries = [
        {
            "name": f.name,
            "file": f.stored_name,
            "sha256": f.sha256,
            "bytes": len(f.data),
            "media_type": _MEDIA[f.extension],
        }
        for f in files
    ]
    doc = {"format": MANIFEST_FORMAT, "release_id": release_id, "files": entries, **meta}
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_release(
    outbox: str | Path,
    release_id: str,
    files: Sequence[ReleaseFile],
    *,
    request_id: str,
    title: str,
    policy_sha256: str,
    ledger_entries: Sequence[Mapping[str, Any]],
    provenance: Mapping[str, Any],
    review: Mapping[str, Any] | None = None,
) -> tuple[Path, str]:
    """Write one release atomically into ``outbox/<release_id>/``.

    Parameters
    ----------
    outbox : str or Path
        The outbox folder (created if missing).
    release_id : str
        Folder name of the release (letters, digits, ``_.-``).
    files : sequence of ReleaseFile
        The files to release (names unique; equal contents are stored once).
    request_id, title : str
        The reviewed request and its title (checked: no ``../`` or control characters).
    policy_sha256 : str
        sha256 of the policy file in force.
    ledger_entries : sequence of mapping
        The ledger entries behind the items (ids, epsilon, query, result sha256).
    provenance : mapping
        The run provenance (dataset, schema hash, code version, notebook, ...).
    review : mapping, optional
        The review record (votes, approvers).

    Returns
    -------
    (Path, str)
        The release folder and the sha256 of its ``manifest.json``.

    Raises
    ------
    ReleaseError
        If a name is unsafe, the release has no files, or a release with this id already exists.
    OutputPathError
        If the outbox cannot be written.
    """
    check_release_id(release_id)
    check_title(title)
    if not files:
        raise ReleaseError(f"release {release_id} has no files; a release needs at least one item.")
    meta = {
        "request_id": request_id,
        "title": title,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "policy_sha256": policy_sha256,
        "ledger_entries": [dict(e) for e in ledger_entries],
        "provenance": dict(provenance),
        "review": dict(review or {}),
    }
    manifest = _manifest(release_id, files, meta)
    root = Path(outbox)
    final = root / release_id
    if final.exists():
        raise ReleaseError(f"release {release_id} already exists in the outbox; an item can be released only once.")
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{release_id}-", dir=root))
    except OSError as exc:
        raise OutputPathError(f"cannot write to outbox {root}: {exc.strerror}; check its permissions.") from None
    try:
        for f in {f.stored_name: f for f in files}.values():
            _write_synced(tmp / f.stored_name, f.data)
        _write_synced(tmp / MANIFEST_NAME, manifest)
        fsync_dir(tmp)
        os.rename(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if final.exists():
            raise ReleaseError(f"release {release_id} already exists in the outbox (written concurrently).") from None
        raise OutputPathError(f"cannot write release {release_id} to {root}: {exc.strerror}.") from None
    fsync_dir(root)
    return final, hashlib.sha256(manifest).hexdigest()


def publish_release(outbox: str | Path, log: AuditLog, actor: str, release_id: str, **kwargs: Any) -> PublishedRelease:
    """Write a release (see :func:`write_release`) and append its ``release`` event to the audit log."""
    path, digest = write_release(outbox, release_id, **kwargs)
    manifest = json.loads((path / MANIFEST_NAME).read_bytes())
    entry = log.append(actor, RELEASE_EVENT, _release_payload(manifest, digest))
    return PublishedRelease(release_id, path, digest, manifest, entry)


def _release_payload(manifest: Mapping[str, Any], digest: str, recovered: bool = False) -> dict[str, Any]:
    payload = {
        "release_id": manifest["release_id"],
        "request_id": manifest.get("request_id"),
        "manifest_sha256": digest,
        "files": {f["name"]: f["sha256"] for f in manifest.get("files", [])},
    }
    return payload | ({"recovered": True} if recovered else {})


def _release_events(entries: Sequence[LogEntry]) -> dict[str, LogEntry]:
    return {str(e.payload.get("release_id")): e for e in entries if e.type == RELEASE_EVENT}


def _check_folder(folder: Path) -> tuple[list[str], dict[str, Any] | None, str]:
    """Check one release folder against its own manifest: (problems, manifest, manifest sha256)."""
    try:
        raw = (folder / MANIFEST_NAME).read_bytes()
    except OSError:
        return ["manifest.json is missing"], None, ""
    digest = hashlib.sha256(raw).hexdigest()
    try:
        manifest = json.loads(raw.decode("utf-8"))
        listed = {f["file"]: f for f in manifest["files"]}
        ok_format = manifest["format"] == MANIFEST_FORMAT and manifest["release_id"] == folder.name
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return ["manifest.json is not a valid manifest"], None, digest
    problems = [] if ok_format else [f"manifest.json is not a {MANIFEST_FORMAT} manifest of release {folder.name}"]
    for stored, entry in sorted(listed.items()):
        problems += _check_file(folder / str(stored), entry)
    extra = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST_NAME and p.name not in listed)
    problems += [f"unexpected file {name} (not in the manifest)" for name in extra]
    return problems, manifest, digest


def _check_file(path: Path, entry: Mapping[str, Any]) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError:
        return [f"file {path.name} ({entry.get('name')}) is missing"]
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.get("sha256") or path.name.split(".", 1)[0] != digest or len(data) != entry.get("bytes"):
        return [f"file {path.name} ({entry.get('name')}) has sha256 {digest[:12]}..., not the recorded hash"]
    return []


def _release_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith(_TMP_PREFIX))


def verify_outbox(outbox: str | Path, log_entries: Sequence[LogEntry] | None = None) -> list[OutboxProblem]:
    """Recompute every hash in the outbox against the manifests, and the manifests against the audit log.

    Parameters
    ----------
    outbox : str or Path
        The outbox folder (missing: empty).
    log_entries : sequence of LogEntry, optional
        The audit log's entries. When given, every release folder must have a ``release`` event with its
        manifest's sha256, and every ``release`` event must have its folder. Without it a change to a manifest
        that keeps its own file hashes is not detectable.

    Returns
    -------
    list of OutboxProblem
        Empty when everything matches; otherwise in the order of the audit log, then of the folder names.
    """
    root = Path(outbox)
    events = _release_events(log_entries) if log_entries is not None else {}
    order = {rid: e.seq for rid, e in events.items()}
    problems: list[OutboxProblem] = []
    seen = set()
    for folder in _release_folders(root):
        seen.add(folder.name)
        if not folder.is_dir():
            problems.append(OutboxProblem(folder.name, "is not a release folder"))
            continue
        found, _, digest = _check_folder(folder)
        problems += [OutboxProblem(folder.name, w) for w in found]
        if log_entries is None:
            continue
        event = events.get(folder.name)
        if event is None:
            problems.append(OutboxProblem(folder.name, "has no release event in the audit log"))
        elif event.payload.get("manifest_sha256") != digest:
            problems.append(OutboxProblem(folder.name, f"manifest.json differs from the one logged at seq {event.seq}"))
    for rid, event in events.items():
        if rid not in seen:
            problems.append(OutboxProblem(rid, f"is in the audit log (seq {event.seq}) but its folder is missing"))
    return sorted(problems, key=lambda p: (order.get(p.release_id, 1 << 62), p.release_id))


def unfinished(outbox: str | Path) -> list[Path]:
    """List temporary folders of releases interrupted by a crash (never published)."""
    root = Path(outbox)
    return sorted(p for p in root.iterdir() if p.name.startswith(_TMP_PREFIX)) if root.is_dir() else []


def recover_outbox(outbox: str | Path, log: AuditLog, actor: str = "vault") -> list[str]:
    """Finish or undo releases interrupted by a crash; call at vault startup after :meth:`AuditLog.recover`.

    Temporary folders are removed. A release folder that is complete (every hash matches its manifest) but has
    no ``release`` event gets one, marked ``recovered``. Returns a line per action taken.
    """
    actions = []
    for tmp in unfinished(outbox):
        shutil.rmtree(tmp)
        actions.append(f"removed unfinished {tmp.name}")
    events = _release_events(read_entries(log.path))
    for folder in _release_folders(Path(outbox)):
        if folder.name in events or not folder.is_dir():
            continue
        problems, manifest, digest = _check_folder(folder)
        if problems or manifest is None:
            continue  # not a crash artefact: leave it for `sandbox verify` to report
        log.append(actor, RELEASE_EVENT, _release_payload(manifest, digest, recovered=True))
        actions.append(f"recorded release {folder.name}")
    return actions
