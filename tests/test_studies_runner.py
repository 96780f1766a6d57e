"""Study runs through papermill: records, scrubbed outputs, failures that are recorded, reruns."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from nbformat.v4 import new_code_cell, new_notebook

from sandbox import IntegrityError, NotFoundError, StudyError, StudyRunError, rerun_study, run_study
from sandbox._private.kernel.studies.record import RUN_FORMAT, RunRecord, RunStore, package_versions
from sandbox._private.kernel.studies.runner import _cell_failure
from sandbox.cli._study import rerun as rerun_cmd
from sandbox.cli._study import run as run_cmd

PARAMS = 'label = "x"\nn = 3\nepsilon = 1.0\n'
BODY = [
    "import os, json\nprint(json.dumps({'label': label, 'type': type(label).__name__, 'n': n,"
    " 'run': os.environ['SANDBOX_RUN_ID'], 'ws': os.environ['SANDBOX_WORKSPACE']}))",
    "import pandas as pd\npd.DataFrame({'income': [31330 + 7 + i for i in range(n)]})",
    "assert n < 10, f'n too large: {n}'",
]


def write_notebook(path: Path, params: str | None = PARAMS, body: list[str] = BODY) -> Path:
    nb = new_notebook()
    cells = []
    if params is not None:
        cell = new_code_cell(params)
        cell.metadata["tags"] = ["parameters"]
        cells.append(cell)
    nb.cells = cells + [new_code_cell(src) for src in body]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def printed(record: RunRecord, workspace: Path) -> dict[str, object]:
    out = nbformat.read(workspace / "runs" / record.run_id / "output.ipynb", as_version=4)
    texts = [o["text"] for c in out.cells for o in c.get("outputs", []) if o.get("name") == "stdout"]
    return dict(json.loads(texts[0]))


def test_run_records_everything_and_rerun_repeats_it(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    nb_path = write_notebook(repo / "study.ipynb")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "study.ipynb"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "study"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    ws = tmp_path / "ws"

    record = run_study(nb_path, workspace=ws, cli_params=[("label", "007"), ("n", "2")], progress=False)

    assert record.status == "succeeded" and record.failure is None and record.ended
    assert record.parameters == {"label": "007", "n": 2}
    assert record.notebook_sha256 == hashlib.sha256(nb_path.read_bytes()).hexdigest()
    assert (record.git_commit, record.git_dirty) == (head, False)
    assert record.packages == package_versions() and record.format == RUN_FORMAT
    assert RunStore(ws).load(record.run_id) == record
    seen = printed(record, ws)
    assert seen == {"label": "007", "type": "str", "n": 2, "run": record.run_id, "ws": str(ws.resolve())}
    stored = (ws / "runs" / record.run_id / "output.ipynb").read_text()
    assert "31337" not in stored and record.scrubbed_outputs == 1  # the data frame was not stored

    again = rerun_study(record.run_id, ws, progress=False)
    assert again.rerun_of == record.run_id and again.run_id != record.run_id
    assert again.parameters == record.parameters and again.notebook_sha256 == record.notebook_sha256
    assert printed(again, ws) == {**seen, "run": again.run_id}
    assert RunStore(ws).list() == sorted([record.run_id, again.run_id])


def test_failing_cell_is_shown_and_recorded(tmp_path: Path) -> None:
    nb_path = write_notebook(tmp_path / "study.ipynb")
    ws = tmp_path / "ws"
    with pytest.raises(StudyRunError, match=r"Cell 3 \(In \[\d+\]\) raised AssertionError: n too large: 12") as info:
        run_study(nb_path, {"n": 12}, workspace=ws, progress=False)
    assert "assert n < 10" in str(info.value)  # the failing cell's source
    (run_id,) = RunStore(ws).list()
    record = RunStore(ws).load(run_id)
    assert record.status == "failed" and record.failure is not None
    assert (record.failure.kind, record.failure.cell_index, record.failure.ename) == ("cell_error", 3, "AssertionError")
    assert record.git_commit is None  # tmp_path is no git repository
    assert (ws / "runs" / run_id / "output.ipynb").is_file()


def test_kernel_death_is_recorded(tmp_path: Path) -> None:
    body = ["print(1)", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "print(2)"]
    nb_path = write_notebook(tmp_path / "die.ipynb", body=body)
    record = run_study(nb_path, workspace=tmp_path / "ws", progress=False, check=False)
    assert record.failure is not None
    assert (record.failure.kind, record.failure.cell_index, record.failure.exit_code) == ("kernel_died", 2, 4)
    assert "signal.SIGKILL" in str(record.failure.source_head)


@pytest.mark.parametrize(
    ("params", "cli", "error", "kind", "message"),
    [
        (PARAMS, [("n", "007")], StudyError, "invalid_parameters", "'n' expects int; '007'"),
        (PARAMS, [("epsilom", "1")], StudyError, "invalid_parameters", "Did you mean 'epsilon'"),
        (None, [], StudyError, "no_parameters_cell", "tag it 'parameters'"),
    ],
)
def test_bad_input_fails_before_any_kernel_and_is_recorded(
    tmp_path: Path, params: str | None, cli: list[tuple[str, str]], error: type, kind: str, message: str
) -> None:
    nb_path = write_notebook(tmp_path / "study.ipynb", params=params)
    ws = tmp_path / "ws"
    with pytest.raises(error, match=message):
        run_study(nb_path, workspace=ws, cli_params=cli, progress=False)
    (run_id,) = RunStore(ws).list()
    record = RunStore(ws).load(run_id)
    assert record.status == "failed" and record.failure is not None and record.failure.kind == kind
    assert record.failure.exit_code == 2 and record.notebook_sha256 is not None


def test_missing_notebook_is_recorded(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with pytest.raises(NotFoundError, match=r"nope\.ipynb' does not exist"):
        run_study(tmp_path / "nope.ipynb", workspace=ws, progress=False)
    record = RunStore(ws).load(RunStore(ws).list()[0])
    assert record.failure is not None and record.failure.kind == "missing_notebook" and record.notebook_sha256 is None
    with pytest.raises(NotFoundError, match="no stored notebook"):
        rerun_study(record.run_id, ws)


def test_not_a_notebook(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    with pytest.raises(NotFoundError, match="is not a Jupyter notebook"):
        run_study(bad, workspace=tmp_path / "ws", progress=False)


def test_rerun_refuses_a_changed_stored_notebook(tmp_path: Path) -> None:
    nb_path = write_notebook(tmp_path / "study.ipynb", params=None)
    ws = tmp_path / "ws"
    record = run_study(nb_path, workspace=ws, progress=False, check=False)  # fails: no parameters cell
    source = ws / "runs" / record.run_id / "source.ipynb"
    source.write_text(source.read_text() + " ")
    with pytest.raises(IntegrityError, match="the run folder was changed"):
        rerun_study(record.run_id, ws)
    with pytest.raises(NotFoundError, match="No run 'run-20000101T000000Z-00000000'"):
        rerun_study("run-20000101T000000Z-00000000", ws)
    with pytest.raises(NotFoundError, match="is not a run id"):
        RunStore(ws).run_dir("../etc")


@pytest.mark.parametrize(
    ("ename", "kind"), [("ConnectionRefusedError", "vault_unavailable"), ("ValueError", "cell_error")]
)
def test_vault_errors_are_told_apart(ename: str, kind: str) -> None:
    nb = new_notebook()
    injected = new_code_cell("n = 1")
    injected.metadata["tags"] = ["injected-parameters"]
    failing = new_code_cell("ws.dataset('households').count()")
    failing.outputs = [nbformat.v4.new_output("error", ename=ename, evalue="boom", traceback=[])]
    nb.cells = [new_code_cell("n = 0"), injected, failing]
    failure = _cell_failure(nb)
    assert failure is not None and (failure.kind, failure.cell_index) == (kind, 1)


def test_record_validates_itself() -> None:
    with pytest.raises(ValueError, match="does not look like"):
        RunRecord("x", "a.ipynb", "running", "now")
    with pytest.raises(ValueError, match="needs a failure"):
        RunRecord("run-20000101T000000Z-00000000", "a.ipynb", "failed", "now")


def test_cli_exit_codes_and_messages(tmp_path: Path) -> None:
    nb_path = write_notebook(tmp_path / "study.ipynb")
    ws = str(tmp_path / "ws")
    cli = CliRunner()
    bad = cli.invoke(run_cmd, [str(nb_path), "-p", "n", "007", "--workspace", ws])
    assert bad.exit_code == 2 and "'n' expects int" in bad.output and "record (marked failed)" in bad.output
    failed = cli.invoke(run_cmd, [str(nb_path), "-p", "n", "12", "--workspace", ws, "--no-progress"])
    assert failed.exit_code == 3, failed.output
    assert "--- cell 3 ---" in failed.output and "assert n < 10" in failed.output
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text("label: '007'\nn: 1\n")
    ok = cli.invoke(run_cmd, [str(nb_path), "-f", str(yaml_file), "--workspace", ws, "--no-progress"])
    assert ok.exit_code == 0, ok.output
    run_id = ok.output.split()[1]
    assert RunStore(ws).load(run_id).parameters == {"label": "007", "n": 1}
    again = cli.invoke(rerun_cmd, [run_id, "--workspace", ws, "--no-progress"])
    assert again.exit_code == 0 and f"rerun of: {run_id}" in again.output


def test_vault_not_running_fails_before_the_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("SANDBOX_VAULT_URL", dead)
    nb_path = write_notebook(tmp_path / "study.ipynb", body=["import sandbox as sb\nws = sb.connect()"])
    ws = tmp_path / "ws"
    with pytest.raises(StudyRunError, match=f"vault at SANDBOX_VAULT_URL={dead} is not running"):
        run_study(nb_path, workspace=ws, progress=False)
    record = RunStore(ws).load(RunStore(ws).list()[0])
    assert record.failure is not None and (record.failure.kind, record.failure.exit_code) == ("vault_unavailable", 5)
    assert not (ws / "runs" / record.run_id / "output.ipynb").exists()  # no kernel was started


def test_kernel_reports_charges_into_the_run_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox._private.kernel import spend
    from sandbox._private.kernel.studies.vault_access import confirm_ledger

    store = RunStore(tmp_path / "ws")
    run_dir = store.run_dir("run-20000101T000000Z-0000abcd")
    monkeypatch.setenv("SANDBOX_RUN_ID", "run-20000101T000000Z-0000abcd")
    monkeypatch.setenv("SANDBOX_WORKSPACE", str(store.workspace))
    spend.record_spend("households", 0.1, 9.9, result_id="r_1", sha256="ab", reused=False)
    spend.record_release("rel_1", status="pending_review", items=["r_1"])
    spend.drain()
    entries = confirm_ledger(run_dir, None)
    assert [e["type"] for e in entries] == ["charge", "release"]
    assert entries[0]["result_id"] == "r_1" and entries[0]["vault"] is None
    monkeypatch.setenv("SANDBOX_RUN_ID", "../../etc")  # not a run id: nothing is written anywhere
    spend.record_spend("households", 0.1, 9.8)
    spend.drain()
    assert len(confirm_ledger(run_dir, None)) == 2


def test_parameter_precedence_file_then_params_then_cli(tmp_path: Path) -> None:
    from sandbox._private.kernel.studies.runner import _Inputs, _resolve_parameters

    nb = nbformat.read(write_notebook(tmp_path / "study.ipynb"), as_version=4)
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text("label: from-file\nn: 1\nepsilon: 0.5\n")
    got = _resolve_parameters(nb, _Inputs({"n": 2, "epsilon": 0.7}, [("epsilon", "0.9")], yaml_file))
    assert got == {"label": "from-file", "n": 2, "epsilon": 0.9}


def test_a_run_keeps_marked_frames_as_the_lab_does(tmp_path: Path) -> None:
    """Study kernels load the sandbox extension: a dummy frame is stored; an untagged frame is dropped."""
    body = [
        "import pandas as pd\nfrom sandbox._private.kernel.mime import DUMMY_ATTR\n"
        "dummy = pd.DataFrame({'income': [11111, 22222]})\ndummy.attrs[DUMMY_ATTR] = {'dataset': 'households'}\n"
        "dummy.head(2)",
        "pd.DataFrame({'income': [31330 + 7 + i for i in range(n)]})",
    ]
    nb_path = write_notebook(tmp_path / "study.ipynb", body=body)
    record = run_study(nb_path, workspace=tmp_path / "ws", progress=False, vault=False)
    stored = (tmp_path / "ws" / "runs" / record.run_id / "output.ipynb").read_text()
    assert record.status == "succeeded" and record.scrubbed_outputs == 1
    assert "22222" in stored and "application/vnd.sandbox.dummy+json" in stored and "31337" not in stored
