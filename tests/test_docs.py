"""Every runnable code block of docs/reviewer.md and docs/operator.md runs, in order, in a temporary folder.

The rule for which blocks run: blocks fenced ``sh`` run in bash (``set -euo pipefail``) and blocks fenced
``python`` run in one namespace per guide (like a notebook). Blocks in any other fence language are not run, by
design: ``ini`` (a systemd unit file), ``yaml`` (a policy fragment), ``text`` and ``console`` (sample output, or
a command that needs root or a remote host). The test below asserts that each guide has runnable blocks and
that every other block uses one of those non-runnable languages, so a new block cannot skip the test by accident.

Shell blocks of one guide share their variables (run with ``set -a``): after each block ``export -p`` is saved and
sourced before the next, as if the reader typed them into one terminal. The reviewer guide runs in a folder that
holds ``workspace/`` (a registered population, a running vault and release requests submitted by an analyst);
the operator guide runs in an empty folder, with ``LEDGER_URL`` naming a fresh PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import re
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
RUNNABLE = {"sh", "python"}
NOT_RUN = {"ini", "yaml", "text", "console"}
GUIDES = ("reviewer", "operator")


def blocks(name: str) -> list[tuple[str, str]]:
    text = (REPO / "docs" / f"{name}.md").read_text(encoding="utf-8")
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def _stop_vaults(root: Path) -> None:
    for discovery in root.rglob("vault/vault.json"):
        info = WorkspaceLayout.create(discovery.parent.parent).read_discovery()
        if info is not None:
            os.kill(int(info["pid"]), signal.SIGTERM)


def run_guide(name: str, cwd: Path, extra_env: dict[str, str] | None = None) -> dict[str, object]:
    """Run the guide's runnable blocks in order in ``cwd``; return the python namespace."""
    state = cwd / f".{name}-env.sh"
    state.write_text("", encoding="utf-8")
    env = {
        **os.environ,
        **(extra_env or {}),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("SANDBOX_VAULT_URL", None)
    env.pop("SANDBOX_TOKEN", None)
    namespace: dict[str, object] = {"__name__": f"__{name}_guide__"}
    for index, (kind, code) in enumerate(blocks(name)):
        if kind == "python":
            exec(compile(code, f"docs/{name}.md block {index}", "exec"), namespace)
        elif kind == "sh":
            script = f"set -a\nsource {state}\n{code}\nexport -p > {state}\n"  # set -a: every variable persists
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True, text=True
            )
            assert proc.returncode == 0, f"docs/{name}.md block {index} failed:\n{code}\n{proc.stdout}\n{proc.stderr}"
    return namespace


@pytest.mark.parametrize("name", GUIDES)
def test_every_block_is_runnable_or_excluded_by_rule(name: str) -> None:
    kinds = [kind for kind, _ in blocks(name)]
    assert kinds.count("sh") >= 4, f"docs/{name}.md should show its commands in runnable sh blocks"
    assert set(kinds) <= RUNNABLE | NOT_RUN, f"docs/{name}.md uses fences {set(kinds) - RUNNABLE - NOT_RUN}"


def test_readme_links_the_three_guides() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.lstrip().startswith("# ")
    assert readme.index("make demo") < readme.index("## Guides")
    for guide in ("docs/analyst.md", "docs/reviewer.md", "docs/operator.md"):
        assert f"]({guide})" in readme, f"README.md does not link {guide}"


def _submit_requests(workspace: Path) -> None:
    """As the analyst: three table releases (one each to approve, return and reject) and one model release."""
    import sandbox as sb

    with sb.connect(workspace) as ws:
        hh = ws.dataset("households")
        for column in ("household_type", "urbanisation", "housing"):
            table = hh.count(by=[column], epsilon=0.3)
            ws.release([table], title=f"Households by {column}", purpose="Armoedemonitor: households per group.")
        spec = sb.ModelSpec("logistic_regression", target="registered_problematic_debt", features=("income_band",))
        # The gate sees only DP values, so on 2,000 households noise can block the model's request (a noisy gap
        # above the fail line); the guide needs one that reached review: ask again with another ε (a new fit).
        for epsilon in (1.0, 0.9, 0.8):
            model = hh.fit(spec, epsilon=epsilon)
            request = ws.release([model, model.audit()], title="Vroegsignalering model", purpose="Early warning.")
            if request.status != "blocked":
                break
        assert request.status != "blocked", request.reasons


@pytest.fixture(scope="module")
def reviewer_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    import synthetic
    from sandbox._private.vault.server import open_service

    root = tmp_path_factory.mktemp("reviewer-guide")
    # 5,000 households: the "other" type (0.6% of households, CBS 2024) then has about 30, so its noisy count (scale
    # 3.3 at epsilon 0.3) is never near the minimum of 10 the gate applies to released counts.
    population = synthetic.write_population(root / "population", 5_000, seed=5)
    open_service(root / "workspace").registry.add_population(population)
    # Start the vault from a child process, so this process holds no Popen of it; sb.connect() reuses it.
    code = "import sys; from sandbox._private.kernel.launch import ensure_local_vault as e; e(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(root / "workspace")], check=True, timeout=120)
    try:
        _submit_requests(root / "workspace")
        yield root
    finally:
        _stop_vaults(root)


def test_reviewer_guide_blocks_run_in_order(reviewer_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(reviewer_project)
    run_guide("reviewer", reviewer_project)
    outbox = reviewer_project / "workspace" / "outbox"
    released = [p for p in outbox.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(released) == 1, f"the guide approves exactly one table request, outbox has {released}"
    manifest = json.loads((released[0] / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["review"]["approvers"] == ["rianne"]


@pytest.fixture
def operator_project(tmp_path: Path, postgres: object) -> Iterator[tuple[Path, str]]:
    url = postgres.fresh_database("operator_guide")  # type: ignore[attr-defined]
    try:
        yield tmp_path, url
    finally:
        _stop_vaults(tmp_path)


def test_operator_guide_blocks_run_in_order(
    operator_project: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, url = operator_project
    monkeypatch.chdir(root)
    run_guide("operator", root, {"LEDGER_URL": url})
    assert not (root / "srv" / "sandbox" / "vault" / "vault.json").exists(), "the guide stops its vault at the end"
    assert (root / "backup").is_dir() and any((root / "backup").iterdir())
