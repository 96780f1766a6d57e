"""``sandbox synth``: generate the synthetic population (a thin wrapper over ``synthetic``)."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

__all__ = ["synth", "format_summary"]


def format_summary(table: pd.DataFrame) -> str:
    """Format the calibration table as aligned text: target beside produced, tolerance and verdict."""

    def num(x: object) -> str:
        x = float(x)  # type: ignore[arg-type]
        return f"{x:.4f}" if abs(x) < 1 else f"{x:,.2f}"

    lines = [f"{'indicator':<54} {'target':>12} {'produced':>12} {'tolerance':>10}  ok"]
    for row in table.itertuples(index=False):
        mark = "yes" if row.ok else "NO"
        lines.append(
            f"{row.indicator:<54} {num(row.target):>12} {num(row.produced):>12} {num(row.tolerance):>10}  {mark}"
        )
    return "\n".join(lines)


@click.command()
@click.option("--households", "-n", type=int, required=True, help="Number of households (NL: 8000000).")
@click.option("--seed", "-s", type=int, default=0, show_default=True, help="Seed; same seed, same bytes.")
@click.option(
    "--scenario",
    default="default",
    show_default=True,
    help="Shipped scenario (default, no_bias) or the path of a scenario YAML file.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output directory (new, empty, or an earlier population, which is replaced).",
)
@click.option("--workers", "-w", type=int, default=None, help="Worker processes (default: min(2, cores)).")
@click.option(
    "--chunk-size",
    type=int,
    default=131_072,
    show_default=True,
    help="Households per task; does not change the output.",
)
@click.option("--summary", is_flag=True, help="Print the calibration table, target beside produced.")
def synth(
    households: int, seed: int, scenario: str, out: Path, workers: int | None, chunk_size: int, summary: bool
) -> None:
    """Generate a synthetic population and write it as Parquet with its public schema."""
    import synthetic

    path = synthetic.write_population(
        out, households, seed=seed, scenario=scenario, workers=workers, chunk_size=chunk_size, progress=True
    )
    click.echo(f"wrote {households:,} households to {path}")
    if summary:
        click.echo(format_summary(synthetic.calibration_summary(path)))
