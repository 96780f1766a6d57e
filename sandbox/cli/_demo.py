"""``sandbox demo``: the whole product end to end on a synthetic population (what ``make demo`` runs)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["demo"]


def _summary_lines(result: object) -> list[str]:
    from sandbox._private.demo import DemoResult

    assert isinstance(result, DemoResult)
    ws = result.workspace
    state = "reused (same files already registered)" if not result.registered else ", ".join(result.registered)
    lines = [
        "",
        f"population:       {result.population} ({'reused' if result.population_reused else 'generated'})",
        f"registered:       {state}",
        f"vault:            {result.vault_url} ({'started by this demo' if result.vault_started else 'reused'})",
        f"run id:           {result.run_id}{' (from an earlier demo)' if result.run_reused else ''}",
        f"run record:       {result.run_record}",
        f"release id:       {result.release_id}",
        f"release status:   {result.release_status}",
    ]
    lines += [f"  - {reason}" for reason in result.reasons[:10]]
    if len(result.reasons) > 10:
        lines.append(f"  ... and {len(result.reasons) - 10} more (in the run's output notebook, request.reasons)")
    if result.release_status == "blocked":
        lines.append(
            "  the gate blocked it (reasons above): reviewers never see a blocked request; change the study's "
            "features or model and run it again (sandbox run notebooks/03_study_early_warning_model.ipynb -p ...)"
        )
    lines += [
        f"fairness report:  {result.fairness_report}",
        "",
        "next, as a reviewer (two approvals by default; the author cannot approve):",
        f"  sandbox vault serve --workspace {ws} &   # unless it still runs (--keep-vault)",
        f"  export SANDBOX_TOKEN=$(sandbox vault token create --workspace {ws} --role reviewer --name reviewer1)",
        f"  sandbox review --workspace {ws} list",
        f"  sandbox review --workspace {ws} show {result.release_id}",
        f"  sandbox review --workspace {ws} approve {result.release_id} -m 'checked'",
        "  web page: <vault url>/review  (the url is in "
        f"{ws / 'vault' / 'vault.json'}{'; now ' + result.vault_url + '/review' if not result.vault_started else ''})",
        f"  sandbox verify --workspace {ws}",
    ]
    return lines


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
@click.option("--keep-vault", is_flag=True, help="Leave the vault this demo started running.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show the progress bars.")
def demo(workspace: Path, households: int, seed: int, scenario: str, keep_vault: bool, progress: bool) -> None:
    """Generate a population, start the vault, run study 03, submit its release and show where it all is.

    Everything is reused when it already exists: a second demo prints the same summary without spending
    budget or asking the gate to release the same results again.
    """
    import synthetic
    from sandbox._private.demo import run_demo

    from ._synth import format_summary

    result = run_demo(workspace, households, seed=seed, scenario=scenario, keep_vault=keep_vault, progress=progress)
    click.echo(format_summary(synthetic.calibration_summary(result.population)))
    for line in _summary_lines(result):
        click.echo(line)
    if result.vault_started and not keep_vault:
        click.echo("(the vault this demo started has been stopped; --keep-vault leaves it running)")
