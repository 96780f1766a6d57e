"""``sandbox run`` as papermill (issue 14 point 8): the same injected-parameters cell, and papermill's options.

The parity reference is papermill itself, run on the same notebook with the same parameters, both through its
command line (``papermill IN OUT -y ... --prepare-only``) and through its Python API (``execute_notebook``): the
injected-parameters cell that ``sandbox run`` writes must be the same, source and tags.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import yaml
from nbformat.v4 import new_code_cell, new_notebook

from sandbox._private.kernel.studies.record import RunStore

SANDBOX = [sys.executable, "-c", "import sys; from sandbox.cli import main; sys.exit(main())"]
PAPERMILL = [sys.executable, "-m", "papermill"]
PARAMS = """\
label = "x"  # a label, kept as a string
n = 3  # how many
epsilon = 1.0
features = ["income_band", "housing"]  # list of str
options = {"depth": 2}
verbose = False
threshold = None  # type: float | None
"""
#: Values of every type the parameters cell declares, as a YAML mapping (what -y takes).
VALUES: dict[str, Any] = {
    "label": "007",
    "n": 12,
    "epsilon": 0.25,
    "features": ["total_debt", "savings_buffer"],
    "options": {"depth": 4, "name": "v2"},
    "verbose": True,
    "threshold": 0.5,
}
BODY = [
    "import json, os\nprint(json.dumps({'label': label, 'n': n, 'features': features, 'cwd': os.getcwd()}))",
    "import sys\nprint('KeyboardInterrupt (written by the kernel process itself)', file=sys.__stderr__, flush=True)",
]


def _notebook(path: Path) -> Path:
    nb = new_notebook(cells=[new_code_cell(PARAMS, metadata={"tags": ["parameters"]}), *map(new_code_cell, BODY)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("SANDBOX_VAULT_URL", "SANDBOX_TOKEN", "SANDBOX_WORKSPACE")}


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300, check=False)


def _injected(path: Path) -> dict[str, Any]:
    cells = [c for c in nbformat.read(path, as_version=4).cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path} has {len(cells)} injected-parameters cells"
    return {"source": cells[0].source, "tags": cells[0].metadata["tags"], "type": cells[0].cell_type}


def _sources(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells]


def test_prepare_only_gives_papermills_injected_cell(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "study.ipynb")
    text = yaml.safe_dump(VALUES, default_flow_style=True, sort_keys=False)
    theirs = _run([*PAPERMILL, str(nb), str(tmp_path / "papermill.ipynb"), "-y", text, "--prepare-only"], tmp_path)
    assert theirs.returncode == 0, theirs.stderr
    ours = _run([*SANDBOX, "run", str(nb), str(tmp_path / "sandbox.ipynb"), "-y", text, "--prepare-only"], tmp_path)
    assert ours.returncode == 0, ours.stderr
    assert _injected(tmp_path / "sandbox.ipynb") == _injected(tmp_path / "papermill.ipynb")
    assert _sources(tmp_path / "sandbox.ipynb") == _sources(tmp_path / "papermill.ipynb")
    assert "nothing recorded" in ours.stdout
    assert not (tmp_path / "workspace").exists()  # prepare-only needs no vault and records no run
    # to standard output, as papermill's '-'
    piped = _run([*SANDBOX, "run", str(nb), "-", "-y", text, "--prepare-only"], tmp_path)
    assert piped.returncode == 0 and _injected_from_text(piped.stdout) == _injected(tmp_path / "papermill.ipynb")


def _injected_from_text(text: str) -> dict[str, Any]:
    node = nbformat.reads(text, as_version=4)
    cell = next(c for c in node.cells if "injected-parameters" in c.metadata.get("tags", []))
    return {"source": cell.source, "tags": cell.metadata["tags"], "type": cell.cell_type}


def test_an_executed_run_gives_papermills_injected_cell_and_output(tmp_path: Path) -> None:
    import papermill

    nb = _notebook(tmp_path / "study.ipynb")
    papermill.execute_notebook(
        str(nb), str(tmp_path / "papermill.ipynb"), parameters=VALUES, progress_bar=False, kernel_name="python3"
    )
    ws = tmp_path / "ws"
    text = yaml.safe_dump(VALUES, default_flow_style=True, sort_keys=False)
    ours = _run([*SANDBOX, "run", str(nb), "out/sandbox.ipynb", "-y", text, "--workspace", str(ws)], tmp_path)
    assert ours.returncode == 0, ours.stderr
    out = tmp_path / "out" / "sandbox.ipynb"
    assert _injected(out) == _injected(tmp_path / "papermill.ipynb")

    def printed(path: Path) -> dict[str, Any]:
        cells = nbformat.read(path, as_version=4).cells
        return dict(json.loads(next(o["text"] for c in cells for o in c.get("outputs", []) if "text" in o)))

    mine, theirs = printed(out), printed(tmp_path / "papermill.ipynb")
    assert {k: mine[k] for k in ("label", "n", "features")} == {k: theirs[k] for k in ("label", "n", "features")}
    assert mine["label"] == "007" and mine["n"] == 12
    assert mine["cwd"] == str(tmp_path)  # the notebook's folder, unless --cwd says otherwise
    # the output path holds the same notebook as the run record
    run_id = ours.stdout.split()[1]
    assert nbformat.read(out, as_version=4) == nbformat.read(ws / "runs" / run_id / "output.ipynb", as_version=4)
    # no alarming noise: no TCP warning (IPC sockets), and the kernel process's own stderr goes to its log
    assert "without encryption" not in ours.stderr and "KeyboardInterrupt" not in ours.stderr
    log = (ws / "runs" / run_id / "kernel.log").read_text(encoding="utf-8")
    assert "KeyboardInterrupt (written by the kernel process itself)" in log
    assert "without encryption" not in log


def test_parameters_from_file_then_yaml_then_p(tmp_path: Path) -> None:
    from sandbox._private.kernel.studies.runner import _Inputs, _resolve_parameters

    nb = nbformat.read(_notebook(tmp_path / "study.ipynb"), as_version=4)
    file = tmp_path / "p.yaml"
    file.write_text("label: from-file\nn: 1\nepsilon: 0.5\n")
    given = _Inputs({"epsilon": 0.7}, [("epsilon", "0.9")], file, ("{n: 2, label: from-y}", "n: 5"))
    assert _resolve_parameters(nb, given) == {"label": "from-y", "n": 5, "epsilon": 0.9}


def test_help_notebook_lists_names_types_defaults_and_comments(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "study.ipynb")
    proc = _run([*SANDBOX, "run", str(nb), "--help-notebook"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "Parameters of notebook 'study.ipynb' (cell 0, tagged 'parameters'):"
    by_name = {line.split(":")[0].strip(): line for line in lines[1:] if line.startswith("  ")}
    assert list(by_name) == ["label", "n", "epsilon", "features", "options", "verbose", "threshold"]
    assert "label: str" in by_name["label"] and '(default "x")' in by_name["label"]
    assert by_name["label"].endswith("a label, kept as a string")
    assert "features: list[str]" in by_name["features"] and by_name["features"].endswith("list of str")
    assert "threshold: float | None" in by_name["threshold"] and "(default None)" in by_name["threshold"]
    assert "type:" not in by_name["threshold"]  # a type comment declares, it is not help text
    assert not (tmp_path / "workspace").exists()
    # the shipped study documents its parameters this way too
    study = Path(__file__).resolve().parents[1] / "notebooks" / "03_study_early_warning_model.ipynb"
    shipped = _run([*SANDBOX, "run", str(study), "--help-notebook"], tmp_path)
    assert shipped.returncode == 0 and "audit_epsilon: float | None" in shipped.stdout


def test_kernel_and_cwd_options(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "study.ipynb")
    ws = tmp_path / "ws"
    unknown = _run([*SANDBOX, "run", str(nb), "-k", "no-such-kernel", "--workspace", str(ws)], tmp_path)
    assert unknown.returncode == 4, unknown.stderr
    assert "No Jupyter kernel named 'no-such-kernel'" in unknown.stderr and "python3" in unknown.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ok = _run(
        [*SANDBOX, "run", str(nb), "-", "-k", "python3", "--cwd", str(elsewhere), "--workspace", str(ws)], tmp_path
    )
    assert ok.returncode == 0, ok.stderr
    node = nbformat.reads(ok.stdout, as_version=4)  # the output notebook on stdout, the summary on stderr
    text = next(o["text"] for c in node.cells for o in c.get("outputs", []) if "text" in o)
    assert json.loads(text)["cwd"] == str(elsewhere)
    assert "succeeded" in ok.stderr
    records = [RunStore(ws).load(r) for r in RunStore(ws).list()]
    assert [r.status for r in records] == ["failed", "succeeded"]
    assert records[0].failure is not None and records[0].failure.kind == "kernel_died"
