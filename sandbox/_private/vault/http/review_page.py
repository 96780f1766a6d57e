"""The reviewer web page: plain HTML and a small script (served separately, so the page's CSP forbids inline JS).

Every value is inserted with ``textContent``, never as HTML, so nothing an analyst wrote (a title, a comment, a
category label) can run in a reviewer's browser. The token lives in ``sessionStorage`` of the tab only.

What the page shows reviewers beyond the analyst's view: the request's ``reviewer_findings`` (the exact disclosure
verdict and reasons per item, with true small counts; whether the request may be approved) and the flags of
analysts with repeated blocked or exact-fail requests (``GET /v1/gate/flags``). Votes and comments are visible to
the analyst, so the page offers the standard rejection text, which states no figures.
"""

from __future__ import annotations

import json

from sandbox._private.vault.gate.requests import STANDARD_REASON

__all__ = ["REVIEW_PAGE", "REVIEW_JS"]

REVIEW_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Release review - analysis sandbox</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1.5rem; max-width: 72rem; color: #1b1b1b; }
 table { border-collapse: collapse; margin: .5rem 0 1rem; }
 th, td { border: 1px solid #bbb; padding: .25rem .5rem; text-align: left; vertical-align: top; }
 .pass { color: #156b24; } .review { color: #8a5a00; } .fail { color: #a4161a; font-weight: bold; }
 #error { color: #a4161a; } #message { color: #156b24; }
 section { border-top: 1px solid #ddd; margin-top: 1rem; padding-top: .5rem; }
 pre { background: #f4f4f4; padding: .5rem; overflow-x: auto; }
 textarea { width: 100%; min-height: 4rem; }
</style>
</head>
<body>
<h1>Release review</h1>
<form id="login-form">
 <label>Reviewer token <input id="token" type="password" autocomplete="off" size="50"></label>
 <button id="login" type="submit">Log in</button>
</form>
<p id="error" role="alert"></p>
<p id="message" role="status"></p>
<div id="who"></div>
<section id="list-section" hidden>
 <h2>Requests</h2>
 <table id="requests"><thead><tr><th>Title</th><th>Author</th><th>Status</th><th>Reviews</th>
 <th>Gate</th><th>Exact checks</th><th>&epsilon;</th></tr></thead><tbody></tbody></table>
 <h3>Flags</h3>
 <ul id="flags"></ul>
</section>
<section id="detail" hidden>
 <h2 id="detail-title"></h2>
 <p><b>Purpose:</b> <span id="detail-purpose"></span></p>
 <p><b>Justification:</b> <span id="detail-justification"></span></p>
 <p><b>Status:</b> <span id="detail-status"></span> &middot; <b>Gate:</b> <span id="detail-verdict"></span>
  &middot; <b>Reviews:</b> <span id="detail-votes-in"></span></p>
 <ul id="detail-reasons"></ul>
 <h3>Exact disclosure checks (reviewers only)</h3>
 <p id="detail-exact"></p>
 <ul id="detail-flags"></ul>
 <h3>Privacy spend</h3>
 <p id="detail-spend"></p>
 <h3>Items and checks</h3>
 <div id="items"></div>
 <h3>Provenance</h3>
 <div id="provenance"></div>
 <h3>Votes</h3>
 <ul id="votes"></ul>
 <h3>Comments</h3>
 <ul id="comments"></ul>
 <h3>Decision</h3>
 <textarea id="comment" placeholder="Comment (required to reject or return)"></textarea>
 <p>
  <button id="approve" type="button">Approve</button>
  <button id="return" type="button">Return to author</button>
  <button id="reject" type="button">Reject</button>
  <button id="comment-only" type="button">Comment</button>
  <button id="standard-reason" type="button">Use the standard reason</button>
 </p>
 <p>Votes and comments are shown to the analyst: do not quote the exact findings.</p>
</section>
<script src="/review/app.js"></script>
</body>
</html>
"""

REVIEW_JS = r"""
"use strict";
let current = null;
const STANDARD_REASON = __STANDARD_REASON__;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function say(id, text) { document.getElementById(id).textContent = text || ""; }

async function api(method, path, body) {
  const headers = {"Authorization": "Bearer " + (sessionStorage.getItem("token") || "")};
  if (body) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {method, headers, body: body ? JSON.stringify(body) : undefined});
  const data = await r.json();
  if (!r.ok) throw new Error(data.message || ("HTTP " + r.status));
  return data;
}

function table(rows, columns) {
  const t = el("table");
  const head = t.createTHead().insertRow();
  for (const c of columns) head.appendChild(el("th", c));
  const body = t.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const c of columns) {
      const v = r[c];
      tr.appendChild(el("td", v === null || v === undefined ? "" : (typeof v === "object" ? JSON.stringify(v) : v)));
    }
  }
  return t;
}

function columnsOf(rows) {
  const cols = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  return cols;
}

async function loadList() {
  const rows = await api("GET", "/v1/releases");
  const body = document.querySelector("#requests tbody");
  body.replaceChildren();
  for (const r of rows) {
    const tr = body.insertRow();
    const link = el("a", r.title);
    link.href = "#" + r.id;
    link.dataset.id = r.id;
    link.addEventListener("click", (ev) => { ev.preventDefault(); openRequest(r.id).catch(fail); });
    const td = el("td"); td.appendChild(link); tr.appendChild(td);
    tr.appendChild(el("td", r.author));
    tr.appendChild(el("td", r.status + " (" + r.state + ")"));
    tr.appendChild(el("td", r.votes_in + " of " + r.required_approvals));
    tr.appendChild(el("td", r.gate.verdict, r.gate.verdict));
    const exact = (r.reviewer_findings || {}).disclosure_verdict || "-";
    tr.appendChild(el("td", exact, exact));
    tr.appendChild(el("td", Number(r.gate.total_epsilon).toFixed(3)));
  }
  const flags = await api("GET", "/v1/gate/flags");
  document.getElementById("flags").replaceChildren(...flags.map(flagItem));
  document.getElementById("list-section").hidden = false;
}

function flagItem(f) {
  return el("li", f.analyst + " on " + f.dataset + ", " + f.day + ": " + f.blocked + " blocked and " + f.exact_fail +
    " failing the exact checks, of " + f.requests + " requests (flag from " + f.threshold + ")", "review");
}

function fairnessReport(values) {
  const box = el("div");
  box.className = "fairness-report";
  box.appendChild(el("h4", "Fairness report"));
  const verdict = values.verdict || {};
  box.appendChild(el("p", "Verdict: " + (verdict.status || "?"), verdict.status));
  const reasons = el("ul");
  for (const r of verdict.reasons || []) reasons.appendChild(el("li", r));
  box.appendChild(reasons);
  if (values.definition) box.appendChild(el("p", "Definition: " + values.definition));
  const disp = values.disparities || [];
  if (disp.length) { box.appendChild(el("h5", "Disparities")); box.appendChild(table(disp, columnsOf(disp))); }
  const groups = values.by_group || [];
  if (groups.length) { box.appendChild(el("h5", "By group")); box.appendChild(table(groups, columnsOf(groups))); }
  const proxies = values.proxies;
  box.appendChild(el("h5", "Proxy check"));
  if (proxies && proxies.length) box.appendChild(table(proxies, columnsOf(proxies)));
  else box.appendChild(el("p", proxies ? "No features checked." : "No proxy check in this audit."));
  return box;
}

function itemBlock(item, detail, exact) {
  const box = el("div");
  box.className = "item";
  box.dataset.kind = item.kind;
  box.appendChild(el("h4", item.kind + " " + item.id + " - " + item.dataset + " - epsilon " + item.epsilon));
  box.appendChild(el("p", "Gate (the analyst's view, DP values only): " + item.verdict, item.verdict));
  const ul = el("ul");
  for (const r of item.reasons) ul.appendChild(el("li", r));
  box.appendChild(ul);
  if (exact) {
    const v = exact.disclosure_verdict;
    box.appendChild(el("p", "Exact disclosure checks (true counts, reviewers only): " + v, v));
    const ex = el("ul");
    ex.className = "exact";
    for (const r of exact.reasons) ex.appendChild(el("li", r));
    box.appendChild(ex);
  }
  const values = (detail && detail.values) || {};
  if (item.kind === "audit") box.appendChild(fairnessReport(values));
  else if (item.kind === "aggregate" && values.rows) {
    box.appendChild(table(values.rows, values.columns || columnsOf(values.rows)));
  }
  else box.appendChild(el("pre", JSON.stringify(values, null, 2)));
  return box;
}

async function openRequest(id) {
  const r = await api("GET", "/v1/releases/" + encodeURIComponent(id));
  current = r;
  say("detail-title", r.title);
  say("detail-purpose", r.purpose);
  say("detail-justification", r.justification || "-");
  say("detail-status", r.status + " (" + r.state + ", round " + r.round + ")");
  const v = document.getElementById("detail-verdict");
  v.textContent = r.gate.verdict; v.className = r.gate.verdict;
  say("detail-votes-in", r.votes_in + " of " + r.required_approvals + " required");
  const reasons = document.getElementById("detail-reasons");
  reasons.replaceChildren(...r.gate.reasons.map((x) => el("li", x)));
  const eps = Number(r.gate.total_epsilon).toFixed(3);
  say("detail-spend", "Total epsilon " + eps + " over " + r.gate.items.length + " items");
  const findings = r.reviewer_findings || {};
  const exactById = {};
  for (const f of findings.items || []) exactById[f.id] = f;
  const verdict = findings.disclosure_verdict || "not recorded (request made before exact findings were kept)";
  const ex = document.getElementById("detail-exact");
  ex.textContent = verdict + (findings.approvable === false ? " - cannot be approved: reject or return it" : "");
  ex.className = findings.disclosure_verdict || "";
  document.getElementById("detail-flags").replaceChildren(...(findings.flags || []).map(flagItem));
  const items = document.getElementById("items");
  items.replaceChildren(...r.gate.items.map((i) => itemBlock(i, (r.details || {})[i.id], exactById[i.id])));
  const ledger = Object.values(r.details || {}).map((d) => d.ledger);
  const prov = document.getElementById("provenance");
  const provCols = ["id", "kind", "dataset", "version", "epsilon", "delta", "mechanism", "run_id", "analyst",
    "created", "result_sha256", "query"];
  prov.replaceChildren(table(ledger, provCols));
  const vote = (x) => el("li", x.reviewer + ": " + x.decision + (x.comment ? " - " + x.comment : ""));
  document.getElementById("votes").replaceChildren(...r.votes.map(vote));
  document.getElementById("comments").replaceChildren(...r.comments.map((x) => el("li", x.author + ": " + x.text)));
  document.getElementById("detail").hidden = false;
}

function fail(err) { say("message", ""); say("error", err.message || String(err)); }

async function act(action) {
  if (!current) return;
  say("error", ""); say("message", "");
  const comment = document.getElementById("comment").value;
  const r = await api("POST", "/v1/releases/" + encodeURIComponent(current.id) + "/actions", {action, comment});
  document.getElementById("comment").value = "";
  say("message", action + " recorded; the request is now " + r.status);
  await loadList();
  await openRequest(current.id);
}

document.getElementById("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("token", document.getElementById("token").value.trim());
  say("error", "");
  loadList().then(() => say("who", "Logged in.")).catch(fail);
});
const buttons = [["approve", "approve"], ["return", "return"], ["reject", "reject"], ["comment-only", "comment"]];
document.getElementById("standard-reason").addEventListener("click", () => {
  document.getElementById("comment").value = STANDARD_REASON;
});
for (const [id, action] of buttons) {
  document.getElementById(id).addEventListener("click", () => act(action).catch(fail));
}
if (sessionStorage.getItem("token")) loadList().catch(fail);
""".replace("__STANDARD_REASON__", json.dumps(STANDARD_REASON))
