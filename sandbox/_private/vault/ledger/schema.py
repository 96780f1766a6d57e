"""The ledger's tables (schema 2: one budget per population, charges reserved before computing) and its version.

Tables::

    ledger_meta        key/value: schema_version = 2
    populations        one budget per population, with its running totals of ε and δ spent
    datasets           every registered version of every table, and the population it belongs to
    charges            every stored answer with its charge (immutable once written)
    reservations       charges without a stored answer: 'pending' (being computed) or 'failed' (kept)
    analyst_spend      running ε per analyst and population (for ``budget.epsilon_per_analyst``)
    journal_pending    charges written to the ledger whose journal entry may not be written yet
    gate_logged_charges  charges already in the journal (shared with the gate's ``sync_charges``)

Schema 1 (until round 2) had no populations: each dataset version had its own budget, summed over ``charges``
on every charge. :func:`ensure_schema` refuses such a ledger with an error naming ``sandbox ledger migrate``
(:mod:`.migrate`), which keeps every charge.
"""

from __future__ import annotations

from sandbox._private.shared.errors import SandboxError

from .db import LedgerDB, Tx

__all__ = [
    "SCHEMA_VERSION",
    "LedgerSchemaError",
    "ensure_schema",
    "schema_version",
    "table_names",
    "DDL",
    "PG_RESERVE",
    "PG_RESERVE_MANY",
    "PG_FINALISE_MANY",
    "PG_FUNCTIONS",
    "migrate_hint",
]

SCHEMA_VERSION = 2

