"""Run the vault: open the workspace, ledger and policy, start the worker pool, serve HTTP, advertise in ``vault.json``.

The vault listens on loopback TCP (``--port``, the laptop mode), on a Unix socket (``--socket``, a deployment; its
peers are checked with ``SO_PEERCRED``), or on both (the TCP port then serves the reviewers' browser). Computations
run in worker processes (:mod:`.workers`), never in the event loop. Everything the vault writes is private to its
OS account: the process runs with umask 077 and the vault's folder is made 0700 with files 0600 on every start.

``vault.json`` (url, pid, port, socket, the vault's OS account, policy sha256) is written only once the sockets
listen, and removed on a clean shutdown (SIGTERM or SIGINT, handled by uvicorn; running jobs then fail, keeping
their charges). ``--ledger-url`` and ``--socket`` are remembered in ``vault/config.json`` (mode 0600), so
``sandbox dataset add`` and ``sandbox vault token create`` on the same workspace use the same ledger and know that
the vault is a deployment.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sandbox._private.shared.files import write_private
from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.shared.policy import load_policy

from .ledger.ledger import Ledger
from .listeners import bind_tcp, bind_unix, protocol_class
from .service import VaultService
from .tokens import ensure_client_token

__all__ = ["open_service", "serve", "ledger_target", "remember"]

log = logging.getLogger("sandbox.vault")
_LEDGER_THREADS = 8
_KEEP_ALIVE_S = 30  # longer than the client's keep-alive (20 s): the client always closes an idle connection first


def _config(layout: WorkspaceLayout) -> dict[str, Any]:
    try:
        data = json.loads(layout.config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember(layout: WorkspaceLayout, **values: Any) -> None:
    """Merge ``values`` into ``vault/config.json`` (mode 0600)."""
    write_private(layout.config, json.dumps({**_config(layout), **values}) + "\n")


def ledger_target(layout: WorkspaceLayout, ledger_url: str | None) -> str:
    """Pick the ledger: the URL given, else the one remembered in ``config.json``, else the SQLite file."""
    if ledger_url:
        remember(layout, ledger_url=ledger_url)
        return ledger_url
    remembered = _config(layout).get("ledger_url")
    return str(remembered) if remembered else str(layout.ledger)


def open_service(
    workspace: str | Path, *, policy: str | Path | None = None, ledger_url: str | None = None
) -> VaultService:
    """Open (creating if needed) the vault of ``workspace`` without serving it."""
    layout = WorkspaceLayout.create(workspace)
    service = VaultService(layout, Ledger(ledger_target(layout, ledger_url)), load_policy(policy))
    layout.secure()
    return service


def serve(
    workspace: str | Path,
    *,
    port: int | None = 0,
    socket_path: str | Path | None = None,
    policy: str | Path | None = None,
    ledger_url: str | None = None,
    extra_routers: Iterable[Any] = (),
) -> None:
    """Serve the vault of ``workspace`` until SIGTERM/SIGINT.

    Parameters
    ----------
    workspace : str or Path
        Workspace directory; the vault's files live in ``<workspace>/vault/``.
    port : int or None
        Loopback TCP port; 0 picks a free one (``vault.json`` names it); ``None``: no TCP listener (then
        ``socket_path`` is needed).
    socket_path : str or Path, optional
        A Unix socket to listen on as well (a deployment; see the operator guide for its folder).
    policy : str or Path, optional
        Policy YAML; the shipped ``policies/default.yaml`` by default.
    ledger_url : str, optional
        ``postgresql://...`` to keep the ledger in PostgreSQL instead of ``vault/ledger.sqlite``.
    extra_routers : iterable of fastapi.APIRouter
        Further routers mounted beside the vault's own (the gate's routes are always mounted).
    """
    import uvicorn

    from .http.app import create_app
    from .http.hotpath import QueryHotPath
    from .http.routes_gate import recover_on_startup
    from .workers.flow import ComputeService
    from .workers.pool import WorkerPool

    os.umask(0o077)
    if port is None and socket_path is None:
        raise ValueError("serve() needs a TCP port or a socket path")
    service = open_service(workspace, policy=policy, ledger_url=ledger_url)
    if socket_path is not None:
        remember(service.layout, socket=str(Path(socket_path).absolute()))
    ensure_client_token(service.tokens, service.layout.client_token)
    compute = ComputeService(service, WorkerPool(service.policy))
    app = create_app(service, extra_routers, compute=compute)
    recover_on_startup(app)  # the gate repairs its state after a crash before anything is served
    sockets, info = [], {"pid": os.getpid(), "uid": os.geteuid(), "policy_sha256": service.policy.sha256}
    group = None
    if port is not None:
        tcp = bind_tcp(port)
        sockets.append(tcp)
        actual = tcp.getsockname()[1]
        info.update(url=f"http://127.0.0.1:{actual}", port=actual, tcp_url=f"http://127.0.0.1:{actual}")
        app.state.page_url = info["tcp_url"]
    if socket_path is not None:
        unix = bind_unix(socket_path)
        sockets.append(unix)
        path = str(Path(socket_path).absolute())
        group = os.stat(Path(path).parent).st_gid
        info.update(url=f"unix:{path}", socket=path)
    config = uvicorn.Config(
        QueryHotPath(app),  # POST /v1/query without the framework's routing; everything else goes to the app
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=_KEEP_ALIVE_S,
        http=protocol_class(group),
        lifespan="off",
    )
    server = _Server(config)

    async def stopped() -> None:
        _retract(service.layout)
        await compute.close()
        if socket_path is not None:
            Path(socket_path).unlink(missing_ok=True)

    server.on_shutdown = stopped

    async def advertise() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        write_private(service.layout.discovery, json.dumps(info) + "\n")

    async def main() -> None:
        # Ledger transactions run in a few threads: writes serialise in the ledger anyway, and fewer threads fight
        # less over the GIL (64 threads cost about 1 ms more CPU per charge with 16 clients, under load).
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(_LEDGER_THREADS, "sandbox-ledger"))
        await compute.pool.start(wait=False)  # jobs queue until the workers are up
        task = asyncio.create_task(advertise())
        try:
            await server.serve(sockets=sockets)
        finally:
            task.cancel()

    import uvloop

    try:  # libuv's event loop: fewer CPU cycles per wake-up than asyncio's (sockets, worker pipes, ledger threads)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
    finally:
        _retract(service.layout)


def _server_class() -> type:
    import uvicorn

    class _StoppingServer(uvicorn.Server):
        """Retracts ``vault.json`` and stops the workers as soon as the server has shut down.

        uvicorn re-raises the captured SIGTERM after its graceful shutdown, so code after ``serve()`` never runs.
        """

        on_shutdown: Any = None

        async def shutdown(self, sockets: Any = None) -> None:
            await super().shutdown(sockets)
            if self.on_shutdown is not None:
                await self.on_shutdown()

    return _StoppingServer


def _Server(config: Any) -> Any:
    return _server_class()(config)


def _retract(layout: WorkspaceLayout) -> None:
    """Remove ``vault.json`` if it still names this process."""
    try:
        if json.loads(layout.discovery.read_text(encoding="utf-8")).get("pid") == os.getpid():
            layout.discovery.unlink()
    except (OSError, ValueError):
        pass
