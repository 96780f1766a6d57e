"""The review page's stylesheet (served as ``/review/app.css``; the page's CSP allows styles from the vault only).

Laid out for a 1280 px screen: one column of at most 1200 px, tables that scroll inside their box instead of
widening the page, the charts two by two, and the decision panel with each button's feedback on its right.
"""

from __future__ import annotations

__all__ = ["REVIEW_CSS"]

REVIEW_CSS = """
:root { --ink: #1b1f24; --muted: #57606a; --line: #d0d7de; --soft: #f6f8fa; --blue: #0b5cad;
  --pass: #1a7f37; --review: #9a6700; --fail: #c62828; --pass-bg: #dafbe1; --review-bg: #fff3cd; --fail-bg: #fde2e1; }
* { box-sizing: border-box; }
html { font-size: 15px; }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
  background: #fff; line-height: 1.45; }
header.top { display: flex; justify-content: space-between; align-items: center; padding: .6rem 1.5rem;
  background: #154273; color: #fff; }
header.top h1 { font-size: 1.35rem; margin: 0; }
header.top p { margin: 0; font-size: .85rem; opacity: .85; }
header.top a, header.top button { color: #fff; border: 1px solid rgba(255,255,255,.6); background: transparent;
  border-radius: 4px; padding: .3rem .7rem; text-decoration: none; font: inherit; cursor: pointer; margin-left: .4rem; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
h2 { font-size: 1.3rem; margin: .4rem 0 .6rem; }
h3 { font-size: 1.1rem; margin: 0 0 .6rem; border-bottom: 2px solid var(--line); padding-bottom: .2rem; }
h4 { font-size: 1rem; margin: 0 0 .5rem; }
h5 { font-size: .95rem; margin: 1rem 0 .4rem; color: var(--muted); }
section.box, section.block, .warnings { margin: 1rem 0; }
#login-form { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
#login-form input { width: 28rem; max-width: 100%; padding: .35rem .5rem; font: inherit; }
button { font: inherit; padding: .4rem .9rem; border-radius: 4px; border: 1px solid var(--line);
  background: var(--soft);
  cursor: pointer; }
button.primary { background: var(--pass); border-color: var(--pass); color: #fff; }
button.danger { background: #fff; border-color: var(--fail); color: var(--fail); }
button.quiet { background: #fff; }
button:disabled { opacity: .55; cursor: wait; }
.list-head { display: flex; justify-content: space-between; align-items: baseline; }
.note { color: var(--muted); font-size: .88rem; margin: .3rem 0; }
.error { color: var(--fail); }
.table-wrap { max-width: 100%; overflow-x: auto; margin: .3rem 0 .8rem; }
table.data { border-collapse: collapse; width: 100%; font-size: .9rem; }
table.data th, table.data td { border-bottom: 1px solid var(--line); padding: .3rem .5rem; text-align: left;
  vertical-align: top; }
table.data th { background: var(--soft); font-weight: 600; }
table.data td { overflow-wrap: break-word; }
table.data .nowrap, .badge { white-space: nowrap; }
table.data td.num, table.data th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.requests tr.current td { background: #eaf2fb; }
table.coef { width: auto; min-width: 24rem; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .82rem; }
code.query { white-space: pre-wrap; word-break: break-all; }
table.provenance td:last-child { overflow-wrap: anywhere; width: 40%; }
dl.facts { display: grid; grid-template-columns: 11rem minmax(0, 1fr); gap: .25rem 1rem; margin: .3rem 0 .8rem; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
ul.inline-list { margin: 0; padding: 0; list-style: none; }
ul.inline-list li { display: inline; }
ul.inline-list li + li::before { content: " · "; color: var(--muted); }
.request-head { border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; background: var(--soft); }
nav.toc { display: flex; flex-wrap: wrap; gap: .3rem 1rem; margin: .6rem 0; font-size: .9rem; }
nav.toc a, a { color: var(--blue); }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; margin: 0 0 1rem; }
.badge { display: inline-block; border-radius: 10px; padding: 0 .55rem; font-size: .85rem; font-weight: 600;
  border: 1px solid currentColor; }
.badge.v-pass { color: var(--pass); background: var(--pass-bg); }
.badge.v-review { color: var(--review); background: var(--review-bg); }
.badge.v-fail { color: var(--fail); background: var(--fail-bg); }
.badge.v-none { color: var(--muted); }
.alert { border-left: 6px solid var(--review); background: var(--review-bg); padding: .6rem .9rem; margin: .5rem 0;
  border-radius: 4px; font-weight: 600; }
.alert.fail, .alert.not-independent { border-color: var(--fail); background: var(--fail-bg); }
.alert ul { margin: .3rem 0 0; font-weight: 400; }
.alert .strong { margin: 0; }
details.reasons { margin: .4rem 0; font-size: .9rem; }
details.reasons summary { cursor: pointer; color: var(--blue); }
.report-links { display: flex; gap: .8rem; flex-wrap: wrap; margin: .6rem 0 0; }
a.report-link { display: inline-block; padding: .35rem .8rem; border: 1px solid var(--blue); border-radius: 4px;
  text-decoration: none; font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1rem; }
.charts { align-items: start; }
figure.chart-box { margin: 0 0 1rem; border: 1px solid var(--line); border-radius: 6px; padding: .4rem; }
svg.chart { width: 100%; height: auto; display: block; font-family: inherit; }
svg.chart text { fill: var(--ink); font-size: 12px; }
svg.chart text.tick, svg.chart text.note, svg.chart text.axis-caption { fill: var(--muted); font-size: 11px; }
svg.chart text.row-head, svg.chart text.title { font-weight: 700; }
svg.chart .grid { stroke: #eaeef2; }
svg.chart .zero { stroke: #6e7781; stroke-width: 1.2; }
svg.chart .band-review { fill: var(--review-bg); }
svg.chart .band-fail { fill: var(--fail-bg); }
svg.chart .thr-review, svg.chart .legend-review { stroke: var(--review); stroke-width: 2; stroke-dasharray: 4 3; }
svg.chart .thr-fail, svg.chart .legend-fail { stroke: var(--fail); stroke-width: 2; stroke-dasharray: 4 3; }
svg.chart .overall { stroke: #6e7781; stroke-dasharray: 3 3; }
svg.chart line.ci { stroke-width: 3; stroke-linecap: round; }
svg.chart .v-pass { stroke: var(--pass); fill: var(--pass); }
svg.chart .v-review { stroke: var(--review); fill: var(--review); }
svg.chart .v-fail { stroke: var(--fail); fill: var(--fail); }
svg.chart .v-none, svg.chart .v-rate { stroke: var(--blue); fill: var(--blue); }
.decision { border: 2px solid var(--line); border-radius: 6px; padding: 1rem; background: var(--soft); }
.decision label { font-weight: 600; display: block; margin-bottom: .3rem; }
.decision textarea { width: 100%; font: inherit; padding: .5rem; min-height: 6rem; }
.actions { display: grid; grid-template-columns: 1fr; gap: .5rem; margin-top: .6rem; }
.act-group { display: flex; align-items: center; gap: .8rem; min-height: 2.2rem; }
.act-group button { min-width: 11rem; }
.feedback { font-size: .92rem; }
.feedback.ok { color: var(--pass); font-weight: 600; }
.feedback.bad { color: var(--fail); font-weight: 600; }
ul.votes, ul.comments { padding-left: 1.2rem; }
@media print {
  header.top nav, #login-box, #list-box, .decision .actions, .decision textarea, nav.toc { display: none; }
  .charts { grid-template-columns: 1fr; }
}
"""
