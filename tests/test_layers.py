"""The line between the processes, read from the imports (like import-linter's layers and forbidden contracts).

Rooms of ``sandbox._private``: ``shared`` (value objects both processes import), ``kernel`` (the analyst's and
reviewer's side) and ``vault`` (the process that holds the rows). The rules:

- kernel code never imports vault code, and vault code never imports kernel code;
- shared code imports neither;
- ``sandbox.fairness`` (the audit library both sides use) imports neither kernel nor vault code;
- ``synthetic`` (the generator) uses only the public ``sandbox`` names, never ``sandbox._private``.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a lazy import still runs in
the process that executes it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (package folder, forbidden module prefixes, why)
RULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("sandbox/_private/kernel", ("sandbox._private.vault",), "kernel code must not import vault code"),
    ("sandbox/_private/vault", ("sandbox._private.kernel",), "vault code must not import kernel code"),
    (
        "sandbox/_private/shared",
        ("sandbox._private.kernel", "sandbox._private.vault"),
        "shared code must import neither kernel nor vault code",
    ),
    (
        "sandbox/fairness",
        ("sandbox._private.kernel", "sandbox._private.vault"),
        "sandbox.fairness must import neither kernel nor vault code",
    ),
    ("synthetic", ("sandbox._private",), "synthetic must use only public sandbox names"),
)


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path = ROOT) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Yield ``(line, names)`` per import statement in ``path``: every absolute module name it may load.

    ``from a.b import c`` may load ``a.b`` or the submodule ``a.b.c``, so both are listed; relative imports are
    resolved against the file's package.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node.lineno, tuple(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield node.lineno, (target, *(f"{target}.{alias.name}" for alias in node.names))


def violations(root: Path = ROOT) -> list[str]:
    """Every import statement that breaks a rule, as ``file:line: imports module (why)``."""
    found = []
    for folder, forbidden, why in RULES:
        for path in sorted((root / folder).rglob("*.py")):
            for line, names in imported_modules(path, root):
                bad = [m for m in names if any(m == f or m.startswith(f + ".") for f in forbidden)]
                if bad:
                    found.append(f"{path.relative_to(root)}:{line}: imports {bad[0]} ({why})")
    return found


def test_no_import_crosses_the_line() -> None:
    problems = violations()
    assert not problems, "imports that cross a room's line:\n" + "\n".join(problems)


def test_every_module_lives_in_a_room() -> None:
    """Nothing new lands loose in ``sandbox/_private``: only the rooms and the demo (which walks all three roles)."""
    loose = sorted(
        p.name
        for p in (ROOT / "sandbox" / "_private").iterdir()
        if p.name not in {"__init__.py", "__pycache__", "shared", "kernel", "vault", "demo"}
    )
    assert loose == [], f"modules outside a room: {loose}; move each into shared/, kernel/ or vault/"


@pytest.fixture(scope="module")
def copy_of_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package and generator sources, to plant probes in without touching the real tree."""
    return _copy_rooms(tmp_path_factory.mktemp("tree"))


def _copy_rooms(tmp: Path) -> Path:
    for folder in ("sandbox", "synthetic"):
        for src in (ROOT / folder).rglob("*.py"):
            dst = tmp / src.relative_to(ROOT)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    return tmp


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("sandbox/_private/kernel/_probe.py", "from sandbox._private.vault.ledger import ledger\n", "kernel code"),
        ("sandbox/_private/kernel/_probe.py", "def f():\n    from ..vault import registry\n", "kernel code"),
        ("sandbox/_private/vault/_probe.py", "from ..kernel.transport import Transport\n", "vault code"),
        ("sandbox/_private/shared/_probe.py", "import sandbox._private.vault.dp.engine\n", "shared code"),
        ("sandbox/_private/shared/_probe.py", "from sandbox._private import kernel\n", "shared code"),
        ("sandbox/fairness/_private/_probe.py", "from ..._private.vault.dp import engine\n", "sandbox.fairness"),
        ("synthetic/_probe.py", "from sandbox._private.shared.errors import SchemaError\n", "synthetic"),
    ],
)
def test_a_deliberate_cross_import_is_caught(copy_of_tree: Path, module: str, source: str, why: str) -> None:
    """Negative control: a temporary module with a forbidden import makes the check fail, naming it."""
    assert violations(copy_of_tree) == []
    probe = copy_of_tree / module
    probe.write_text(source, encoding="utf-8")
    try:
        problems = violations(copy_of_tree)
    finally:
        probe.unlink()
    assert len(problems) == 1 and problems[0].startswith(module) and why in problems[0], problems
