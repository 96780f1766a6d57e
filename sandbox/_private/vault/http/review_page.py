"""The reviewer web page: its HTML shell in Dutch or English, and the files it loads from the vault.

The page is a shell (this module) that a script (:mod:`.review_js`) fills with fragments the vault renders
(:mod:`.review_view`) from the same JSON the API returns to a reviewer; its styles are :mod:`.review_css`, its
words :mod:`.review_i18n`, its charts :mod:`.review_charts`. The shell, script and stylesheet are served with a
strict CSP (:data:`PAGE_CSP`): script and styles only from the vault, no inline script or style, no frames, no
other hosts. Every value in a fragment is escaped by the vault; the token lives in the tab's ``sessionStorage``.

Beyond the analyst's view, reviewers see the request's ``reviewer_findings`` (the exact disclosure verdict and
reasons per item, with true small counts; whether the request may be approved) and the flags of analysts with
repeated blocked or exact-fail requests (``GET /v1/gate/flags``). Votes and comments are visible to the analyst, so
the page offers the gate's standard rejection text, which states no figures.
"""

from __future__ import annotations

import json

from .review_css import REVIEW_CSS
from .review_html import esc
from .review_i18n import LANGS, TEXT, t
from .review_js import REVIEW_JS

__all__ = ["review_page", "ASSETS", "PAGE_CSP", "PAGE_HEADERS", "REVIEW_JS", "REVIEW_CSS"]

#: The review page's Content-Security-Policy (also of its script and stylesheet).
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: The files of the page: name -> (text, media type).
_ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#154273"/>'
    '<path d="M4 8.5l2.5 2.5L12 5" stroke="#fff" stroke-width="2" fill="none"/></svg>'
)
ASSETS: dict[str, tuple[str, str]] = {
    "app.js": (REVIEW_JS, "text/javascript"),
    "app.css": (REVIEW_CSS, "text/css"),
    "icon.svg": (_ICON, "image/svg+xml"),
}
#: Words the script needs (statuses, actions, its two messages), per language.
_SCRIPT_KEYS = ("done", "refused", *(k for k in TEXT if k.startswith(("st_", "a_"))))


def _script_text(lang: str) -> str:
    data = {k: t(k, lang) for k in _SCRIPT_KEYS}
    # a JSON data block is never executed; "<" is escaped so no text can close the element
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")


def review_page(lang: str) -> str:
    """Return the page's HTML shell in ``lang`` ('nl' or 'en')."""
    other = next(x for x in LANGS if x != lang)
    switch = f"/review?lang={other}"
    return f"""<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(t("title", lang))}</title>
<link rel="stylesheet" href="/review/app.css">
<link rel="icon" href="/review/icon.svg" type="image/svg+xml">
</head>
<body>
<header class="top">
 <div><h1>{esc(t("title", lang))}</h1><p>{esc(t("subtitle", lang))}</p></div>
 <nav><a id="lang-switch" hreflang="{other}" lang="{other}" href="{switch}" data-base="{switch}">
  {esc(t("other_lang", lang))}</a>
 <button id="logout" type="button" hidden>{esc(t("logout", lang))}</button></nav>
</header>
<main>
<section id="login-box" class="box">
 <form id="login-form">
  <label for="token">{esc(t("token", lang))}</label>
  <input id="token" type="password" autocomplete="off" spellcheck="false">
  <button id="login" type="submit">{esc(t("login", lang))}</button>
 </form>
 <p class="note">{esc(t("token_note", lang))}</p>
 <p id="login-error" class="error" role="alert"></p>
</section>
<section id="list-box" class="box" hidden>
 <div class="list-head"><h2>{esc(t("requests", lang))}</h2>
  <label><input type="checkbox" id="closed"> {esc(t("show_closed", lang))}</label></div>
 <div id="list"><p class="note">{esc(t("loading", lang))}</p></div>
 <p class="note">{esc(t("pick", lang))}</p>
</section>
<section id="detail" class="box" hidden></section>
</main>
<script id="i18n" type="application/json">{_script_text(lang)}</script>
<script src="/review/app.js"></script>
</body>
</html>
"""
