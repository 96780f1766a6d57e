"""``sandbox demo``: the whole product end to end on a synthetic population (what ``make demo`` runs)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["demo"]


@click.command()
@click.option(
    "--workspace",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("workspace"),
    show_default=True,
    help="Workspace directory; the population goes to WORKSPACE/population.",
)
@click.option(
    "--households",
    "-n",
    type=click.IntRange(min=100),
    default=1_000_000,
    show_default=True,
    help="Households (make demo: HOUSEHOLDS).",
)
@click.option("--seed", "-s", type=int, default=0, show_default=True, help="Seed of the population.")
@click.option("--scenario", default="default", show_default=True, help="Shipped scenario or YAML path.")
@click.option("--keep-vault", is_flag=True, help="Leave the vault running (until `sandbox vault stop`).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show the progress bars.")
def demo(workspace: Path, households: int, seed: int, scenario: str, keep_vault: bool, progress: bool) -> None:
    """Walk the whole path: population, vault, a blocked model, a variant that passes, review, outbox, verify.

    Every step is printed as it happens, and every way the outcome differs from the plan (DP noise can change a
    verdict) is said, with what the demo did instead. Run it again and everything is reused: nothing is spent and
    nothing is released twice. Another population (--households, --seed, --scenario) starts afresh.
    """
    from sandbox._private.demo import NOT_INDEPENDENT, run_demo

    click.echo(
        f"sandbox demo: {households:,} households in {workspace} (the steps below; "
        "a real deployment separates the analyst, the vault and the reviewers)"
    )
    result = run_demo(
        workspace,
        households,
        seed=seed,
        scenario=scenario,
        keep_vault=keep_vault,
        progress=progress,
        echo=click.echo,
    )
    click.echo("")
    summary = (
        f"Done: request {result.release_id} is {result.release_status}, in the outbox and verified "
        f"({NOT_INDEPENDENT}: demo reviewers)."
    )
    if result.deviations:
        summary += f" {len(result.deviations)} outcome(s) differed from the plan; see NOT AS PLANNED above."
    click.echo(summary)
