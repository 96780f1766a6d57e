"""``sandbox synth`` and ``sandbox demo``: thin wrappers that write, summarise and refuse bad output paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.cli import main


def test_synth_writes_and_summarises(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pop"
    code = main(
        [
            "synth",
            "--households",
            "3000",
            "--seed",
            "4",
            "--out",
            str(out),
            "--workers",
            "1",
            "--chunk-size",
            "5000",
            "--summary",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"wrote 3,000 households to {out}" in captured.out
    assert "households with registered problematic debt" in captured.out and "target" in captured.out
    assert json.loads((out / "manifest.json").read_text())["seed"] == 4
    assert "households" in captured.err  # the tqdm bar goes to stderr


def test_synth_scenario_file_errors_name_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("name: x\nbias: {}\n")
    code = main(["synth", "--households", "10", "--scenario", str(bad), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown key 'bias'" in err and "'population' is missing" in err
    assert not (tmp_path / "o").exists()


def test_synth_refuses_unwritable_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["synth", "--households", "10", "--out", str(blocker / "pop")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"Cannot write the population to '{blocker / 'pop'}'" in err and "--out" in err


def test_synth_refuses_negative_households(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--households", "-4", "--out", str(tmp_path / "p")]) == 2
    assert "n_households must be a whole number from 1" in capsys.readouterr().err


# `sandbox demo` grew into the end-to-end demo (population, vault, study 03, release): tests/test_demo.py.
