"""The end-to-end demo behind ``make demo``: from a synthetic population to a verified release of a model.

:func:`run_demo` walks the product as its three roles would, and prints each step as it goes:

1. **population**: generate ``<workspace>/population`` (reused when its manifest matches) and show its
   calibration against the published Dutch figures;
2. **vault**: register the tables (``sandbox dataset add-population``) and start, or reuse, the workspace's vault;
3. **model 1**: run study 03 with its defaults through :func:`~sandbox.run_study` (``sandbox run``'s code path).
   The plan: the gate blocks it, and the demo prints the reasons the analyst sees;
4. **variant 2**: the study's documented second variant (the debt-register features, more ε on the audit; see
   the notebook). The plan: the gate passes it to review. Should DP noise or a small population change an outcome,
   the demo says what happened and what it does instead (withdraw an unblocked model 1; try the fallback
   variant when variant 2 is blocked), and stops with a message naming the fix when nothing passed;
5. **review**: two reviewer tokens minted by the demo (``sandbox vault token create``), labelled as demo
   identities, approve through :func:`~sandbox.connect_reviewer`. On a local vault the analyst can mint
   reviewer tokens, so such a release is **not independently reviewed**, and the demo says so;
6. **outbox**: the released folder and its files;
7. **verify**: ``sandbox verify`` over the audit log and the outbox;

and then next steps that work as printed (with the ``sandbox`` executable as it can be called from here).

Only public interfaces are used: ``synthetic``, the ``sandbox`` CLI (in this process), ``sb.connect``,
``sb.run_study``, ``ws.request``, ``ws.result``, ``sb.connect_reviewer`` and ``sb.verify_workspace``.

A second demo in the same workspace with the same population reuses everything (the population, the registered
tables, the runs and the requests in ``<workspace>/demo.json``) and spends nothing. A demo with another
population (``HOUSEHOLDS``, seed or scenario) never shows an earlier demo's results: it generates, registers and
runs anew, and says so.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from .shared.canonical import sha256_file
from .shared.errors import ReleaseError, SandboxError, StudyRunError
from .shared.files import write_private

__all__ = [
    "DemoResult",
    "Attempt",
    "Variant",
    "VARIANTS",
    "run_demo",
    "as_dict",
    "STUDY_NOTEBOOK",
    "DEMO_STATE",
    "DEMO_REVIEWERS",
    "NOT_INDEPENDENT",
]

#: The study the demo runs (relative to the repository root).
STUDY_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "03_study_early_warning_model.ipynb"
#: Where the demo remembers its population, runs and requests, inside the workspace.
DEMO_STATE = "demo.json"
_STATE_FORMAT = "sandbox.demo/2"
#: The two reviewer identities the demo mints on the local vault.
DEMO_REVIEWERS = ("demo-reviewer-1", "demo-reviewer-2")
#: What a release approved by the demo's reviewers is, on a local vault (the analyst minted their tokens).
NOT_INDEPENDENT = "not independently reviewed"
_DEPLOYED_VAULT_ENV = ("SANDBOX_VAULT_URL", "SANDBOX_TOKEN")
_PASSED = frozenset({"pending_review", "partially_reviewed", "reviewed", "approved", "released"})
_STEPS = 7
Echo = Callable[[str], None]


@dataclass(frozen=True)
class Variant:
    """One model the demo submits: notebook 03 with these parameters.

    Parameters
    ----------
    key : str
        Its name in ``demo.json``.
    label : str
        How the demo prints it.
    why : str
        One line on what it changes and why.
    params : mapping
        Parameters of notebook 03 (empty: the study's defaults).
    expect : {"blocked", "pending_review"}
        What the demo plans for it.
    """

    key: str
    label: str
    why: str
    params: Mapping[str, Any]
    expect: str

    def command(self, sandbox: str, workspace: str) -> str:
        """Return the ``sandbox run`` line that runs this variant by hand."""
        notebook = _shown_path(STUDY_NOTEBOOK)
        line = f"{sandbox} run {shlex.quote(notebook)} --workspace {shlex.quote(workspace)}"
        shown = {k: v for k, v in self.params.items() if k != "justification"}  # long prose: in the notebook
        if shown:
            flow = yaml.safe_dump(shown, default_flow_style=True, width=10_000, sort_keys=False).strip()
            line += f" -y {shlex.quote(flow)}"
        return line


_PURPOSE = "Early warning of problematic debt, so that municipalities can offer debt assistance in time."
#: Model 1, the documented variant 2 and the fallback the demo tries when variant 2 is blocked against the plan.
VARIANTS: tuple[Variant, ...] = (
    Variant(
        "model-1",
        "model 1",
        "study 03 as shipped: income band, arrears signals, housing and creditors; the policy's audit ε (0.5)",
        {},
        "blocked",
    ),
    Variant(
        "variant-2",
        "variant 2",
        "the debt-register features only (total debt, savings buffer), and ε 2.0 on the audit so that its "
        "noise cannot decide the verdict (notebook 03, 'Two variants')",
        {
            "features": ["total_debt", "savings_buffer"],
            "audit_epsilon": 2.0,
            "title": "Vroegsignalering problematische schulden v2 (schuldenregister)",
            "justification": "Variant 2 after the fairness audit blocked variant 1 (error rates differed by age "
            "band and household type; income_band was a proxy for age_band): debt-register features only. DP "
            "model parameters and a DP fairness audit (epsilon 2.0); no row-level output.",
        },
        "pending_review",
    ),
    Variant(
        "fallback",
        "fallback variant",
        "total debt only, ε 2.0 on the audit: the smallest disparities measured while designing the demo",
        {
            "features": ["total_debt"],
            "audit_epsilon": 2.0,
            "title": "Vroegsignalering problematische schulden v3 (schuldenregister, alleen totale schuld)",
            "justification": "Fallback after variants 1 and 2 were blocked: total debt only. DP model parameters "
            "and a DP fairness audit (epsilon 2.0); no row-level output.",
        },
        "pending_review",
    ),
)


@dataclass(frozen=True)
class Attempt:
    """One model the demo submitted, and what the gate said (as the analyst sees it).

    Parameters
    ----------
    variant : str
        :attr:`Variant.key`.
    run_id, request_id : str
        The study run and its release request.
    status : str
        The request's status now.
    reasons : tuple of str
        The gate's reasons, as the analyst's view of the request gives them.
    verdict : str
        The fairness audit's verdict (pass / review / fail).
    margin : str
        The largest decisive disparity against its fail threshold, in words.
    report : Path or None
        The fairness audit's HTML report, in ``<workspace>/reports/`` (None: the request holds no audit).
    reused : bool
        From an earlier demo in this workspace.
    """

    variant: str
    run_id: str
    request_id: str
    status: str
    reasons: tuple[str, ...]
    verdict: str
    margin: str
    report: Path | None
    reused: bool = False


@dataclass(frozen=True)
class DemoResult:
    """What one demo did and where its outputs are.

    Parameters
    ----------
    workspace, population : Path
        The workspace and its generated population.
    population_reused : bool
        The population on disk matched the requested one and was not generated again.
    registered : tuple of str
        What ``sandbox dataset add-population`` printed (empty when this population was registered before).
    vault_url : str
        Where the vault listened during the demo.
    vault_started : bool
        This demo started the vault (rather than reusing a running one).
    attempts : tuple of Attempt
        Every model submitted, in order.
    release_id, release_status : str
        The request that passed the gate, and its status at the end (``released`` when all went to plan).
    reviewers : tuple of str
        The demo reviewer identities that approved it.
    outbox : Path or None
        Its folder in the outbox.
    outbox_files : tuple of str
        The human names of the released files (from its manifest).
    verified : bool
        ``sandbox verify`` said ok.
    deviations : tuple of str
        Every way the outcome differed from the plan, and what the demo did about it.
    reused : bool
        Everything came from an earlier demo in this workspace (nothing was spent).
    """

    workspace: Path
    population: Path
    population_reused: bool
    registered: tuple[str, ...]
    vault_url: str
    vault_started: bool
    attempts: tuple[Attempt, ...]
    release_id: str
    release_status: str
    reviewers: tuple[str, ...]
    outbox: Path | None
    outbox_files: tuple[str, ...]
    verified: bool
    deviations: tuple[str, ...] = ()
    reused: bool = False

    def __post_init__(self) -> None:
        if not self.release_id.startswith("req_"):
            raise ValueError(f"DemoResult.release_id must be a request id (req_...), got {self.release_id!r}.")

    @property
    def released(self) -> bool:
        """Whether the release is in the outbox and verified."""
        return self.release_status == "released" and self.outbox is not None and self.verified


# -- small helpers --------------------------------------------------------------------------------------------------
def _shown_path(path: Path) -> str:
    """``path`` relative to the current folder when it lies inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def sandbox_command() -> tuple[str, str | None]:
    """How to call the ``sandbox`` of this environment from here, and a hint when it is not on PATH."""
    exe = Path(sys.executable).parent / "sandbox"
    found = shutil.which("sandbox")
    if found and Path(found).resolve() == exe.resolve():
        return "sandbox", None
    shown = _shown_path(exe)
    activate = _shown_path(exe.parent / "activate")
    return shown, f"`sandbox` is not on your PATH here: the commands call {shown} (or run `source {activate}` first)"


def _cli(*args: str) -> str:
    """Run a ``sandbox`` command in this process (the CLI's code path); return its stdout, raise on failure."""
    from sandbox.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    if code != 0:
        raise StudyRunError(f"`sandbox {' '.join(args)}` failed (exit {code}): {err.getvalue().strip()}")
    return out.getvalue()


def _bullets(text: str, indent: str) -> list[str]:
    """Split a gate reason that lists several findings (``;``-separated) into one line per finding."""
    parts = [p.strip() for p in text.split("; ")]
    if len(parts) < 3:
        parts = [text]
    return [f"{indent}- {parts[0]}", *(f"{indent}  {p}" for p in parts[1:])]


def _reason_lines(reasons: Sequence[str], indent: str, where: str, limit: int = 14) -> list[str]:
    """Format at most ``limit`` lines of reasons; count the rest and say where to read them all."""
    lines: list[str] = []
    shown, cut = 0, 0
    for reason in reasons:
        more = _bullets(reason, indent)
        if len(more) > limit // 2:  # one reason of many findings: its first ones, and how many more
            cut += len(more) - limit // 2
            more = more[: limit // 2]
        if lines and len(lines) + len(more) > limit:
            break
        lines += more
        shown += 1
    if shown < len(reasons) or cut:
        left = f"{len(reasons) - shown} more reason(s)" if shown < len(reasons) else f"{cut} more finding(s)"
        lines.append(f"{indent}... and {left}: all of them are in {where}")
    return lines


@contextlib.contextmanager
def _local_vault_only() -> Iterator[None]:
    """Hide a deployed vault's ``SANDBOX_VAULT_URL``/``SANDBOX_TOKEN``: the demo uses the workspace's own vault."""
    saved = {k: os.environ.pop(k) for k in _DEPLOYED_VAULT_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


# -- state ----------------------------------------------------------------------------------------------------------
@dataclass
class _State:
    """``<workspace>/demo.json``: the population it belongs to, and what the demo did with it."""

    fingerprint: dict[str, Any]
    registered: list[str] = field(default_factory=list)
    attempts: dict[str, dict[str, str]] = field(default_factory=dict)
    release_id: str | None = None
    reviewers: list[str] = field(default_factory=list)
    finished: str | None = None

    @classmethod
    def load(cls, root: Path, fingerprint: dict[str, Any]) -> tuple[_State, bool]:
        """Return the state of this population, and whether an earlier demo's (another population) was set aside."""
        try:
            data = json.loads((root / DEMO_STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls(fingerprint), False
        if not isinstance(data, dict) or data.get("format") != _STATE_FORMAT or data.get("fingerprint") != fingerprint:
            return cls(fingerprint), True
        return (
            cls(
                fingerprint,
                list(data.get("registered") or []),
                dict(data.get("attempts") or {}),
                data.get("release_id"),
                list(data.get("reviewers") or []),
                data.get("finished"),
            ),
            False,
        )

    def save(self, root: Path) -> None:
        doc = {"format": _STATE_FORMAT, **asdict(self)}
        write_private(root / DEMO_STATE, json.dumps(doc, indent=2) + "\n")


def _fingerprint(population: Path, households: int, seed: int, scenario: str) -> dict[str, Any]:
    return {
        "households": households,
        "seed": seed,
        "scenario": scenario,
        "manifest_sha256": sha256_file(population / "manifest.json"),
    }


# -- the steps ------------------------------------------------------------------------------------------------------
class _Demo:
    """One demo run: its workspace, printer, state and what it found (see :func:`run_demo`)."""

    def __init__(self, root: Path, echo: Echo, progress: bool, notebook: Path) -> None:
        self.root = root
        self.echo = echo
        self.progress = progress
        self.notebook = notebook
        self.deviations: list[str] = []
        self.sandbox, self.path_hint = sandbox_command()
        self.ws_shown = _shown_path(root)
        self._t0 = time.monotonic()

    def step(self, number: int, title: str) -> None:
        self.echo("")
        self.echo(f"[{number}/{_STEPS}] {title}  (at {time.monotonic() - self._t0:.0f} s)")

    def deviate(self, text: str) -> None:
        self.deviations.append(text)
        self.echo(f"    NOT AS PLANNED: {text}")

    # 1 ----------------------------------------------------------------------------------------------------------
    def population(self, households: int, seed: int, scenario: str) -> tuple[Path, bool]:
        import synthetic
        from sandbox.cli._synth import format_summary

        self.step(1, f"Synthetic population: {households:,} households (seed {seed}, scenario {scenario})")
        target = self.root / "population"
        started = time.monotonic()
        reused = synthetic.population_is_current(target, households, seed=seed, scenario=scenario)
        if not reused:
            synthetic.write_population(target, households, seed=seed, scenario=scenario, progress=self.progress)
        took = f"generated in {time.monotonic() - started:.0f} s" if not reused else "reused: it matches its manifest"
        self.echo(f"    {_shown_path(target)}: {took}")
        table = synthetic.calibration_summary(target)
        ok = int(table["ok"].sum())
        self.echo("")
        self.echo(
            f"    Calibration of this population against published Dutch figures (CBS, NJi, NVVK, Divosa; "
            f"{ok} of {len(table)} within tolerance):"
        )
        for line in format_summary(table).splitlines():
            self.echo(f"    {line}")
        return target, reused

    # 2 ----------------------------------------------------------------------------------------------------------
    def vault(self, state: _State, population: Path, keep_vault: bool) -> tuple[str, bool]:
        from .kernel.launch import ensure_local_vault, start_vault

        self.step(2, "The vault: protected tables registered, privacy ledger, release gate")
        if state.registered:
            self.echo("    tables: registered by an earlier demo of this population (reused, with their budget)")
        else:
            out = _cli("dataset", "add-population", str(population), "--workspace", str(self.root))
            state.registered = [line.strip() for line in out.splitlines() if line.strip()]
            state.save(self.root)
            for line in state.registered:
                self.echo(f"    {line}")
        from .shared.layout import WorkspaceLayout

        running = WorkspaceLayout(self.root).read_discovery() is not None
        if keep_vault:
            url, started = start_vault(self.root)
        else:
            url, _ = ensure_local_vault(self.root)  # with a lease for this process: it stops when unused
            started = not running
        how = "started by this demo" if started else "already running, reused"
        self.echo(f"    vault: {url} ({how})")
        return url, started

    # 3, 4 -------------------------------------------------------------------------------------------------------
    def attempt(self, ws: Any, state: _State, variant: Variant) -> Attempt:
        """Run (or reuse) one variant and print what the gate said."""
        self.echo(f"    {variant.label}: {variant.why}")
        self.echo(f"    by hand: {variant.command(self.sandbox, self.ws_shown)}")
        earlier = state.attempts.get(variant.key)
        request = self._reusable(ws, earlier)
        if request is not None and earlier is not None:
            run_id, reused = earlier["run_id"], True
        else:
            run_id, request = self._run(ws, variant)
            reused = False
            state.attempts[variant.key] = {"run_id": run_id, "request_id": request.id}
            state.save(self.root)
        audit_id = next((i["id"] for i in request.items if i.get("kind") == "audit"), None)
        if audit_id is None:  # the gate blocks such a request; say so rather than fail here
            verdict, margin, report = "none", "the request holds no fairness audit", None
        else:
            audit = ws.result(audit_id)
            verdict, margin = str(getattr(audit.verdict, "status", "?")), _margin(audit)
            report = self._report(request.id, audit)
        att = Attempt(
            variant.key,
            run_id,
            request.id,
            request.status,
            tuple(self._reasons(request.data)),
            verdict,
            margin,
            report,
            reused,
        )
        when = " (from the earlier demo: nothing spent)" if reused else ""
        self.echo(f"    run {run_id}{when}")
        self.echo(f"    fairness audit: {verdict}; {att.margin}")
        self.echo(f"    release request {att.request_id}: {att.status}")
        output = _shown_path(self.root / "runs" / run_id / "output.ipynb")
        for line in _reason_lines(att.reasons, "      ", f"the run's notebook {output} (request.reasons)"):
            self.echo(line)
        if report is not None:
            self.echo(f"    fairness report: {_shown_path(report)}")
        return att

    def _reusable(self, ws: Any, earlier: Mapping[str, str] | None) -> Any:
        if not earlier:
            return None
        try:
            request = ws.request(earlier["request_id"])
        except (SandboxError, KeyError):  # a fresh vault in an old workspace: run anew
            return None
        return None if request.status in ("rejected", "returned") else request

    def _run(self, ws: Any, variant: Variant) -> tuple[str, Any]:
        import sandbox as sb

        record = sb.run_study(
            self.notebook, dict(variant.params), workspace=self.root, progress=self.progress, check=False, vault=True
        )
        if record.failure is not None:
            from .kernel.studies.runner import failure_report

            raise StudyRunError(
                f"the demo's study run failed: {failure_report(record)}\nIts record: "
                f"{_shown_path(self.root / 'runs' / record.run_id / 'record.json')}. If the budget is spent, run "
                "the demo in a fresh workspace: make demo WORKSPACE=workspace-2"
            )
        named = [str(e["request_id"]) for e in record.ledger if e.get("type") == "release" and e.get("request_id")]
        if not named:
            raise StudyRunError(
                f"run {record.run_id} of {self.notebook.name} submitted no release request; the notebook's last "
                "cells must call ws.release([...])."
            )
        return record.run_id, ws.request(named[-1])

    def _reasons(self, data: Mapping[str, Any]) -> list[str]:
        gate = data.get("gate") or {}
        out = [str(r) for r in gate.get("reasons", [])]
        for item in gate.get("items", []):
            out += [f"{item.get('kind')}: {r}" for r in item.get("reasons", [])]
        return out

    def _report(self, request_id: str, audit: Any) -> Path:
        folder = self.root / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{request_id}_fairness_report.html"
        path.write_text(audit.to_html(), encoding="utf-8")
        return path

    def withdraw_unplanned(self, ws: Any, att: Attempt) -> Attempt:
        """Model 1 was not blocked: withdraw it, so the reviewers see only the documented variant."""
        self.deviate(
            f"the gate did not block model 1 (status {att.status}): its audit's intervals are wide on a small "
            "population, or DP noise decided it. The demo withdraws that request, so that reviewers see only "
            "the documented variant."
        )
        if att.status in _PASSED and att.status != "released":
            request = ws.request(att.request_id).withdraw()
            self.echo(f"    withdrew {att.request_id}: {request.status}")
            return Attempt(**{**asdict(att), "status": request.status})
        return att

    # 5 ----------------------------------------------------------------------------------------------------------
    def review(self, url: str, state: _State, att: Attempt) -> str:
        import sandbox as sb

        self.step(5, "Review: two DEMO reviewers approve")
        self.echo(
            f"    DEMO IDENTITIES, {NOT_INDEPENDENT.upper()}: {' and '.join(DEMO_REVIEWERS)} are tokens this demo "
            "minted itself on a local vault (`sandbox vault token create --role reviewer`). On a local vault the "
            "analyst can mint reviewer tokens, so this release is not independently reviewed; a real release "
            "needs reviewers with their own tokens from the vault's operator (docs/reviewer.md)."
        )
        if att.status == "released":
            self.echo(
                f"    {att.request_id} was released by an earlier demo (approved by {', '.join(state.reviewers)})"
            )
            return att.status
        comment = (
            f"Demo approval by a demo identity ({NOT_INDEPENDENT}). Read: the fairness audit (verdict "
            f"{att.verdict}; {att.margin}), the DP spend of the items and the run record {att.run_id}. Approved so "
            "that the demo can show a release written to the outbox."
        )
        status = att.status
        for name in DEMO_REVIEWERS:
            if status == "released":  # a policy that needs fewer approvals (a table needs one)
                break
            token = _cli(
                "vault", "token", "create", "--workspace", str(self.root), "--role", "reviewer", "--name", name
            )
            with sb.connect_reviewer(self.root, url=url, token=token.strip()) as reviewer:
                try:
                    status = str(reviewer.approve(att.request_id, comment)["status"])
                except ReleaseError as exc:  # e.g. an interrupted earlier demo: this name voted already
                    self.deviate(f"{name} could not approve: {exc}")
                    status = str(reviewer.request(att.request_id)["status"])
                    continue
            if name not in state.reviewers:
                state.reviewers.append(name)
            self.echo(f"    {name} (demo identity) approved: request is now {status}")
        state.save(self.root)
        return status

    # 6 ----------------------------------------------------------------------------------------------------------
    def outbox(self, request_id: str) -> tuple[Path | None, tuple[str, ...], str | None]:
        self.step(6, "The outbox: what left the sandbox")
        folder = self.root / "outbox" / f"rel-{request_id}"
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.deviate(f"no release folder {_shown_path(folder)} with a manifest.json")
            return None, (), None
        names = tuple(str(f.get("name")) for f in manifest.get("files", []))
        self.echo(f"    {_shown_path(folder)}/  ({len(names)} files under their sha256, and manifest.json)")
        for name in names:
            self.echo(f"      {name}")
        review = manifest.get("review") or {}
        label = _independence_label(review)
        approvers = ", ".join(str(a) for a in review.get("approvers", [])) or "-"
        self.echo(f"    manifest: approved by {approvers}; policy sha256 {str(manifest.get('policy_sha256'))[:12]}...")
        shown = label or NOT_INDEPENDENT
        source = "as its manifest records" if label else "demo reviewers on a local vault"
        self.echo(f"    review: {shown} ({source})")
        return folder, names, label

    # 7 ----------------------------------------------------------------------------------------------------------
    def verify(self) -> bool:
        self.step(7, f"{self.sandbox} verify --workspace {self.ws_shown}")
        try:
            out = _cli("verify", "--workspace", str(self.root))
        except StudyRunError as exc:
            self.deviate(f"verify did not pass: {exc}")
            return False
        for line in out.splitlines():
            self.echo(f"    {line}")
        return True

    def next_steps(self, result: DemoResult) -> None:
        s, w = self.sandbox, shlex.quote(self.ws_shown)
        req = result.release_id
        notebook = shlex.quote(_shown_path(self.notebook))
        self.echo("")
        self.echo("Next steps (each line works as printed, from this folder):")
        if self.path_hint:
            self.echo(f"  ({self.path_hint})")
        lines = [
            (f"{s} verify --workspace {w}", "check the audit log and the outbox again"),
            (f"ls {shlex.quote(_shown_path(result.outbox))}" if result.outbox else f"ls {w}/outbox", "the release"),
            (f"{s} vault start --workspace {w}", "the vault, in the background, for the next commands"),
            (
                f'export SANDBOX_TOKEN=$({s} vault token create --workspace {w} --role reviewer --name "$(whoami)")',
                "your reviewer token",
            ),
            (f"{s} review list --all --workspace {w}", "every request the reviewers can see"),
            (f"{s} review show {req} --workspace {w}", "the released request: items, checks, votes"),
            (f"{s} vault stop --workspace {w}", "stop that vault"),
            (f"{s} run {notebook} --help-notebook", "the study's parameters, to try your own variant"),
        ]
        for command, what in lines:
            self.echo(f"  {command}")
            self.echo(f"      # {what}")
        self.echo(f"  {s} lab --workspace {w}")
        self.echo("      # JupyterLab on this workspace, notebooks 01-04 (Ctrl-C stops it and its vault)")


def _margin(audit: Any) -> str:
    """Describe the largest significant decisive disparity between groups against its fail threshold.

    A disparity decides a verdict only when its interval (which includes the DP noise) excludes 0; its margin is
    how far it lies below the policy's fail threshold.
    """
    try:
        d = audit.disparities
        d = d[(d["reference"] == "between_groups") & d["decisive"].astype(bool)]
        significant = d[d["difference_low"].astype(float) > 0]
        if significant.empty:
            return "no decisive gap between groups is significant (every interval includes 0)"
        worst = significant.sort_values("difference", ascending=False).iloc[0]
        fail, gap = float(worst["fail_threshold"]), float(worst["difference"])
        return (
            f"largest significant gap: {str(worst['metric']).replace('_', ' ')} for {worst['attribute']} {gap:.3f} "
            f"(interval {float(worst['difference_low']):.3f} to {float(worst['difference_high']):.3f}); fail "
            f"threshold {fail:g}, margin {fail - gap:+.3f}"
        )
    except (KeyError, AttributeError, TypeError, ValueError, IndexError):  # another audit layout: say so
        return "its largest gap is not available from this audit"


def _independence_label(review: Mapping[str, Any]) -> str | None:
    """Return the manifest's own review-independence label, where the vault writes one."""
    for key in ("independence", "review_independence"):
        value = review.get(key)
        if isinstance(value, Mapping) and value.get("label"):
            return str(value["label"])
        if isinstance(value, str) and value:
            return value
    return None


# -- the whole demo -------------------------------------------------------------------------------------------------
def run_demo(
    workspace: str | Path,
    households: int,
    *,
    seed: int = 0,
    scenario: str = "default",
    keep_vault: bool = False,
    progress: bool = True,
    notebook: str | Path = STUDY_NOTEBOOK,
    echo: Echo | None = None,
    variants: Sequence[Variant] = VARIANTS,
) -> DemoResult:
    """Run the whole demo in ``workspace`` (see the module docstring), printing each step; return what it did.

    Parameters
    ----------
    workspace : str or Path
        The demo workspace (created if needed).
    households : int
        Size of the synthetic population.
    seed, scenario
        Of the population (see :func:`synthetic.write_population`).
    keep_vault : bool
        Leave the vault running (started without a watchdog, until ``sandbox vault stop``). By default a vault
        this demo started is stopped at the end.
    progress : bool
        Show the generator's and papermill's progress bars.
    notebook : str or Path
        The study notebook (default: ``notebooks/03_study_early_warning_model.ipynb``).
    echo : callable, optional
        Prints one line (default: ``print``).
    variants : sequence of Variant
        Model 1, the variant planned to pass, then fallbacks (default :data:`VARIANTS`).

    Raises
    ------
    StudyRunError
        A study run failed (its failing cell is shown), or no variant passed the gate, or the release did not
        reach the outbox; every step before is printed, and the message names the fix.
    """
    from .kernel.launch import stop_local_vault

    root = Path(workspace).resolve()
    root.mkdir(parents=True, exist_ok=True)
    demo = _Demo(root, echo or print, progress, Path(notebook).resolve())
    population, pop_reused = demo.population(households, seed, scenario)
    state, replaced = _State.load(root, _fingerprint(population, households, seed, scenario))
    if replaced:
        demo.echo(
            f"    (this workspace held an earlier demo of another population; its runs and requests stay in "
            f"{demo.ws_shown}, but this demo shows only its own)"
        )
    with _local_vault_only():
        url, started = demo.vault(state, population, keep_vault)
        try:
            result = _walk(demo, state, url, started, population, pop_reused, variants)
        finally:
            if started and not keep_vault:
                stop_local_vault(root)
                demo.echo("")
                demo.echo("(the vault this demo started is stopped; --keep-vault leaves it running)")
    demo.next_steps(result)
    return result


def _walk(
    demo: _Demo,
    state: _State,
    url: str,
    started: bool,
    population: Path,
    pop_reused: bool,
    variants: Sequence[Variant],
) -> DemoResult:
    import sandbox as sb

    first, *rest = variants
    with sb.connect(demo.root) as ws:
        demo.step(3, f"{first.label.capitalize()}: fitted in the vault with DP, audited, submitted (plan: blocked)")
        attempts = [demo.attempt(ws, state, first)]
        if attempts[0].status != "blocked":
            attempts[0] = demo.withdraw_unplanned(ws, attempts[0])
        else:
            demo.echo("    as planned: the gate blocked model 1; reviewers never see a blocked request.")
        demo.step(4, "A documented second variant (plan: it passes the gate to review)")
        passed = None
        for variant in rest:
            att = demo.attempt(ws, state, variant)
            attempts.append(att)
            if att.status in _PASSED:
                passed = att
                break
            nxt = f"; trying the {rest[rest.index(variant) + 1].label}" if variant is not rest[-1] else ""
            demo.deviate(f"the gate blocked the {variant.label} (reasons above){nxt}")
    if passed is None:
        raise StudyRunError(
            f"no variant passed the gate (requests {', '.join(a.request_id for a in attempts)}), so nothing was "
            "released. The reasons are printed above; change the study's features "
            f"({demo.sandbox} run {_shown_path(demo.notebook)} --help-notebook) and run it with your own -y values."
        )
    if passed.variant != rest[0].key:
        label = next(v.label for v in rest if v.key == passed.variant)
        demo.echo(f"    the {label} passed instead of the planned {rest[0].label}")
    status = demo.review(url, state, passed)
    attempts = [Attempt(**{**asdict(a), "status": status}) if a is passed else a for a in attempts]
    state.release_id = passed.request_id
    state.save(demo.root)
    folder, names, _label = demo.outbox(passed.request_id) if status == "released" else (None, (), None)
    if status != "released":
        raise StudyRunError(
            f"request {passed.request_id} is {status} after the demo reviewers' approvals, not released; see "
            f"`{demo.sandbox} review show {passed.request_id} --workspace {demo.ws_shown}` (a policy that needs "
            "more approvals, or a failed release the vault retries on its next start)."
        )
    verified = demo.verify()
    state.finished = datetime.now(UTC).isoformat(timespec="seconds")
    state.save(demo.root)
    result = DemoResult(
        demo.root,
        population,
        pop_reused,
        tuple(state.registered),
        url,
        started,
        tuple(attempts),
        passed.request_id,
        status,
        tuple(state.reviewers),
        folder,
        names,
        verified,
        tuple(demo.deviations),
        reused=all(a.reused for a in attempts),
    )
    if not verified:
        raise StudyRunError(f"`sandbox verify --workspace {demo.ws_shown}` failed after the release (see above).")
    return result


def as_dict(result: DemoResult) -> dict[str, Any]:
    """Return the result as JSON-ready values (paths as strings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {k: plain(v) for k, v in asdict(result).items()}
