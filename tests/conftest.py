"""Shared fixtures: a small protected population with public schemas, free ports, and real vault processes.

The population is tiny (about 2,000 households) and carries two markers that must never leave the vault: a
household with ``household_id`` :data:`MARKER_ID` and an income of :data:`MARKER_INCOME`. Both are inside the
public bounds, so nothing but a leak of rows could put them in a response.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.shared.schema import Column, TableSchema
from sandbox._private.vault.tokens import TokenStore

MARKER_ID = 987_654_321
MARKER_INCOME = 187_654.3219
N_HOUSEHOLDS = 2_000

HOUSEHOLD_TYPES = ("single", "couple", "couple_children", "single_parent", "other")
URBANISATION = ("very_strong", "strong", "moderate", "little", "none")
GENDERS = ("female", "male")


def _c(name: str, kind: str, **kw: Any) -> Column:
    return Column(name=name, kind=kind, label_nl=name, label_en=name, **kw)  # type: ignore[arg-type]


def households_schema() -> TableSchema:
    return TableSchema(
        name="households",
        label_nl="Huishoudens",
        label_en="Households",
        privacy_unit="household",
        unit_column="household_id",
        max_rows_per_unit=1,
        primary_key=("household_id",),
        columns=(
            _c("household_id", "id", lower=1, upper=1_000_000_000),
            _c("household_type", "category", categories=HOUSEHOLD_TYPES),
            _c("urbanisation", "category", categories=URBANISATION),
            _c("income", "float", lower=0.0, upper=200_000.0),
            _c("n_persons", "int", lower=1, upper=8),
            _c("arrears", "bool"),
        ),
    )


def persons_schema() -> TableSchema:
    return TableSchema(
        name="persons",
        label_nl="Personen",
        label_en="Persons",
        privacy_unit="household",
        unit_column="household_id",
        max_rows_per_unit=8,
        primary_key=("person_id",),
        columns=(
            _c("person_id", "id", lower=1, upper=1_000_000_000),
            _c("household_id", "id", lower=1, upper=1_000_000_000),
            _c("gender", "category", categories=GENDERS),
            _c("age", "int", lower=0, upper=110),
            _c("income", "float", lower=0.0, upper=200_000.0),
        ),
    )


def signals_schema() -> TableSchema:
    return TableSchema(
        name="signals",
        label_nl="Signalen",
        label_en="Signals",
        privacy_unit="household",
        unit_column="household_id",
        max_rows_per_unit=12,
        columns=(
            _c("household_id", "id", lower=1, upper=1_000_000_000),
            _c("month", "int", lower=1, upper=12),
            _c("arrears_energy", "bool"),
        ),
    )


def make_frames(n: int = N_HOUSEHOLDS, seed: int = 7) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    hh_id = np.arange(1, n + 1, dtype=np.int64) * 3
    hh_id[0] = MARKER_ID
    n_persons = rng.integers(1, 6, n)
    income = np.round(rng.gamma(2.0, 15_000.0, n).clip(0, 150_000), 2)
    income[0] = MARKER_INCOME
    hh = pd.DataFrame(
        {
            "household_id": hh_id,
            "household_type": rng.choice(HOUSEHOLD_TYPES, n),
            "urbanisation": rng.choice(URBANISATION[:4], n),  # 'none' stays empty: empty groups must appear
            "income": income,
            "n_persons": n_persons,
            "arrears": rng.random(n) < 0.2,
        }
    )
    pid = np.repeat(hh_id, n_persons)
    persons = pd.DataFrame(
        {
            "person_id": np.arange(1, len(pid) + 1, dtype=np.int64),
            "household_id": pid,
            "gender": rng.choice(GENDERS, len(pid)),
            "age": rng.integers(0, 100, len(pid)),
            "income": np.round(rng.gamma(1.5, 12_000.0, len(pid)).clip(0, 150_000), 2),
        }
    )
    m = min(n, 500)
    sig = pd.DataFrame(
        {
            "household_id": np.repeat(hh_id[:m], 3),
            "month": np.tile([1, 2, 3], m),
            "arrears_energy": rng.random(3 * m) < 0.1,
        }
    )
    return {"households": hh, "persons": persons, "signals": sig}


def write_small_population(out: Path, n: int = N_HOUSEHOLDS) -> Path:
    """Write the marker population in the generator's layout: <table>.parquet + schema/<table>.json."""
    (out / "schema").mkdir(parents=True, exist_ok=True)
    schemas = {"households": households_schema(), "persons": persons_schema(), "signals": signals_schema()}
    for name, df in make_frames(n).items():
        df.to_parquet(out / f"{name}.parquet", index=False)
        schemas[name].save(out / "schema" / f"{name}.json")
    return out


