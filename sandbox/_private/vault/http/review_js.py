"""The review page's script (served as ``/review/app.js``; the page's CSP forbids inline script).

It keeps the reviewer's token in the tab's ``sessionStorage`` (never a cookie), fetches the list and the request
as HTML fragments that the vault rendered and escaped, and sends decisions to ``POST /v1/releases/{id}/actions``.
The vault's answer, a confirmation or its reason to refuse, is shown beside the button that was pressed. A
fairness report opens in a new tab through a one-use link (``POST .../report-link``), because a page opened by a
link cannot carry the token.
"""

from __future__ import annotations

__all__ = ["REVIEW_JS"]

REVIEW_JS = r"""
"use strict";
const LANG = document.documentElement.lang || "nl";
const TEXT = JSON.parse(document.getElementById("i18n").textContent);
const $ = (id) => document.getElementById(id);
let current = null;

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));
}

function token() { return sessionStorage.getItem("token") || ""; }

async function call(method, path, body, accept) {
  const headers = {"Authorization": "Bearer " + token(), "Accept": accept || "application/json"};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  if (!r.ok) {
    let message = "HTTP " + r.status;
    try { message = (await r.json()).message || message; } catch (e) { /* not JSON */ }
    const err = new Error(message);
    err.status = r.status;
    throw err;
  }
  return accept === "text/html" ? r.text() : r.json();
}

function fragment(path) { return call("GET", path, undefined, "text/html"); }

function showLoggedIn(yes) {
  $("login-box").hidden = yes;
  $("list-box").hidden = !yes;
  $("logout").hidden = !yes;
  if (!yes) $("detail").hidden = true;
}

async function loadList() {
  const closed = $("closed").checked ? "true" : "false";
  $("list").innerHTML = await fragment("/review/fragments/requests?lang=" + LANG + "&closed=" + closed);
  markCurrent();
  showLoggedIn(true);
}

function markCurrent() {
  for (const a of document.querySelectorAll("#list a.open-request")) {
    a.closest("tr").classList.toggle("current", a.dataset.id === current);
  }
}

async function openRequest(id, keepScroll) {
  const html = await fragment("/review/fragments/requests/" + encodeURIComponent(id) + "?lang=" + LANG);
  const y = window.scrollY;
  current = id;
  $("detail").innerHTML = html;
  $("detail").hidden = false;
  history.replaceState(null, "", "#" + id);
  $("lang-switch").href = $("lang-switch").dataset.base + "#" + id;
  markCurrent();
  if (keepScroll) window.scrollTo(0, y); else $("detail").scrollIntoView();
}

function feedback(action, text, ok) {
  const box = document.querySelector('.feedback[data-for="' + action + '"]');
  if (!box) return;
  box.textContent = text;
  box.className = "feedback " + (ok ? "ok" : "bad");
}

function buttons(disabled) {
  for (const b of document.querySelectorAll("#detail button.act")) b.disabled = disabled;
}

async function act(action) {
  if (!current) return;
  const comment = $("comment").value;
  for (const b of document.querySelectorAll("#detail .feedback")) { b.textContent = ""; b.className = "feedback"; }
  buttons(true);
  let result;
  try {
    result = await call("POST", "/v1/releases/" + encodeURIComponent(current) + "/actions", {action, comment});
  } catch (err) {
    buttons(false);
    feedback(action, fill(TEXT.refused, {message: err.message}), false);
    return;
  }
  await openRequest(current, true);
  await loadList();
  const status = TEXT["st_" + result.state] || result.state;  // reviewers see the workflow state
  feedback(action, fill(TEXT.done, {action: TEXT["a_" + action] || action, status}), true);
}

async function openReport(link) {
  const tab = window.open("", "_blank");
  try {
    const r = await call("POST", link.dataset.ticket, {});
    if (tab) { tab.opener = null; tab.location.href = r.url; } else { window.location.href = r.url; }
  } catch (err) {
    if (tab) tab.close();
    link.insertAdjacentText("afterend", " " + fill(TEXT.refused, {message: err.message}));
  }
}

function fail(err) {
  if (err && err.status === 401) { sessionStorage.removeItem("token"); showLoggedIn(false); }
  $("login-error").textContent = fill(TEXT.refused, {message: err.message || String(err)});
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("token", $("token").value.trim());
  $("token").value = "";
  $("login-error").textContent = "";
  loadList().catch(fail);
});
$("logout").addEventListener("click", () => {
  sessionStorage.removeItem("token");
  location.replace(location.pathname);
});
$("closed").addEventListener("change", () => loadList().catch(fail));
$("list").addEventListener("click", (ev) => {
  const a = ev.target.closest("a.open-request");
  if (!a) return;
  ev.preventDefault();
  openRequest(a.dataset.id).catch(fail);
});
$("detail").addEventListener("click", (ev) => {
  const button = ev.target.closest("button.act");
  if (button) { act(button.dataset.action); return; }
  const standard = ev.target.closest("#standard-reason");
  if (standard) { $("comment").value = standard.dataset.text; return; }
  const link = ev.target.closest("a.report-link");
  if (link) { ev.preventDefault(); openReport(link); }
});
if (token()) {
  loadList().then(() => {
    const id = location.hash.slice(1);
    if (/^req_[0-9a-f]{16}$/.test(id)) return openRequest(id);
    return undefined;
  }).catch(fail);
} else {
  showLoggedIn(false);
}
"""
