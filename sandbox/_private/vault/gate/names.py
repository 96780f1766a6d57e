"""Sanitising the names that end up on disk or in front of reviewers: file names, release ids and titles.

Nothing is silently rewritten: a name that could escape the outbox (``../``, a path separator), hide text from
a reviewer (control or bidirectional-formatting characters) or collide with the outbox's own files is refused
with a message that names the fix.
"""

from __future__ import annotations

import re
import unicodedata

from sandbox._private.shared.errors import ReleaseError

__all__ = ["check_file_name", "check_release_id", "check_title", "check_text", "MAX_TITLE", "MAX_FILE_NAME"]

MAX_TITLE = 200
MAX_FILE_NAME = 120
_RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _hidden_chars(text: str) -> list[str]:
    """Control (Cc), format (Cf, e.g. right-to-left override), separator and surrogate characters in ``text``."""
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")]


def check_title(title: object, what: str = "title") -> str:
    """Return ``title`` if it is fit to show reviewers, else raise :class:`ReleaseError` naming the fix."""
    if not isinstance(title, str) or not title.strip():
        raise ReleaseError(f"a release needs a {what}: a non-empty string such as 'Vroegsignalering model v1'.")
    hidden = _hidden_chars(title)
    if hidden:
        raise ReleaseError(
            f"the {what} {title!r} contains control or formatting characters ({', '.join(hidden[:5])}); "
            "remove them (a reviewer would not see them)."
        )
    if "../" in title or "..\\" in title:
        raise ReleaseError(f"the {what} {title!r} contains '../'; remove it (it reads as a path escape).")
    if len(title) > MAX_TITLE:
        raise ReleaseError(f"the {what} is {len(title)} characters long; the maximum is {MAX_TITLE}: shorten it.")
    return title


def check_file_name(name: object) -> str:
    """Return ``name`` if it is a plain file name with an extension, else raise :class:`ReleaseError`."""
    if not isinstance(name, str) or not name:
        raise ReleaseError(f"a released file needs a non-empty name, got {name!r}.")
    hidden = _hidden_chars(name)
    if hidden:
        raise ReleaseError(
            f"file name {name!r} contains control or formatting characters ({', '.join(hidden[:5])}); "
            "use letters, digits, '-', '_' and '.'."
        )
    if "/" in name or "\\" in name or ".." in name:
        raise ReleaseError(
            f"file name {name!r} contains a path separator or '..'; give a plain name such as 'table_income.csv'."
        )
    if name.startswith(".") or "." not in name[1:] or name == "manifest.json":
        raise ReleaseError(
            f"file name {name!r} must not start with '.', must have an extension and must not be 'manifest.json'; "
            "for example 'table_income.csv'."
        )
    if len(name) > MAX_FILE_NAME:
        raise ReleaseError(f"file name is {len(name)} characters long; the maximum is {MAX_FILE_NAME}: shorten it.")
    return name


def check_release_id(release_id: object) -> str:
    """Return ``release_id`` if it is a safe folder name (letters, digits, ``_.-``), else raise."""
    if not isinstance(release_id, str) or not _RELEASE_ID.fullmatch(release_id) or ".." in release_id:
        raise ReleaseError(
            f"release id {release_id!r} is not allowed: use 1-128 letters, digits, '_', '.' or '-', starting with "
            "a letter or digit, without '..'."
        )
    return release_id


def check_text(text: object, what: str, *, required: bool = True, limit: int = 5000) -> str:
    """Return free text (purpose, justification, comment) if fit to show; line breaks and tabs are allowed."""
    if not isinstance(text, str) or (required and not text.strip()):
        raise ReleaseError(f"the {what} must be a non-empty text; write one or two sentences.")
    hidden = _hidden_chars(text.replace("\n", "").replace("\t", ""))
    if hidden:
        raise ReleaseError(
            f"the {what} contains control or formatting characters ({', '.join(hidden[:5])}); remove them."
        )
    if len(text) > limit:
        raise ReleaseError(f"the {what} is {len(text)} characters long; the maximum is {limit}: shorten it.")
    return text
