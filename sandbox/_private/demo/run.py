"""The whole demo: :func:`run_demo` runs the steps of :class:`~.steps.DemoSteps` in order."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from sandbox._private.shared.errors import StudyRunError

from .plan import PASSED, STUDY_NOTEBOOK, VARIANTS, Attempt, DemoResult, Echo, Variant
from .state import DemoState, fingerprint
from .steps import DemoSteps
from .text import shown_path

__all__ = ["run_demo"]

_DEPLOYED_VAULT_ENV = ("SANDBOX_VAULT_URL", "SANDBOX_TOKEN")


@contextlib.contextmanager
def _local_vault_only() -> Iterator[None]:
    """Hide a deployed vault's ``SANDBOX_VAULT_URL``/``SANDBOX_TOKEN``: the demo uses the workspace's own vault."""
    saved = {k: os.environ.pop(k) for k in _DEPLOYED_VAULT_ENV if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


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
    """Run the whole demo in ``workspace`` (see :mod:`sandbox._private.demo`), printing each step; return what it did.

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
    from sandbox._private.kernel.launch import stop_local_vault

    root = Path(workspace).resolve()
    root.mkdir(parents=True, exist_ok=True)
    demo = DemoSteps(root, echo or print, progress, Path(notebook).resolve())
    population, pop_reused = demo.population(households, seed, scenario)
    state, replaced = DemoState.load(root, fingerprint(population, households, seed, scenario))
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
    demo: DemoSteps,
    state: DemoState,
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
            if att.status in PASSED:
                passed = att
                break
            nxt = f"; trying the {rest[rest.index(variant) + 1].label}" if variant is not rest[-1] else ""
            demo.deviate(f"the gate blocked the {variant.label} (reasons above){nxt}")
    if passed is None:
        raise StudyRunError(
            f"no variant passed the gate (requests {', '.join(a.request_id for a in attempts)}), so nothing was "
            "released. The reasons are printed above; change the study's features "
            f"({demo.sandbox} run {shown_path(demo.notebook)} --help-notebook) and run it with your own -y values."
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