DDL: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS populations (
        name TEXT PRIMARY KEY, privacy_unit TEXT NOT NULL, epsilon_budget DOUBLE PRECISION NOT NULL,
        delta_budget DOUBLE PRECISION NOT NULL, epsilon_spent DOUBLE PRECISION NOT NULL DEFAULT 0,
        delta_spent DOUBLE PRECISION NOT NULL DEFAULT 0, created TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS datasets (
        name TEXT NOT NULL, version INTEGER NOT NULL, files_sha256 TEXT NOT NULL, schema_sha256 TEXT NOT NULL,
        schema_json TEXT NOT NULL, path TEXT NOT NULL, epsilon_budget DOUBLE PRECISION NOT NULL,
        delta_budget DOUBLE PRECISION NOT NULL, created TEXT NOT NULL,
        population TEXT NOT NULL REFERENCES populations (name), PRIMARY KEY (name, version))""",
    """CREATE TABLE IF NOT EXISTS charges (
        id TEXT PRIMARY KEY, dataset TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL,
        query_key TEXT NOT NULL, query_json TEXT NOT NULL, epsilon DOUBLE PRECISION NOT NULL,
        delta DOUBLE PRECISION NOT NULL, mechanism TEXT NOT NULL, public_json TEXT NOT NULL,
        result_sha256 TEXT NOT NULL, private_json TEXT NOT NULL, analyst TEXT NOT NULL, run_id TEXT,
        created TEXT NOT NULL, UNIQUE (dataset, version, query_key),
        FOREIGN KEY (dataset, version) REFERENCES datasets (name, version))""",
    """CREATE TABLE IF NOT EXISTS reservations (
        id TEXT PRIMARY KEY, population TEXT NOT NULL, dataset TEXT NOT NULL, version INTEGER NOT NULL,
        kind TEXT NOT NULL, query_key TEXT NOT NULL, query_json TEXT NOT NULL, epsilon DOUBLE PRECISION NOT NULL,
        delta DOUBLE PRECISION NOT NULL, analyst TEXT NOT NULL, run_id TEXT, state TEXT NOT NULL,
        owner TEXT NOT NULL, reason TEXT, created TEXT NOT NULL, finished TEXT,
        FOREIGN KEY (dataset, version) REFERENCES datasets (name, version))""",
    # one computation per question at a time: an identical query waits for it (or is told to retry)
    """CREATE UNIQUE INDEX IF NOT EXISTS reservations_one_pending ON reservations (dataset, version, query_key)
        WHERE state = 'pending'""",
    """CREATE TABLE IF NOT EXISTS analyst_spend (
        population TEXT NOT NULL, analyst TEXT NOT NULL, epsilon_spent DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (population, analyst))""",
    "CREATE TABLE IF NOT EXISTS journal_pending (id TEXT PRIMARY KEY, owner TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS gate_logged_charges (id TEXT PRIMARY KEY)",
)


#: PostgreSQL: the reservation as one server-side call, so the population's row lock is held from its UPDATE to
#: the COMMIT queued behind it, never across a round trip to the vault. Same steps as the SQLite path of
#: ``Ledger.reserve``: stored answer? pending row (the unique index refuses a twin), analyst's total, population's.
PG_RESERVE = """CREATE OR REPLACE FUNCTION sandbox_ledger_reserve(
    p_id text, p_population text, p_dataset text, p_version integer, p_kind text, p_query_key text,
    p_query_json text, p_epsilon double precision, p_delta double precision, p_analyst text, p_run_id text,
    p_owner text, p_created text, p_limit double precision, p_tol double precision, p_dtol double precision)
RETURNS TABLE (outcome text, remaining double precision) LANGUAGE plpgsql AS $$
DECLARE
    within boolean := false;
BEGIN
    PERFORM 1 FROM charges WHERE dataset = p_dataset AND version = p_version AND query_key = p_query_key;
    IF FOUND THEN
        outcome := 'answered'; RETURN NEXT; RETURN;
    END IF;
    INSERT INTO reservations (id, population, dataset, version, kind, query_key, query_json, epsilon, delta,
        analyst, run_id, state, owner, reason, created, finished)
    VALUES (p_id, p_population, p_dataset, p_version, p_kind, p_query_key, p_query_json, p_epsilon, p_delta,
        p_analyst, p_run_id, 'pending', p_owner, NULL, p_created, NULL);
    IF p_limit IS NULL OR p_epsilon <= p_limit + p_tol THEN
        INSERT INTO analyst_spend AS a (population, analyst, epsilon_spent) VALUES (p_population, p_analyst, p_epsilon)
        ON CONFLICT (population, analyst) DO UPDATE SET epsilon_spent = a.epsilon_spent + excluded.epsilon_spent
        WHERE p_limit IS NULL OR a.epsilon_spent + excluded.epsilon_spent <= p_limit + p_tol;
        within := FOUND;
    END IF;
    IF NOT within THEN
        RAISE EXCEPTION 'sandbox:analyst';
    END IF;
    UPDATE populations SET epsilon_spent = epsilon_spent + p_epsilon, delta_spent = delta_spent + p_delta
    WHERE name = p_population AND epsilon_spent + p_epsilon <= epsilon_budget + p_tol
        AND delta_spent + p_delta <= delta_budget + p_dtol
    RETURNING epsilon_budget - epsilon_spent INTO remaining;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sandbox:population';
    END IF;
    outcome := 'reserved'; RETURN NEXT;
END $$"""


#: PostgreSQL: the reservations of one batch as one statement on its own (no BEGIN or COMMIT around it: the call is
#: its own transaction, committed without waiting for the WAL flush, as ``Ledger.reserve`` commits). Each is
#: ``sandbox_ledger_reserve``, in order; a refusal raises and rolls back the whole call (the vault then reserves
#: each on its own). ``p_rows``: a JSON array of the pending rows (``reservations``' columns, and each one's
#: ``analyst_limit``); ``p_drain``: a JSON array of the ids whose ``journal_pending`` rows are done with (see
#: ``JournalledCharges``). The batch travels as JSON because psycopg escapes every element of a text array in
#: Python: 0.22 ms for a batch of 4 answers, against 0.012 ms for ``json.dumps``.
PG_RESERVE_MANY = """CREATE OR REPLACE FUNCTION sandbox_ledger_reserve_many(
    p_rows json, p_drain json, p_tol double precision, p_dtol double precision)
RETURNS TABLE (outcome text, remaining double precision) LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    IF json_array_length(p_drain) > 0 THEN
        DELETE FROM journal_pending WHERE id = ANY (ARRAY(SELECT json_array_elements_text(p_drain)));
    END IF;
    FOR r IN SELECT * FROM json_to_recordset(p_rows) AS x (id text, population text, dataset text, version integer,
        kind text, query_key text, query_json text, epsilon double precision, delta double precision, analyst text,
        run_id text, owner text, created text, analyst_limit double precision)
    LOOP
        RETURN QUERY SELECT * FROM sandbox_ledger_reserve(r.id, r.population, r.dataset, r.version, r.kind,
            r.query_key, r.query_json, r.epsilon, r.delta, r.analyst, r.run_id, r.owner, r.created, r.analyst_limit,
            p_tol, p_dtol);
    END LOOP;
END $$"""

#: PostgreSQL: the answers of one batch stored as one statement on its own (its own transaction, committed durably:
#: waiting for the WAL flush, which also makes the batch's reservations durable). Same steps as the SQLite path of
#: ``Ledger.finalise_many``: the pending rows leave ``reservations`` (if one is no longer pending the call raises
#: and rolls back whole: the vault then finalises each on its own), the answers go into ``charges`` and, with a
#: journal, their ids into ``journal_pending`` and ``gate_logged_charges``. ``p_rows``: a JSON array of the
#: answers (``charges``' columns, and each one's ``owner``); ``p_drain`` as above. Returns each population's
#: remaining ε.
PG_FINALISE_MANY = """CREATE OR REPLACE FUNCTION sandbox_ledger_finalise_many(
    p_rows json, p_journal boolean, p_drain json)
RETURNS TABLE (pop_name text, pop_left double precision) LANGUAGE plpgsql AS $$
DECLARE
    ids text[] := ARRAY(SELECT x.id FROM json_to_recordset(p_rows) AS x (id text));
    taken integer;
    pops text[];
BEGIN
    IF json_array_length(p_drain) > 0 THEN
        DELETE FROM journal_pending WHERE id = ANY (ARRAY(SELECT json_array_elements_text(p_drain)));
    END IF;
    WITH gone AS (DELETE FROM reservations WHERE id = ANY (ids) AND state = 'pending' RETURNING population)
    SELECT count(*), array_agg(DISTINCT gone.population) INTO taken, pops FROM gone;
    IF taken <> cardinality(ids) THEN
        RAISE EXCEPTION 'sandbox:not_pending';
    END IF;
    INSERT INTO charges SELECT * FROM json_populate_recordset(NULL::charges, p_rows);
    IF p_journal THEN
        INSERT INTO journal_pending (id, owner) SELECT x.id, x.owner FROM json_to_recordset(p_rows) AS x (id text,
            owner text);
        INSERT INTO gate_logged_charges (id) SELECT unnest(ids);
    END IF;
    RETURN QUERY SELECT name, epsilon_budget - epsilon_spent FROM populations WHERE name = ANY (pops);
END $$"""

#: The server-side functions of a PostgreSQL ledger, created with its tables; :func:`ensure_schema` creates (or
#: replaces) each one an existing ledger lacks or has in another version, at each start.
PG_FUNCTIONS = (PG_RESERVE, PG_RESERVE_MANY, PG_FINALISE_MANY)


def _function_parts(sql: str) -> tuple[str, str]:
    """Return the name and the body (the text between the ``$$``) of one of :data:`PG_FUNCTIONS`."""
    name = sql.split("FUNCTION ", 1)[1].split("(", 1)[0].strip()
    return name, sql.split("$$")[1]


#: Indexes that earlier sandboxes of this schema created and :func:`ensure_schema` drops. ``charges_by_analyst`` on
#: ``(dataset, version, analyst)`` served no query since the analyst's running total moved to ``analyst_spend``, and
#: PostgreSQL, before its statistics knew the table's size, looked a question's stored answer up through it: every
#: reservation then read all answers of the dataset version (5,000 answers: 2 ms instead of 0.02 ms).
_DROPPED_INDEXES = ("charges_by_analyst",)


def _has_index(tx: Tx, name: str) -> bool:
    if tx.backend == "sqlite":
        return bool(tx.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)))
    return bool(tx.execute("SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND indexname = ?", (name,)))


class LedgerSchemaError(SandboxError):
    """The ledger database has another schema than this sandbox writes; the message names the migration."""


def migrate_hint(db: LedgerDB) -> str:
    """Return the command that migrates this ledger."""
    if db.backend == "sqlite":
        from pathlib import Path

        workspace = Path(db.url).resolve().parent.parent
        return f"`sandbox ledger migrate --workspace {workspace}`"
    return "`sandbox ledger migrate --workspace WORKSPACE --ledger-url URL`"


def table_names(tx: Tx) -> set[str]:
    """Names of the tables in the ledger database."""
    if tx.backend == "sqlite":
        rows = tx.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = tx.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
    return {str(r[0]) for r in rows}


def schema_version(tx: Tx) -> int | None:
    """Return the schema version of the database: ``None`` for an empty one, 1 for a ledger from before populations."""
    tables = table_names(tx)
    if "ledger_meta" in tables:
        row = tx.one("SELECT value FROM ledger_meta WHERE key = 'schema_version'")
        return int(row[0]) if row else None
    return 1 if "datasets" in tables else None


def ensure_schema(db: LedgerDB) -> None:
    """Create the tables of an empty ledger; refuse a ledger of another schema with the fix.

    A ledger of this schema made by an earlier sandbox is brought up to date: the PostgreSQL functions it lacks, or
    has in another version, are created, and the indexes of :data:`_DROPPED_INDEXES` dropped.

    Raises
    ------
    LedgerSchemaError
        The ledger was written by an older sandbox (schema 1: a budget per table version) or a newer one.
    """
    with db.transaction(write=False) as tx:
        version = schema_version(tx)
        stale: list[tuple[str, str]] = []  # (name, its CREATE statement)
        if tx.backend == "postgresql":
            wanted = {_function_parts(sql): sql for sql in PG_FUNCTIONS}
            bodies = dict(
                tx.execute(
                    "SELECT proname, prosrc FROM pg_proc WHERE pronamespace = current_schema()::regnamespace "
                    "AND proname = ANY (?)",
                    ([name for name, _ in wanted],),
                )
            )
            stale = [(name, sql) for (name, body), sql in wanted.items() if bodies.get(name) != body]
        dropped = [name for name in _DROPPED_INDEXES if _has_index(tx, name)]
    if version == SCHEMA_VERSION:
        if stale or dropped:  # a ledger made by an earlier sandbox of this schema: bring it up to date
            with db.transaction() as tx:
                for name in dropped:
                    tx.execute(f"DROP INDEX IF EXISTS {name}")
                for name, function in stale:  # another version may take other arguments: replace, never overload
                    tx.execute(f"DROP FUNCTION IF EXISTS {name}")
                    tx.execute(function)
        return
    if version is not None and version < SCHEMA_VERSION:
        raise LedgerSchemaError(
            f"The ledger {db!r} was written by an older sandbox (schema {version}: a budget per table version, "
            f"while this sandbox keeps one budget per population). Migrate it with {migrate_hint(db)}: the "
            "migration keeps every charge and puts the tables of one population under one budget; "
            "`--dry-run` shows what it would do. Back the ledger up first."
        )
    if version is not None:
        raise LedgerSchemaError(
            f"The ledger {db!r} has schema {version}, newer than this sandbox's {SCHEMA_VERSION}; "
            "upgrade the sandbox to use it."
        )
    with db.transaction() as tx:
        if schema_version(tx) is None:  # another process may have created it meanwhile
            for stmt in DDL:
                tx.execute(stmt)
            if tx.backend == "postgresql":
                for function in PG_FUNCTIONS:
                    tx.execute(function)
            tx.execute("INSERT INTO ledger_meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
