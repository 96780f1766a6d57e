"""Every code block of docs/analyst.md runs, in order, against a vault on a small synthetic population.

``python`` blocks run in one namespace (like a notebook); ``sh`` blocks run in bash. Both run in a folder that
holds ``workspace/`` (the registered population) and a copy of ``notebooks/``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox._private.shared.layout import WorkspaceLayout

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(path: Path) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(path.read_text(encoding="utf-8"))]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import synthetic
    from sandbox._private.vault.server import open_service

    root = tmp_path_factory.mktemp("docs")
    population = synthetic.write_population(root / "population", 1_500, seed=11)
    open_service(root / "workspace").registry.add_population(population)
    # Start the vault from a child process, so this process holds no Popen of it; sb.connect() reuses it.
    code = "import sys; from sandbox._private.kernel.launch import ensure_local_vault as e; e(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(root / "workspace")], check=True, timeout=120)
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    yield root
    info = WorkspaceLayout.create(root / "workspace").read_discovery()
    if info is not None:
        os.kill(int(info["pid"]), signal.SIGTERM)


def test_the_guide_has_python_and_shell_blocks() -> None:
    kinds = [kind for kind, _ in blocks(REPO / "docs" / "analyst.md")]
    assert kinds.count("python") >= 5 and "sh" in kinds
    assert set(kinds) <= {"python", "sh"}  # every block is one the test below runs


def test_analyst_guide_blocks_run_in_order(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    namespace: dict[str, object] = {"__name__": "__guide__"}
    for index, (kind, code) in enumerate(blocks(REPO / "docs" / "analyst.md")):
        if kind == "python":
            exec(compile(code, f"docs/analyst.md block {index}", "exec"), namespace)
        else:
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], env=env, capture_output=True, text=True)
            assert proc.returncode == 0, f"block {index} failed:\n{code}\n{proc.stdout}\n{proc.stderr}"
    ws = namespace["ws"]
    ws.close()  # type: ignore[attr-defined]
