"""The one canonical JSON of the project, and the sha256 digests computed over it.

Every hash the sandbox stores or checks (ledger answers, query and spec keys, the hash-chained journal, manifests)
is a sha256 of :func:`canonical_json`, so one rule holds everywhere:

- keys sorted, no white space (``","`` and ``":"``), UTF-8 text (``ensure_ascii=False``);
- numpy scalars and arrays become plain numbers and lists, tuples and sets become lists;
- **non-finite floats (NaN, ±inf) become ``null``**, so the text is strict JSON (RFC 8259) that every parser reads,
  and ``canonical_json(json.loads(canonical_json(x))) == canonical_json(x)`` for every ``x`` (the form is stable;
  ``tests/test_canonical.py`` checks it).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["canonical_json", "canonical_join", "sha256_hex", "canonical_sha256", "sha256_file"]

_BLOCK = 1 << 22
_CONTAINERS = (dict, list, tuple)
_SEQUENCES = (list, tuple)
_SCALARS = frozenset({str, int, float, bool, type(None)})
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _text_keys(obj: Any) -> bool:
    """Whether every dict inside ``obj`` (lists, tuples and dicts, walked) has keys of type ``str`` only."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if type(k) is not str:
                return False
            if isinstance(v, _CONTAINERS) and not _text_keys(v):
                return False
        return True
    if isinstance(obj, _SEQUENCES):
        for v in obj:
            if isinstance(v, _CONTAINERS) and not _text_keys(v):
                return False
    return True


class _Slow(Exception):
    """Raised inside the one-pass encoder where only the reference path gives the rule's text."""


def _plain_text_keys(obj: Any) -> Any:
    out = _plain(obj)
    if not _text_keys(out):
        raise _Slow
    return out


_ENCODE_ONCE = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_plain_text_keys
).encode


def _reference_json(obj: Any) -> str:
    """Return the rule's text the obvious way: through JSON and back (keys become text, numpy plain), null, encode."""
    plain = json.loads(json.dumps(obj, default=_plain, allow_nan=True))
    try:  # the common case: every float is finite, so the walk that nulls the others is not needed
        return _ENCODE(plain)
    except ValueError:  # a NaN or an infinity: null it, then encode
        return _ENCODE(_finite(plain))


def canonical_json(obj: Any) -> str:
    """Return the canonical JSON text of ``obj`` (see the module docstring for the rule).

    One encoding pass gives the rule's text when every key is text and every float finite: the encoder writes
    numpy scalars (through ``tolist``), tuples and sets as the round trip through JSON would, and sorts text keys
    as it does. Anything else (a key that is not ``str``, which the round trip turns into text and sorts as text,
    maybe merging two keys; a non-finite float; an error) takes :func:`_reference_json`, the rule written out.

    Raises
    ------
    TypeError
        If ``obj`` holds something that has no JSON form (an object that is not a number, string, list or dict).
    """
    try:
        if _text_keys(obj):
            return _ENCODE_ONCE(obj)
    except (_Slow, ValueError, TypeError, RecursionError):  # the reference path gives the text, or the error
        pass
    return _reference_json(obj)


def canonical_join(fields: Mapping[str, Any], encoded: Mapping[str, str]) -> str:
    """Return ``canonical_json`` of one object made of ``fields`` and of members given as canonical JSON text.

    ``encoded`` maps keys to texts that :func:`canonical_json` made (so re-encoding them would give them back):
    they are joined in as they are, which spares decoding and encoding a large answer again. The text is the same
    as ``canonical_json({**fields, **{k: json.loads(t) for k, t in encoded.items()}})``.
    """
    try:  # plain scalars only: a container (its keys, numpy values, tuples) needs the full rule
        members = [(k, _ENCODE(v)) for k, v in fields.items() if type(k) is str and type(v) in _SCALARS]
    except ValueError:  # a non-finite float
        members = []
    if len(members) != len(fields) or not fields.keys().isdisjoint(encoded):
        return canonical_json({**fields, **{k: json.loads(t) for k, t in encoded.items()}})
    members += encoded.items()
    members.sort()
    return "{" + ",".join(f"{_ENCODE(k)}:{v}" for k, v in members) + "}"


def sha256_hex(data: str | bytes) -> str:
    """sha256 hex digest of ``data`` (text is encoded as UTF-8)."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def canonical_sha256(obj: Any) -> str:
    """sha256 hex digest of :func:`canonical_json` of ``obj``."""
    return sha256_hex(canonical_json(obj))


def sha256_file(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
