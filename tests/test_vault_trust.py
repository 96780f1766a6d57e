"""A server the client can trust: a program of another OS user on the vault's address never receives a token.

The squatter is a real HTTP server run as the OS account ``nobody`` (``runuser``; the tests run as root, as CI
does) on a free loopback port or on a Unix socket: it records every byte it receives and answers every request
with ``200 {"status": "up"}``, as a vault would. Each refusal test has a positive control: the same server run as
our own account does receive the token, so the refusal comes from the identity check and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import VaultProcess, free_port, register_population

import sandbox as sb
from sandbox._private.kernel.review_login import review_page_link
from sandbox._private.kernel.transport import Transport
from sandbox._private.shared.errors import VaultIdentityError
from sandbox._private.shared.layout import WorkspaceLayout

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a squatter as another OS account (runuser)"),
]

TOKEN = "sbx_" + "S" * 43
_SQUATTER = r"""
import socket, sys, threading, os
kind, where, log = sys.argv[1], sys.argv[2], sys.argv[3]
if kind == "tcp":
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(where)))
else:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(where)
    os.chmod(where, 0o666)
srv.listen(16)
body = b'{"status": "up"}'
reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
def serve(conn):
    with open(log, "ab") as fh:
        fh.write(b"<connection>\n")
    conn.settimeout(5)
    while True:
        try:
            data = conn.recv(65536)
        except OSError:
            break
        if not data:
            break
        with open(log, "ab") as fh:
            fh.write(data)
        if b"\r\n\r\n" in data:
            conn.sendall(reply)
    conn.close()
