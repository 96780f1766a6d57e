"""Every command of the ``sandbox`` CLI answers --help, and domain errors become clean messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from sandbox.cli import cli, main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = [prefix]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
        else:
            out.append((*prefix, name))
    return out


@pytest.mark.parametrize("path", _commands(cli), ids=lambda p: " ".join(p) or "sandbox")
def test_help_on_every_command(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*path, "--help"])
    assert code == 0
    assert "Usage:" in capsys.readouterr().out


def test_policy_error_is_a_clean_message(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("budget: {epsilon_per_dataset: 0}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from sandbox.cli import main; sys.exit(main())",
            "policy",
            "check",
            str(bad),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "budget.epsilon_per_dataset" in proc.stderr
    assert "Traceback" not in proc.stderr
