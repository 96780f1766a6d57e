"""Run the vault: open the workspace, ledger and policy, serve HTTP on 127.0.0.1, advertise in ``vault.json``.

``vault.json`` (url, pid, port, policy sha256) is written only once the socket listens, and removed on a clean
shutdown (SIGTERM or SIGINT, handled by uvicorn). A ``--ledger-url`` is remembered in ``vault/config.json``
(mode 0600) so that ``sandbox dataset add`` on the same workspace writes to the same ledger.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sandbox._private.shared.errors import OutputPathError
from sandbox._private.shared.files import write_private
from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.shared.policy import load_policy

from .ledger.ledger import Ledger
from .service import VaultService
from .tokens import ensure_client_token

__all__ = ["open_service", "serve", "ledger_target"]

log = logging.getLogger("sandbox.vault")


def ledger_target(layout: WorkspaceLayout, ledger_url: str | None) -> str:
    """Pick the ledger: the URL given, else the one remembered in ``config.json``, else the SQLite file."""
    config = layout.config
    if ledger_url:
        write_private(config, json.dumps({"ledger_url": ledger_url}) + "\n")
        return ledger_url
    try:
        remembered = json.loads(config.read_text(encoding="utf-8")).get("ledger_url")
    except (OSError, ValueError):
        remembered = None
    return str(remembered) if remembered else str(layout.ledger)


def open_service(
    workspace: str | Path, *, policy: str | Path | None = None, ledger_url: str | None = None
) -> VaultService:
    """Open (creating if needed) the vault of ``workspace`` without serving it."""
    layout = WorkspaceLayout.create(workspace)
    return VaultService(layout, Ledger(ledger_target(layout, ledger_url)), load_policy(policy))


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise OutputPathError(
            f"Cannot listen on 127.0.0.1:{port}: {exc.strerror}. Use --port 0 for a free port."
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    workspace: str | Path,
    *,
    port: int = 0,
    policy: str | Path | None = None,
    ledger_url: str | None = None,
    extra_routers: Iterable[Any] = (),
) -> None:
    """Serve the vault of ``workspace`` on 127.0.0.1 until SIGTERM/SIGINT.

    Parameters
    ----------
    workspace : str or Path
        Workspace directory; the vault's files live in ``<workspace>/vault/``.
    port : int
        TCP port; 0 picks a free one (see ``vault.json`` for the one chosen).
    policy : str or Path, optional
        Policy YAML; the shipped ``policies/default.yaml`` by default.
    ledger_url : str, optional
        ``postgresql://...`` to keep the ledger in PostgreSQL instead of ``vault/ledger.sqlite``.
    extra_routers : iterable of fastapi.APIRouter
        Further routers mounted beside the vault's own (the gate's routes are always mounted).
    """
    import uvicorn

    from .http.app import create_app
    from .http.routes_gate import recover_on_startup

    service = open_service(workspace, policy=policy, ledger_url=ledger_url)
    ensure_client_token(service.tokens, service.layout.client_token)
    app = create_app(service, extra_routers)
    recover_on_startup(app)  # the gate repairs its state after a crash before anything is served
    sock = _bind(port)
    actual = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=10)
    server = _Server(config)
    server.on_shutdown = lambda: _retract(service.layout)
    info = {
        "url": f"http://127.0.0.1:{actual}",
        "port": actual,
        "pid": os.getpid(),
        "policy_sha256": service.policy.sha256,
    }

    async def advertise() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.02)
        write_private(service.layout.discovery, json.dumps(info) + "\n")

    async def main() -> None:
        task = asyncio.create_task(advertise())
        try:
            await server.serve(sockets=[sock])
        finally:
            task.cancel()

    try:
        asyncio.run(main())
    finally:
        _retract(service.layout)


def _server_class() -> type:
    import uvicorn

    class _RetractingServer(uvicorn.Server):
        """Retracts ``vault.json`` as soon as the server has shut down.

        uvicorn re-raises the captured SIGTERM after its graceful shutdown, so code after ``serve()`` never runs.
        """

        on_shutdown: Any = None

        async def shutdown(self, sockets: Any = None) -> None:
            await super().shutdown(sockets)
            if self.on_shutdown is not None:
                self.on_shutdown()

    return _RetractingServer


def _Server(config: Any) -> Any:
    return _server_class()(config)


def _retract(layout: WorkspaceLayout) -> None:
    """Remove ``vault.json`` if it still names this process."""
    try:
        if json.loads(layout.discovery.read_text(encoding="utf-8")).get("pid") == os.getpid():
            layout.discovery.unlink()
    except (OSError, ValueError):
        pass