@pytest.fixture(scope="session")
def small_population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide small population directory (households, persons, signals + schemas)."""
    return write_small_population(tmp_path_factory.mktemp("population"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_policy(
    path: Path,
    limits: dict[str, int] | None = None,
    *,
    sections: dict[str, dict[str, Any]] | None = None,
    **budget: float,
) -> Path:
    """A policy file: the shipped defaults with ``budget`` (and ``limits``, and other ``sections``) overrides."""
    lines = ["version: 1", "name: test", "budget:"] + [f"  {k}: {v!r}" for k, v in budget.items()]
    if limits:
        lines += ["limits:"] + [f"  {k}: {v!r}" for k, v in limits.items()]
    for section, values in (sections or {}).items():
        lines += [f"{section}:"] + [f"  {k}: {v!r}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class VaultProcess:
    """A real ``sandbox vault serve`` child process on a free loopback port."""

    workspace: Path
    policy: Path | None = None
    ledger_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    #: Arguments before the CLI's (default: the installed CLI); e.g. a script that patches the vault first.
    launcher: tuple[str, ...] = ("-c", "from sandbox.cli import run; run()")

    @property
    def layout(self) -> WorkspaceLayout:
        return WorkspaceLayout.create(self.workspace)

    def token(self, role: str = "analyst", name: str | None = None) -> str:
        key = f"{role}:{name or role}"
        if key not in self.tokens:
            self.tokens[key] = TokenStore(self.layout.tokens).create(name or f"test-{role}", role)
        return self.tokens[key]

    def start(self, timeout: float = 60.0) -> VaultProcess:
        cmd = [
            sys.executable,
            *self.launcher,
            "vault",
            "serve",
            "--workspace",
            str(self.workspace),
            "--port",
            "0",
        ]
        if self.policy is not None:
            cmd += ["--policy", str(self.policy)]
        if self.ledger_url is not None:
            cmd += ["--ledger-url", self.ledger_url]
        with (self.workspace / "vault-test.log").open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.layout.read_discovery()
            if info is not None and info.get("pid") == self.proc.pid:
                self.url = str(info["url"])
                if httpx.get(self.url + "/v1/health", timeout=5).status_code == 200:
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"vault did not start: {(self.workspace / 'vault-test.log').read_text()[-3000:]}")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def client(self, role: str = "analyst", name: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token(role, name)}"}, timeout=120
        )


@pytest.fixture(scope="module")
def vault_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., VaultProcess]]:
    """Start vault processes for a test module; all are stopped when the module ends."""
    started: list[VaultProcess] = []

    def make(workspace: Path | None = None, **kw: Any) -> VaultProcess:
        ws = workspace or tmp_path_factory.mktemp("workspace")
        v = VaultProcess(ws, **kw)
        started.append(v)
        return v

    yield make
    for v in started:
        v.stop()


@pytest.fixture(scope="session")
def generated_population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small population from the real generator (3,000 households, fixed seed): households, persons, signals."""
    import synthetic

    out = tmp_path_factory.mktemp("generated") / "population"
    synthetic.write_population(out, 3_000, seed=20261129)
    return out


@pytest.fixture(scope="module")
def population_vault(vault_factory: Callable[..., VaultProcess], generated_population: Path) -> VaultProcess:
    """A running vault (default policy) with the generated population registered; ``.token(role)``, ``.url``."""
    v = vault_factory()
    register_population(v.workspace, generated_population)
    return v.start()


@pytest.fixture
def free_tcp_port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_port()


def register_population(workspace: Path, population: Path, policy: Path | None = None) -> None:
    """Register the population's tables in the workspace's vault (library call, no process)."""
    from sandbox._private.vault.server import open_service

    open_service(workspace, policy=policy).registry.add_population(population)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class PostgresServer:
    """A throw-away PostgreSQL cluster in a temp dir, on a free loopback port (trust auth, local only)."""

    base: Path
    port: int
    bin: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresServer:
        data = self.base / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        opts = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(data), "-o", opts, "-l", str(self.base / "pg.log"), "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.base / "data"), "-m", "fast", "-w", "stop")

    def fresh_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server started for the session (needs Debian's postgresql package: make sysdeps)."""
    import glob
    import shutil
    import tempfile

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed: run `make sysdeps` (Debian package postgresql).")
    base = Path(tempfile.mkdtemp(prefix="sandbox-pg-"))
    os.chmod(base, 0o755)
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    server = PostgresServer(base, free_port(), Path(found[-1]).parent).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
