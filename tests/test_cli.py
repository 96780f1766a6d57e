"""The ``sandbox`` CLI: --help everywhere, and no path that misleads (issue 14 point 3).

Each item of point 3 has its test here: ``verify`` of a missing workspace fails; ``verify`` and ``review`` honour
``SANDBOX_WORKSPACE``; ``--workspace`` works after ``review``'s subcommand too; ``review show ""`` is an error, not
a traceback; ``sb.connect()`` in a folder without a workspace refuses (unless asked to create one); a vault started
by ``sb.connect()`` or ``sandbox lab`` stops once its clients have ended; and every bad input ends with a message
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from sandbox._private.shared.files import pid_alive
from sandbox._private.shared.layout import WorkspaceLayout
from sandbox.cli import cli, main

SANDBOX = [sys.executable, "-c", "import sys; from sandbox.cli import main; sys.exit(main())"]
GRACE = "1"  # seconds a local vault of these tests waits after its last client ended


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


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SANDBOX_VAULT_URL", "SANDBOX_TOKEN", "SANDBOX_WORKSPACE")}
    return {**env, "SANDBOX_LOCAL_VAULT_GRACE_S": GRACE, **extra}


def sandbox(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``sandbox`` command in a child process (the way a user runs it)."""
    return subprocess.run(
        [*SANDBOX, *args], cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=180, check=False
    )


def _wait_gone(layout: WorkspaceLayout, timeout: float = 40.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if layout.read_discovery() is None:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, small_population: Path) -> Path:
    """A workspace with the small population registered (through the CLI), no vault running."""
    ws = tmp_path_factory.mktemp("cli") / "workspace"
    done = sandbox("dataset", "add-population", str(small_population), "--workspace", str(ws))
    assert done.returncode == 0, done.stderr
    return ws


@pytest.fixture
def running(workspace: Path) -> Iterator[str]:
    """The workspace's vault, started with ``sandbox vault start`` and stopped with ``sandbox vault stop``."""
    started = sandbox("vault", "start", "--workspace", str(workspace))
    assert started.returncode == 0, started.stderr
    url = re.search(r"http://127\.0\.0\.1:\d+", started.stdout)
    assert url, started.stdout
    try:
        yield url.group(0)
    finally:
        stopped = sandbox("vault", "stop", "--workspace", str(workspace))
        assert stopped.returncode == 0, stopped.stderr
        assert WorkspaceLayout(workspace).read_discovery() is None


def _reviewer_token(workspace: Path, name: str = "rita") -> str:
    made = sandbox("vault", "token", "create", "--workspace", str(workspace), "--role", "reviewer", "--name", name)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@pytest.mark.parametrize("path", _commands(cli), ids=lambda p: " ".join(p) or "sandbox")
