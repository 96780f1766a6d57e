"""environment.yml and pyproject.toml must pin the same packages the same way."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_REQ = re.compile(r"^\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*?)\s*$")


def _split(req: str) -> tuple[str, str]:
    m = _REQ.match(req.split(";")[0])
    assert m, f"cannot parse requirement {req!r}"
    return m.group(1).lower().replace("_", "-"), m.group(3).replace(" ", "")


def test_environment_pins_equal_pyproject_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    py_pins = dict(_split(r) for r in project["dependencies"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    conda_pins = dict(_split(d) for d in conda if not d.startswith(("python", "pip")) or d.startswith("pip-"))
    assert conda_pins == py_pins, (
        "environment.yml and pyproject.toml disagree; differing: "
        f"{sorted(set(conda_pins.items()) ^ set(py_pins.items()))}"
    )
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any(p.startswith("-e .") for p in pip_section), "environment.yml must install the sandbox with pip -e ."


def test_python_pin_matches() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    assert project["requires-python"].startswith(">=3.11")


def test_readme_begins_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().split("\n## ")[0]
    assert "make demo" in head and "make test" in head


def test_ci_runs_make_test() -> None:
    text = (ROOT / ".ci" / "run").read_text()
    assert "make test" in text
