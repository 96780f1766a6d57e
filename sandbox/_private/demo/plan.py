"""What the demo plans and what it found: the variants of study 03, each attempt, and the demo's result."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from .text import shown_path

__all__ = [
    "STUDY_NOTEBOOK",
    "DEMO_STATE",
    "DEMO_REVIEWERS",
    "NOT_INDEPENDENT",
    "PASSED",
    "STEPS",
    "Echo",
    "Variant",
    "VARIANTS",
    "Attempt",
    "DemoResult",
    "as_dict",
]

#: The study the demo runs (relative to the repository root).
STUDY_NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "03_study_early_warning_model.ipynb"
#: Where the demo remembers its population, runs and requests, inside the workspace.
DEMO_STATE = "demo.json"
#: The two reviewer identities the demo mints on the local vault.
DEMO_REVIEWERS = ("demo-reviewer-1", "demo-reviewer-2")
#: What a release approved by the demo's reviewers is, on a local vault (the analyst minted their tokens).
NOT_INDEPENDENT = "not independently reviewed"
#: Statuses of a request the gate passed to review.
PASSED = frozenset({"pending_review", "partially_reviewed", "reviewed", "approved", "released"})
#: Steps the demo prints.
STEPS = 7
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
        notebook = shown_path(STUDY_NOTEBOOK)
        line = f"{sandbox} run {shlex.quote(notebook)} --workspace {shlex.quote(workspace)}"
        shown = {k: v for k, v in self.params.items() if k != "justification"}  # long prose: in the notebook
        if shown:
            flow = yaml.safe_dump(shown, default_flow_style=True, width=10_000, sort_keys=False).strip()
            line += f" -y {shlex.quote(flow)}"
        return line


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