print("ready", flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


@dataclass
class Squatter:
    """A fake vault run as ``user`` on a loopback port or a Unix socket; ``received()`` is everything it got."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def received(self) -> bytes:
        return self.log.read_bytes() if self.log.exists() else b""

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=10)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A folder every account may read and write (the squatter's script and its log)."""
    d = Path(tempfile.mkdtemp(prefix="sbx-trust-"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def squat(public_dir: Path) -> Iterator[Callable[..., Squatter]]:
    started: list[Squatter] = []

    def start(user: str = "nobody", *, port: int | None = None, socket_path: Path | None = None) -> Squatter:
        script = public_dir / "squatter.py"
        script.write_text(_SQUATTER, encoding="utf-8")
        script.chmod(0o644)
        log = public_dir / f"received-{len(started)}.log"
        if socket_path is not None:
            args, url = ["unix", str(socket_path)], f"unix:{socket_path}"
        else:
            port = port or free_port()
            args, url = ["tcp", str(port)], f"http://127.0.0.1:{port}"
        cmd = ["/usr/bin/python3", str(script), *args, str(log)]
        if user != "root":
            cmd = ["runuser", "-u", user, "--", *cmd]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready", proc.stderr
        s = Squatter(proc, url, log)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def _refusal(url: str, expected: str, found: str) -> str:
    return (
        rf"Refusing to send a token to {re.escape(url)}: the vault there must run as OS account '{expected}'.*{found}"
    )


def test_squatted_loopback_port_never_gets_the_token(squat: Callable[..., Squatter]) -> None:
    s = squat("nobody")
    with pytest.raises(VaultIdentityError, match=_refusal(s.url, "root", "runs as 'nobody'")):
        Transport(s.url, TOKEN).get("/v1/datasets")
    with pytest.raises(VaultIdentityError, match=_refusal(s.url, "root", "runs as 'nobody'")):
        sb.connect(url=s.url, token=TOKEN).dataset("households")  # the analyst's first request: a schema
    with pytest.raises(VaultIdentityError, match="must run as OS account 'root'"):
        review_page_link(s.url, TOKEN)  # a reviewer opening /review there
    deadline = time.monotonic() + 10  # the squatter logs each connection from its own process: wait for the third
    while (got := s.received()).count(b"<connection>") < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got.count(b"<connection>") >= 3  # the client did reach the squatter each time ...
    assert TOKEN.encode() not in got and b"Authorization" not in got  # ... and sent it nothing at all
    assert got.replace(b"<connection>\n", b"") == b""


def test_positive_control_a_server_of_our_own_account_gets_the_token(squat: Callable[..., Squatter]) -> None:
    s = squat("root")
    with Transport(s.url, TOKEN) as t:
        assert t.get("/v1/health") == {"status": "up"}
    assert b"Authorization: Bearer " + TOKEN.encode() in s.received()


def test_a_kept_alive_client_proves_the_new_server_when_the_old_one_is_gone(squat: Callable[..., Squatter]) -> None:
    """The vault stops (its end of the kept-alive connection closes) and another account takes its port."""
    ours = squat("root")
    port = int(ours.url.rsplit(":", 1)[1])
    t = Transport(ours.url, TOKEN)
    assert t.get("/v1/health") == {"status": "up"} and t.post("/v1/query", {"epsilon": 1}) == {"status": "up"}
    assert t.backend.connects == 1 and TOKEN.encode() in ours.received()  # positive control, one connection
    ours.stop()
    theirs = squat("nobody", port=port)
    time.sleep(0.2)
    for call in (lambda: t.post("/v1/query", {"epsilon": 1}), lambda: t.get("/v1/datasets")):
        with pytest.raises(VaultIdentityError, match=_refusal(theirs.url, "root", "runs as 'nobody'")):
            call()
    t.close()
    deadline = time.monotonic() + 10
    while (got := theirs.received()).count(b"<connection>") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got == b"<connection>\n" * 2  # reached twice, sent nothing


def test_vault_user_names_the_account_a_deployed_vault_runs_as(
    squat: Callable[..., Squatter], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = squat("nobody")
    monkeypatch.setenv("SANDBOX_VAULT_USER", "postgres")
    with pytest.raises(VaultIdentityError, match=_refusal(s.url, "postgres", "runs as 'nobody'")):
        Transport(s.url, TOKEN).get("/v1/health")
    monkeypatch.setenv("SANDBOX_VAULT_USER", "nobody")
    with Transport(s.url, TOKEN) as t:  # the account it was told: trusted (positive control)
        t.get("/v1/health")
    assert TOKEN.encode() in s.received()


def test_local_vault_whose_port_was_squatted(tmp_path: Path, squat: Callable[..., Squatter]) -> None:
    """A workspace's vault.json names a port that another account holds now: sb.connect() sends nothing."""
    s = squat("nobody")
    layout = WorkspaceLayout.create(tmp_path / "ws")
    layout.discovery.write_text(json.dumps({"url": s.url, "pid": s.proc.pid, "port": 0}), encoding="utf-8")
    layout.client_token.write_text(TOKEN + "\n", encoding="ascii")
    with pytest.raises(VaultIdentityError, match="the owner of the workspace whose vault this is"):
        sb.connect(tmp_path / "ws").datasets()
    assert TOKEN.encode() not in s.received()


def test_plain_http_to_another_host_is_refused() -> None:
    with pytest.raises(VaultIdentityError, match=r"neither a loopback address .* nor a Unix socket"):
        Transport("http://10.1.2.3:8700", TOKEN)


# -- Unix sockets ------------------------------------------------------------------------------------------------
def _socket_dir(base: Path, owner: str = "root", mode: int = 0o750) -> Path:
    d = base / f"run-{owner}"
    d.mkdir()
    shutil.chown(d, owner, None)
    d.chmod(mode)
    return d


def test_socket_in_a_folder_others_may_write_is_refused(public_dir: Path, squat: Callable[..., Squatter]) -> None:
    folder = _socket_dir(public_dir, "root", 0o777)
    s = squat("root", socket_path=folder / "vault.sock")
    with pytest.raises(VaultIdentityError, match=r"mode 777\) is writable by others"):
        Transport(s.url, TOKEN)
    assert s.received() == b""


def test_socket_of_another_account_is_refused(
    public_dir: Path, squat: Callable[..., Squatter], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _socket_dir(public_dir, "nobody", 0o755)
    s = squat("nobody", socket_path=folder / "vault.sock")
    monkeypatch.setenv("SANDBOX_VAULT_USER", "root")
    with pytest.raises(VaultIdentityError, match=r"belongs to 'nobody', not to the vault's account 'root'"):
        Transport(s.url, TOKEN)
    assert s.received() == b""


def _serve_on_socket(vault: VaultProcess, socket_path: Path, timeout: float = 90.0) -> dict[str, object]:
    cmd = [sys.executable, "-c", "from sandbox.cli import run; run()", "vault", "serve"]
    cmd += ["--workspace", str(vault.workspace), "--port", "0", "--socket", str(socket_path)]
    with (vault.workspace / "vault-test.log").open("ab") as log:
        vault.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = vault.layout.read_discovery()
        if info is not None and info.get("pid") == vault.proc.pid:
            return info
        assert vault.proc.poll() is None, (vault.workspace / "vault-test.log").read_text()[-2000:]
        time.sleep(0.05)
    raise AssertionError("the vault did not start on its socket")


def test_vault_on_a_unix_socket_checks_its_peers(
    vault_factory: Callable[..., VaultProcess], small_population: Path, public_dir: Path
) -> None:
    folder = _socket_dir(public_dir, "root", 0o750)
    sock_path = folder / "vault.sock"
    v = vault_factory()
    register_population(v.workspace, small_population)
    info = _serve_on_socket(v, sock_path)
    try:
        assert info["url"] == f"unix:{sock_path}" and info["socket"] == str(sock_path)
        assert oct(sock_path.stat().st_mode & 0o777) == "0o660"
        ws = sb.connect(url=str(info["url"]), token=v.token())
        assert ws.dataset("households").count(epsilon=0.1).to_pandas()["value"].iloc[0] > 1000
        ws.close()
        # The filesystem keeps other accounts out (0750); open it up to show that the vault itself refuses them too.
        folder.chmod(0o755)
        sock_path.chmod(0o666)
        probe = (
            "import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)\n"
            "try:\n s.sendall(b'GET /v1/health HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); print(repr(s.recv(100)))\n"
            "except OSError as e:\n print('closed', type(e).__name__)"
        )
        out = subprocess.run(
            ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", probe, str(sock_path)],
            capture_output=True,
            timeout=30,
            check=False,
        )
        # connected, then closed by the vault before any answer
        assert out.stdout.strip() in (b"b''", b"closed BrokenPipeError", b"closed ConnectionResetError"), out
        mine = subprocess.run(
            ["/usr/bin/python3", "-c", probe, str(sock_path)], capture_output=True, timeout=30, check=False
        )
        assert b"200 OK" in mine.stdout, mine  # the vault's own account is served (control)
    finally:
        v.stop()
    assert not sock_path.exists()  # removed on a clean shutdown


def test_review_page_link_proves_the_vault_first(population_vault: VaultProcess) -> None:
    link = review_page_link(population_vault.url, population_vault.token("reviewer", "rianne"))
    assert re.fullmatch(re.escape(population_vault.url) + r"/review/enter#code=sbc_[A-Za-z0-9_-]+", link)
    code = link.split("code=")[1]
    with httpx.Client(base_url=population_vault.url) as c:
        session = c.post("/v1/review/session", headers={"Authorization": f"Bearer {code}"})
        again = c.post("/v1/review/session", headers={"Authorization": f"Bearer {code}"})
        token = session.json()["token"]
        listed = c.get("/v1/releases", headers={"Authorization": f"Bearer {token}"})
        page = c.get("/review/enter")
    assert session.status_code == 200 and session.json()["reviewer"] == "rianne"
    assert again.status_code == 401 and "unknown, used or expired" in again.json()["message"]  # one use only
    assert listed.status_code == 200  # the session acts as the reviewer
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]


def test_keep_alive_reuses_one_verified_connection(population_vault: VaultProcess) -> None:
    with Transport(population_vault.url, population_vault.token()) as t:
        for _ in range(20):
            t.get("/v1/datasets")
        t.get("/v1/datasets", params={"x": 1})  # the httpx path has a connection of its own, verified as well
        assert t.backend.connects == 2
        assert t._wire is not None and len(t._wire.idle) == 1
        sock = t._wire.idle[0].sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        sock = t._http._transport._pool.connections[0]._connection._network_stream.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert t.get("/v1/datasets") and t.backend.connects == 2


def test_accepted_connections_have_tcp_nodelay() -> None:
    """The listening socket is made with IPPROTO_TCP, so accepted sockets (and asyncio) get TCP_NODELAY."""
    from sandbox._private.vault.listeners import bind_tcp

    listener = bind_tcp(0)
    client = socket.create_connection(listener.getsockname())
    try:
        accepted, _ = listener.accept()
        assert accepted.proto == socket.IPPROTO_TCP  # what asyncio's _set_nodelay looks for
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        accepted.close()
    finally:
        client.close()
        listener.close()
