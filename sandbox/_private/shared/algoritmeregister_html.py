"""The readable page of an Algoritmeregister draft: every field in the standard's order, flags where unfilled.

The page is self-contained (inline style, no scripts, no external resources) and escapes every value, so an
author's text can never become markup. Its words are Dutch or English (``lang``); the values stay Dutch, as the
register is Dutch. Links become anchors only when they start with ``https://``.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from .algoritmeregister_check import validate
from .algoritmeregister_fields import FIELDS, STANDARD_VERSION, RegisterField, field_spec
from .algoritmeregister_values import Link, Part, Problem, RegisterDraft

__all__ = ["render_html"]

_WORDS = {
    "nl": {
        "title": "Concept voor het Algoritmeregister",
        "intro": f"Dit concept volgt publicatiestandaard {STANDARD_VERSION} van het Algoritmeregister. Het is nog "
        "niet gepubliceerd: uw organisatie vult het aan, controleert het en voert het in het register in.",
        "filled": "{filled} van {total} velden ingevuld.",
        "unfilled": "Nog in te vullen: {n} velden, waarvan {r} verplicht.",
        "incomplete": "Aanvulling door de auteur nodig: {names}.",
        "problems": "Voldoet nog niet aan de standaard",
        "provenance": "Herkomst (geen onderdeel van de publicatie)",
        "flag": "nog in te vullen",
        "flag_add": "aanvulling door de auteur nodig",
        "required": "verplicht",
        "optional": "optioneel",
        "chars": "{n} / {limit} tekens",
        "allowed": "Toegestane waarden",
        "values_note": "",
    },
    "en": {
        "title": "Draft for the Algoritmeregister",
        "intro": f"This draft follows publication standard {STANDARD_VERSION} of the Algoritmeregister, the Dutch "
        "government's register of algorithms. It is not published: your organisation completes it, checks it "
        "and enters it in the register.",
        "filled": "{filled} of {total} fields filled in.",
        "unfilled": "To be filled in: {n} fields, {r} of them required.",
        "incomplete": "The author's part is needed: {names}.",
        "problems": "Does not yet meet the standard",
        "provenance": "Provenance (not part of the publication)",
        "flag": "to be filled in",
        "flag_add": "the author's part is needed",
        "required": "required",
        "optional": "optional",
        "chars": "{n} / {limit} characters",
        "allowed": "Permitted values",
        "values_note": "The register is published in Dutch, so the values below are in Dutch.",
    },
}
_SOURCES = {
    "request": ("uit het vrijgaveverzoek", "from the release request"),
    "spec": ("uit de modelspecificatie", "from the model spec"),
    "audit": ("uit de fairness-audit", "from the fairness audit"),
    "policy": ("uit het beleid", "from the policy"),
    "standard": ("vastgelegd door de standaard", "fixed by the standard"),
    "default": ("voorlopige waarde van de sandbox", "the sandbox's default"),
    "author": ("door de auteur", "by the author"),
}
_PROVENANCE = {
    "standard": ("Standaard", "Standard"),
    "standard_source": ("Bron van de veldtabel", "Source of the field table"),
    "request_id": ("Vrijgaveverzoek", "Release request"),
    "request_author": ("Auteur", "Author"),
    "request_created": ("Aangemaakt", "Created"),
    "model": ("Model", "Model"),
    "dataset": ("Dataset", "Dataset"),
    "policy": ("Beleid", "Policy"),
    "policy_sha256": ("Beleid sha256", "Policy sha256"),
    "audit_verdict": ("Oordeel fairness-audit", "Fairness audit verdict"),
}
_STYLE = """
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1b1b;margin:0;background:#f6f7f9}
main{max-width:60rem;margin:0 auto;padding:1.5rem 2rem 3rem;background:#fff}
h1{font-size:1.6rem;margin:.2rem 0 .6rem}h2{font-size:1.1rem;margin:0 0 .4rem}
p,li{overflow-wrap:anywhere}code{font-size:.85em;color:#555}
.summary{background:#eef3fb;border-radius:6px;padding:.6rem 1rem}
section.field{border-left:4px solid #c9d3e0;padding:.5rem 1rem;margin:1rem 0}
section.unfilled{border-left-color:#d9822b;background:#fff8f0}
section.incomplete{border-left-color:#d9822b}section.problem{border-left-color:#c0392b;background:#fdf1f0}
.src{font-size:.8rem;color:#5b6b7f;margin:.2rem 0}.flag{display:inline-block;background:#d9822b;color:#fff;
border-radius:3px;padding:0 .4rem;font-size:.85rem;font-weight:600}.hint{color:#444;margin:.3rem 0}
.req{font-size:.75rem;font-weight:normal;color:#5b6b7f;margin-left:.4rem}.len{font-size:.8rem;color:#5b6b7f}
.issue{color:#a93226;margin:.3rem 0}table{border-collapse:collapse}td,th{text-align:left;padding:.2rem .8rem .2rem 0;
vertical-align:top;font-size:.9rem}th{font-weight:600}td{word-break:break-all}
"""


def _label(spec: RegisterField, lang: str) -> str:
    return spec.label_nl if lang == "nl" else spec.label_en


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{escape(p).replace(chr(10), '<br>')}</p>" for p in text.split("\n\n") if p.strip())


def _link(entry: Link) -> str:
    title = escape(entry.title)
    if not entry.link:
        return f"<li>{title}</li>"
    if entry.link.startswith("https://"):
        return f'<li>{title}: <a href="{escape(entry.link, quote=True)}">{escape(entry.link)}</a></li>'
    return f"<li>{title}: {escape(entry.link)}</li>"


def _value(part: Part) -> str:
    if isinstance(part.value, str):
        return _paragraphs(part.value)
    items = [_link(v) if isinstance(v, Link) else f"<li>{escape(str(v))}</li>" for v in part.value]
    return f"<ul>{''.join(items)}</ul>"


def _field(spec: RegisterField, draft: RegisterDraft, problems: Sequence[Problem], lang: str) -> str:
    w, i = _WORDS[lang], 0 if lang == "nl" else 1
    parts = draft.parts.get(spec.name, ())
    mine = [p for p in problems if p.field == spec.name or p.field.startswith(spec.name + "[")]
    css = "unfilled" if not parts else "problem" if mine else "incomplete" if spec.name in draft.incomplete else ""
    label = _label(spec, lang)
    need = w["required"] if spec.required else w["optional"]
    out = [
        f'<section class="field {css}" id="f-{spec.name}">',
        f'<h2>{escape(label)} <code>{spec.name}</code><span class="req">{need}</span></h2>',
    ]
    for part in parts:
        out.append(f'<div class="part"><p class="src">{_SOURCES[part.source][i]}</p>{_value(part)}</div>')
    if not parts or spec.name in draft.incomplete:
        out.append(f'<p><span class="flag">{w["flag"] if not parts else w["flag_add"]}</span></p>')
        out.append(f'<p class="hint">{escape(spec.hint_nl if lang == "nl" else spec.hint_en)}</p>')
        if spec.allowed and not parts:
            out.append(f'<p class="hint">{w["allowed"]}: {escape(", ".join(spec.allowed))}</p>')
    if spec.kind == "text" and parts and spec.max_length:
        n = len(str(draft.values[spec.name]))
        out.append(f'<p class="len">{w["chars"].format(n=n, limit=spec.max_length)}</p>')
    out += [f'<p class="issue" lang="en">{escape(p.message)}</p>' for p in mine]
    out.append("</section>")
    return "\n".join(out)


def render_html(draft: RegisterDraft, lang: str = "nl") -> str:
    """Render ``draft`` as a self-contained HTML page in Dutch (``'nl'``) or English (``'en'``)."""
    if lang not in _WORDS:
        raise ValueError(f"lang must be 'nl' or 'en', got {lang!r}.")
    w, i = _WORDS[lang], 0 if lang == "nl" else 1
    problems = validate(draft)
    shown = [f for f in FIELDS if f.source != ("register",)]
    name = str(draft.values.get("name", ""))
    summary = [
        w["filled"].format(filled=len(shown) - len(draft.unfilled), total=len(shown)),
        w["unfilled"].format(n=len(draft.unfilled), r=len(draft.missing_required)),
    ]
    if draft.incomplete:
        summary.append(w["incomplete"].format(names=", ".join(_label(field_spec(n), lang) for n in draft.incomplete)))
    head = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(w['title'])}: {escape(name)}</title><style>{_STYLE}</style></head><body><main>",
        f'<p class="src">{escape(w["title"])}</p><h1>{escape(name)}</h1>',
        f"<p>{escape(w['intro'])}</p>" + (f"<p>{escape(w['values_note'])}</p>" if w["values_note"] else ""),
        f'<div class="summary"><p>{" ".join(escape(s) for s in summary)}</p></div>',
    ]
    if problems:
        items = "".join(f"<li>{escape(p.message)}</li>" for p in problems)
        head.append(f'<h2>{w["problems"]}</h2><ul class="issue" lang="en">{items}</ul>')
    rows = "".join(
        f"<tr><th>{_PROVENANCE[k][i]}</th><td>{escape(v)}</td></tr>"
        for k, v in draft.provenance.items()
        if k in _PROVENANCE
    )
    body = [_field(f, draft, problems, lang) for f in shown]
    tail = [f"<h2>{w['provenance']}</h2><table>{rows}</table>", "</main></body></html>"]
    return "\n".join([*head, *body, *tail]) + "\n"
