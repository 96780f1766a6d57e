"""The demo's steps, one method each, printing as they go (see :func:`sandbox._private.demo.run_demo`)."""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sandbox._private.shared.errors import ReleaseError, SandboxError, StudyRunError

from .plan import DEMO_REVIEWERS, NOT_INDEPENDENT, PASSED, STEPS, Attempt, DemoResult, Echo, Variant
from .state import DemoState
from .text import describe_margin, independence_label, reason_lines, sandbox_command, shown_path

__all__ = ["DemoSteps", "cli"]


def cli(*args: str) -> str:
    """Run a ``sandbox`` command in this process (the CLI's code path); return its stdout, raise on failure."""
    from sandbox.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    if code != 0:
        raise StudyRunError(f"`sandbox {' '.join(args)}` failed (exit {code}): {err.getvalue().strip()}")
    return out.getvalue()


class DemoSteps:
    """One demo run: its workspace, printer, state and what it found (see :func:`run_demo`)."""

    def __init__(self, root: Path, echo: Echo, progress: bool, notebook: Path) -> None:
        self.root = root
        self.echo = echo
        self.progress = progress
        self.notebook = notebook
        self.deviations: list[str] = []
        self.sandbox, self.path_hint = sandbox_command()
        self.ws_shown = shown_path(root)
        self._t0 = time.monotonic()

    def step(self, number: int, title: str) -> None:
        self.echo("")
        self.echo(f"[{number}/{STEPS}] {title}  (at {time.monotonic() - self._t0:.0f} s)")

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
        self.echo(f"    {shown_path(target)}: {took}")
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
    def vault(self, state: DemoState, population: Path, keep_vault: bool) -> tuple[str, bool]:
        from sandbox._private.kernel.launch import ensure_local_vault, start_vault

        self.step(2, "The vault: protected tables registered, privacy ledger, release gate")
        if state.registered:
            self.echo("    tables: registered by an earlier demo of this population (reused, with their budget)")
        else:
            out = cli("dataset", "add-population", str(population), "--workspace", str(self.root))
            state.registered = [line.strip() for line in out.splitlines() if line.strip()]
            state.save(self.root)
            for line in state.registered:
                self.echo(f"    {line}")
        from sandbox._private.shared.layout import WorkspaceLayout

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
    def attempt(self, ws: Any, state: DemoState, variant: Variant) -> Attempt:
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
            verdict, margin = str(getattr(audit.verdict, "status", "?")), describe_margin(audit)
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
        output = shown_path(self.root / "runs" / run_id / "output.ipynb")
        for line in reason_lines(att.reasons, "      ", f"the run's notebook {output} (request.reasons)"):
            self.echo(line)
        if report is not None:
            self.echo(f"    fairness report: {shown_path(report)}")
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
            from sandbox._private.kernel.studies.runner import failure_report

            raise StudyRunError(
                f"the demo's study run failed: {failure_report(record)}\nIts record: "
                f"{shown_path(self.root / 'runs' / record.run_id / 'record.json')}. If the budget is spent, run "
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
        if att.status in PASSED and att.status != "released":
            request = ws.request(att.request_id).withdraw()
            self.echo(f"    withdrew {att.request_id}: {request.status}")
            return Attempt(**{**asdict(att), "status": request.status})
        return att

    # 5 ----------------------------------------------------------------------------------------------------------
    def review(self, url: str, state: DemoState, att: Attempt) -> str:
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
        # each reviewer states their own reasons: the workflow refuses a second approval that copies the first
        read = (
            f"the fairness audit (verdict {att.verdict}; {att.margin}) and the DP spend of the items",
            f"the run record {att.run_id}, the model card and the gate's reasons",
        )
        status = att.status
        for name, what in zip(DEMO_REVIEWERS, read, strict=True):
            comment = (
                f"Demo approval by {name}, a demo identity ({NOT_INDEPENDENT}). I read {what}. Approved so that the "
                "demo can show a release written to the outbox."
            )
            if status == "released":  # a policy that needs fewer approvals (a table needs one)
                break
            token = cli("vault", "token", "create", "--workspace", str(self.root), "--role", "reviewer", "--name", name)
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
            self.deviate(f"no release folder {shown_path(folder)} with a manifest.json")
            return None, (), None
        names = tuple(str(f.get("name")) for f in manifest.get("files", []))
        self.echo(f"    {shown_path(folder)}/  ({len(names)} files under their sha256, and manifest.json)")
        for name in names:
            self.echo(f"      {name}")
        review = manifest.get("review") or {}
        label = independence_label(review)
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
            out = cli("verify", "--workspace", str(self.root))
        except StudyRunError as exc:
            self.deviate(f"verify did not pass: {exc}")
            return False
        for line in out.splitlines():
            self.echo(f"    {line}")
        return True

    def next_steps(self, result: DemoResult) -> None:
        s, w = self.sandbox, shlex.quote(self.ws_shown)
        req = result.release_id
        notebook = shlex.quote(shown_path(self.notebook))
        self.echo("")
        self.echo("Next steps (each line works as printed, from this folder):")
        if self.path_hint:
            self.echo(f"  ({self.path_hint})")
        lines = [
            (f"{s} verify --workspace {w}", "check the audit log and the outbox again"),
            (f"ls {shlex.quote(shown_path(result.outbox))}" if result.outbox else f"ls {w}/outbox", "the release"),
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
