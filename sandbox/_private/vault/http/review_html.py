"""Small HTML builders of the review page: every text goes through :func:`esc`, every attribute is quoted.

The page's fragments are made on the server from the request's JSON, so escaping happens in one place; the page's
CSP (no inline script, no inline style) stops anything that would slip through from running.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .review_i18n import t, t_or

__all__ = ["esc", "tag", "table", "facts", "badge", "status_text", "kind_text", "section", "Raw", "sub"]


class Raw(str):
    """HTML that is already safe (made by these builders); anything else passed to them is escaped."""


def esc(value: object) -> str:
    """Escape text for HTML (``Raw`` passes through)."""
    if isinstance(value, Raw):
        return value
    return html.escape("" if value is None else str(value), quote=True)


def tag(name: str, content: object = "", **attrs: object) -> Raw:
    """Build ``<name attrs>content</name>``; ``cls`` is the class, ``data_x`` becomes ``data-x``; None is left out."""
    parts = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        attr = "class" if key == "cls" else key.rstrip("_").replace("_", "-")
        parts.append(attr if value is True else f'{attr}="{esc(value)}"')
    opening = f"<{name}{' ' if parts else ''}{' '.join(parts)}>"
    if isinstance(content, list | tuple):
        content = Raw("".join(esc(c) for c in content))
    return Raw(f"{opening}{esc(content)}</{name}>")


def table(
    headers: Sequence[object],
    rows: Iterable[Sequence[object]],
    *,
    cls: str = "data",
    numeric: Iterable[int] = (),
    nowrap: Iterable[int] = (),
) -> Raw:
    """Build a table with a header row; ``numeric`` columns are right-aligned, ``nowrap`` columns never wrap."""
    right, keep = set(numeric), set(nowrap)

    def kind(i: int) -> str | None:
        return " ".join(c for c, on in (("num", i in right), ("nowrap", i in keep)) if on) or None

    head = tag("tr", [tag("th", h, cls=kind(i)) for i, h in enumerate(headers)])
    body = [tag("tr", [tag("td", c, cls=kind(i)) for i, c in enumerate(r)]) for r in rows]
    return tag("div", tag("table", [tag("thead", head), tag("tbody", body)], cls=cls), cls="table-wrap")


def facts(pairs: Iterable[tuple[object, object]], cls: str = "facts") -> Raw:
    """Build a definition list of ``(term, value)`` pairs (pairs whose value is empty are left out)."""
    items = [Raw(tag("dt", k) + tag("dd", v)) for k, v in pairs if v not in (None, "", [], ())]
    return tag("dl", items, cls=cls)


def badge(verdict: str | None, lang: str) -> Raw:
    """Build a coloured verdict: pass, review or fail (in the page's language)."""
    v = str(verdict or "")
    return tag("span", t_or(f"v_{v}", lang, v or "–"), cls=f"badge v-{v or 'none'}")


def status_text(status: str, lang: str) -> str:
    """Return a request status in the page's language."""
    return t_or(f"st_{status}", lang, status)


def kind_text(kind: str, lang: str) -> str:
    """Return an item kind (aggregate, model, audit) in the page's language."""
    return t_or(f"k_{kind}", lang, kind)


def section(anchor: str, title_key: str, lang: str, content: object, *, extra: Mapping[str, str] | None = None) -> Raw:
    """Build a titled section with an anchor id, for the page's table of contents."""
    return tag("section", [tag("h3", t(title_key, lang)), content], id=anchor, cls="block", **(extra or {}))


def sub(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """Return ``data[key]`` when it is a mapping, else an empty one (stored JSON may lack a block)."""
    value = data.get(key)
    return value if isinstance(value, Mapping) else {}