def test_help_on_every_command(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    code = main([*path, "--help"])
    assert code == 0
    assert "Usage:" in capsys.readouterr().out


def test_policy_error_is_a_clean_message(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("budget: {epsilon_per_dataset: 0}\n")
    proc = sandbox("policy", "check", str(bad))
    assert proc.returncode == 2
    assert "budget.epsilon_per_dataset" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- verify -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["missing", "empty folder"])
def test_verify_refuses_a_folder_that_holds_no_workspace(tmp_path: Path, where: str) -> None:
    target = tmp_path / "nonexistent" if where == "missing" else tmp_path
    proc = sandbox("verify", "--workspace", str(target))
    assert proc.returncode == 2, proc.stdout
    assert "ok" not in proc.stdout.split()
    assert f"No sandbox workspace at {target.resolve()}" in proc.stderr
    assert "--workspace PATH" in proc.stderr and "SANDBOX_WORKSPACE" in proc.stderr  # the fix
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.system
def test_verify_and_review_honour_sandbox_workspace(workspace: Path, tmp_path: Path) -> None:
    ok = sandbox("verify", cwd=tmp_path, SANDBOX_WORKSPACE=str(workspace))  # no ./workspace here
    assert ok.returncode == 0 and ok.stdout.split()[-1] == "ok", ok.stdout + ok.stderr
    elsewhere = tmp_path / "not-a-workspace"
    bad = sandbox("verify", cwd=tmp_path, SANDBOX_WORKSPACE=str(elsewhere))
    assert bad.returncode == 2 and str(elsewhere) in bad.stderr
    # review reads it too: the message names the workspace it was given through the variable
    review = sandbox("review", "list", "--token", "x", cwd=tmp_path, SANDBOX_WORKSPACE=str(elsewhere))
    assert review.returncode == 2 and str(elsewhere) in review.stderr and "Traceback" not in review.stderr
    stopped = sandbox("review", "list", "--token", "x", cwd=tmp_path, SANDBOX_WORKSPACE=str(workspace))
    assert stopped.returncode == 2 and "is not running" in stopped.stderr
    assert f"sandbox vault start --workspace {workspace}" in stopped.stderr  # the command that fixes it


@pytest.mark.system
def test_review_options_work_before_and_after_the_subcommand(workspace: Path, running: str, tmp_path: Path) -> None:
    token = _reviewer_token(workspace)
    before = sandbox("review", "--workspace", str(workspace), "--token", token, "list", "--all", cwd=tmp_path)
    after = sandbox("review", "list", "--all", "--workspace", str(workspace), "--token", token, cwd=tmp_path)
    assert before.returncode == 0 and after.returncode == 0, before.stderr + after.stderr
    assert before.stdout == after.stdout
    by_env = sandbox("review", "list", "--all", cwd=tmp_path, SANDBOX_WORKSPACE=str(workspace), SANDBOX_TOKEN=token)
    assert by_env.returncode == 0 and by_env.stdout == before.stdout
    # after the subcommand wins over before it
    nope = tmp_path / "nope"
    wins = sandbox("review", "--workspace", str(nope), "list", "--workspace", str(workspace), "--token", token)
    assert wins.returncode == 0, wins.stderr
    for action in ("show", "approve"):
        missing = sandbox("review", action, "req_0123456789abcdef", "--workspace", str(workspace), "--token", token)
        assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr
        assert "req_0123456789abcdef" in missing.stderr


@pytest.mark.parametrize("request_id", ["", " ", "../../v1/health", "req_123"])
def test_review_of_a_malformed_request_id_is_a_message(request_id: str, tmp_path: Path) -> None:
    proc = sandbox("review", "show", request_id, "--token", "x", "--workspace", str(tmp_path))
    assert proc.returncode == 2, proc.stdout
    assert "is not a request id" in proc.stderr and "sandbox review list --all" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- sb.connect() and the lifetime of local vaults ------------------------------------------------------------------
def test_connect_refuses_a_folder_without_a_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sandbox as sb
    from sandbox._private.kernel.launch import stop_local_vault

    monkeypatch.chdir(tmp_path)
    for var in ("SANDBOX_VAULT_URL", "SANDBOX_TOKEN", "SANDBOX_WORKSPACE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(sb.NotFoundError) as refused:
        sb.connect()
    message = str(refused.value)
    assert f"No sandbox workspace at {tmp_path.resolve() / 'workspace'}" in message
    for fix in ("sb.connect('path/to/workspace')", "SANDBOX_WORKSPACE", "create=True", "add-population"):
        assert fix in message
    assert not (tmp_path / "workspace").exists()  # nothing was created behind the caller's back
    monkeypatch.setenv("SANDBOX_LOCAL_VAULT_GRACE_S", GRACE)
    try:
        with sb.connect(create=True) as ws:
            assert ws.datasets() == []
    finally:
        assert stop_local_vault(tmp_path / "workspace")


@pytest.mark.system
def test_connect_honours_sandbox_workspace(workspace: Path, tmp_path: Path) -> None:
    code = "import sandbox as sb\nwith sb.connect() as ws:\n    print(sorted(ws.datasets()))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=_env(SANDBOX_WORKSPACE=str(workspace)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['households', 'persons', 'signals']"
    assert not (tmp_path / "workspace").exists()
    assert _wait_gone(WorkspaceLayout(workspace))


def _client(workspace: Path) -> subprocess.Popen[str]:
    """A process that connects (starting or reusing the vault), prints the vault's pid, and waits for stdin."""
    code = (
        "import json, sys\nimport sandbox as sb\nws = sb.connect(sys.argv[1])\n"
        "print(json.load(open(sys.argv[1] + '/vault/vault.json'))['pid'], flush=True)\nsys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(workspace)],
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc


@pytest.mark.system
def test_a_local_vault_runs_while_any_client_runs_and_stops_after_the_last(workspace: Path) -> None:
    layout = WorkspaceLayout(workspace)
    first = _client(workspace)
    second = None
    try:
        assert first.stdout is not None
        pid = int(first.stdout.readline())
        second = _client(workspace)
        assert second.stdout is not None
        assert int(second.stdout.readline()) == pid  # reused, not a second vault
        first.kill()  # the process that started the vault dies without any goodbye
        first.communicate(timeout=30)
        time.sleep(float(GRACE) + 3)
        info = layout.read_discovery()
        assert info is not None and info["pid"] == pid, "the vault stopped while a client still used it"
        second.communicate(input="", timeout=60)  # the last client ends normally
        assert _wait_gone(layout), "the vault kept running after its last client ended"
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pid_alive(pid)
        assert "stopping: no process has used this vault" in layout.log.read_text(encoding="utf-8")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
            if proc is not None:
                proc.communicate(timeout=30)  # reaps it and closes its pipes


@pytest.mark.system
def test_a_vault_started_by_sandbox_lab_stops_when_the_lab_ends(workspace: Path, tmp_path: Path) -> None:
    layout = WorkspaceLayout(workspace)
    assert _wait_gone(layout)
    (tmp_path / "notebooks").mkdir()
    lab = subprocess.Popen(
        [*SANDBOX, "lab", "--workspace", str(workspace), "--notebooks", str(tmp_path / "notebooks")],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert lab.stdout is not None
        url = lab.stdout.readline()
        assert url.startswith("http://127.0.0.1:"), lab.stderr.read() if lab.stderr else url
        info = layout.read_discovery()
        assert info is not None
        leases = sorted(int(p.stem) for p in (layout.root / "clients").glob("*.json"))
        assert lab.pid in leases and len(leases) >= 2  # the lab command and its JupyterLab server
        lab.send_signal(signal.SIGTERM)  # what a service manager or Ctrl-C does
        lab.wait(timeout=60)
        assert lab.returncode == 0, lab.stderr.read() if lab.stderr else lab.returncode
        assert _wait_gone(layout), "the vault kept running after sandbox lab ended"
        assert not pid_alive(int(info["pid"])) or _wait_gone(layout)
    finally:
        if lab.poll() is None:
            lab.kill()
        lab.communicate(timeout=30)


@pytest.mark.system
def test_a_watched_vault_stops_when_its_workspace_is_deleted(tmp_path: Path) -> None:
    from sandbox._private.shared.clients import register_client

    layout = WorkspaceLayout.create(tmp_path / "ws")
    sleeper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    register_client(layout, sleeper.pid)  # a live client: only the deletion can stop the vault
    vault = subprocess.Popen(
        [*SANDBOX, "vault", "serve", "--workspace", str(layout.workspace), "--stop-when-unused", "0.5"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while layout.read_discovery() is None and time.monotonic() < deadline and vault.poll() is None:
            time.sleep(0.1)
        assert layout.read_discovery() is not None, "the vault did not start"
        time.sleep(2)
        assert vault.poll() is None  # its client still runs: it keeps serving
        shutil.rmtree(layout.workspace)
        vault.wait(timeout=30)  # gone with its workspace, not running for ever
    finally:
        if vault.poll() is None:
            vault.kill()
            vault.wait(timeout=30)
        sleeper.communicate(input=b"", timeout=30)


@pytest.mark.system
def test_vault_start_and_stop(workspace: Path) -> None:
    assert _wait_gone(WorkspaceLayout(workspace))
    first = sandbox("vault", "start", "--workspace", str(workspace))
    again = sandbox("vault", "start", "--workspace", str(workspace))
    try:
        assert first.returncode == 0 and " started at http://127.0.0.1:" in first.stdout, first.stderr
        assert again.returncode == 0 and "already running" in again.stdout
        time.sleep(float(GRACE) + 2)  # no watchdog: no client is needed to keep it running
        assert WorkspaceLayout(workspace).read_discovery() is not None
    finally:
        stop = sandbox("vault", "stop", "--workspace", str(workspace))
    assert stop.returncode == 0 and "stopped the vault" in stop.stdout
    idle = sandbox("vault", "stop", "--workspace", str(workspace))
    assert idle.returncode == 0 and "was running" in idle.stdout


# -- every bad input: a message with the fix and a non-zero exit, never a traceback -------------------------------
BAD_INPUT: list[tuple[list[str], str]] = [
    (["verify", "--workspace", "{nope}"], "--workspace PATH"),
    (["verify", "--head-seq", "1"], "give both --head-seq and --head-hash"),
    (["review", "show", ""], "sandbox review list --all"),
    (["review", "list"], "--token TOKEN"),
    (["review", "list", "--token", "x", "--workspace", "{nope}"], "--workspace PATH"),
    (["budget", "households", "--workspace", "{nope}"], "--workspace PATH"),
    (["dataset", "list", "--workspace", "{nope}"], "--workspace PATH"),
    (["dataset", "add", "t", "{tmp}/none.parquet", "--schema", "{tmp}/none.json", "--workspace", "{tmp}/w"], ""),
    (["vault", "start", "--workspace", "{nope}"], "--workspace PATH"),
    (["vault", "stop", "--workspace", "{nope}"], "--workspace PATH"),
    (["vault", "token", "list", "--workspace", "{nope}"], "--workspace PATH"),
    (["run", "{tmp}/none.ipynb", "--workspace", "{tmp}/w"], "check the path"),
    (["run", "{tmp}/none.ipynb", "--help-notebook"], "check the path"),
    (["run", "{nb}", "--prepare-only"], "give one"),
    (["run", "{nb}", "{tmp}/out.ipynb", "--prepare-only", "-y", "[1, 2]"], "must be a mapping"),
    (["run", "{nb}", "{tmp}/out.ipynb", "--prepare-only", "-y", "n: [unclosed"], "not valid YAML"),
    (["run", "{nb}", "{tmp}/out.ipynb", "--prepare-only", "-p", "nn", "1"], "Did you mean 'n'?"),
    (["run", "{sbnb}", "--workspace", "{nope}"], "--workspace PATH"),
    (["run", "{nb}", "--cwd", "{nope}", "--workspace", "{tmp}/w", "--no-vault"], "does not exist"),
    (["rerun", "run-20000101T000000Z-00000000", "--workspace", "{tmp}/w"], "No run"),
    (["lab", "--workspace", "{nope}", "--notebooks", "{tmp}"], "SANDBOX_WORKSPACE"),
    (["policy", "check", "{tmp}/none.yaml"], ""),
    (["demo", "--households", "5"], "x>=100"),
    (["no-such-command"], "No such command"),
]


@pytest.mark.parametrize(("argv", "fix"), BAD_INPUT, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_input_is_a_message_naming_the_fix_never_a_traceback(argv: list[str], fix: str, tmp_path: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("n = 1", metadata={"tags": ["parameters"]}), new_code_cell("print(n)")])
    nbformat.write(nb, tmp_path / "study.ipynb")
    nb.cells.append(new_code_cell("import sandbox as sb"))
    nbformat.write(nb, tmp_path / "uses_sandbox.ipynb")
    subs = {"{nope}": str(tmp_path / "nope"), "{tmp}": str(tmp_path)}
    subs |= {"{nb}": str(tmp_path / "study.ipynb"), "{sbnb}": str(tmp_path / "uses_sandbox.ipynb")}
    args = [_sub(a, subs) for a in argv]
    proc = sandbox(*args, cwd=tmp_path)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0, said
    assert "Traceback" not in said
    assert proc.stderr.strip(), "a failure must say why"
    assert fix in said
    assert not (tmp_path / "nope").exists()  # a wrong --workspace is never created


def _sub(arg: str, subs: dict[str, str]) -> str:
    for key, value in subs.items():
        arg = arg.replace(key, value)
    return arg


def test_an_unexpected_error_is_one_line_with_how_to_see_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sandbox.cli._verify as verify_cli

    (tmp_path / "vault").mkdir()

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(verify_cli, "verify_workspace", broken)
    monkeypatch.delenv("SANDBOX_DEBUG", raising=False)
    assert main(["verify", "--workspace", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("internal error: KeyError: 'a bug'") and "SANDBOX_DEBUG=1" in err
    monkeypatch.setenv("SANDBOX_DEBUG", "1")
    with pytest.raises(KeyError):
        main(["verify", "--workspace", str(tmp_path)])


def test_leases_tell_running_processes_from_ended_ones(tmp_path: Path) -> None:
    from sandbox._private.shared.clients import live_clients, process_running, process_start, register_client

    layout = WorkspaceLayout.create(tmp_path / "ws")
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        register_client(layout)
        register_client(layout, child.pid)
        assert sorted(live_clients(layout)) == sorted([os.getpid(), child.pid])
        assert process_running(os.getpid(), process_start(os.getpid()))
        assert not process_running(os.getpid(), "0")  # same pid, another start time: a later process
    finally:
        child.communicate(input=b"", timeout=30)
    assert live_clients(layout) == [os.getpid()]  # the ended child's lease is pruned
    assert sorted(p.name for p in (layout.root / "clients").iterdir()) == [f"{os.getpid()}.json"]
    lease = json.loads((layout.root / "clients" / f"{os.getpid()}.json").read_text())
    assert lease["pid"] == os.getpid() and lease["start"] == process_start(os.getpid())
