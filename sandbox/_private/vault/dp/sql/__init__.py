"""The exact part of the DP engine as SQL: one plan compiled for an embedded engine (DuckDB) or a cluster (Spark).

``compile`` turns a checked query on a linked relation into SQL text for a :class:`~.dialect.Dialect`;
``duck`` and ``spark`` run it where the vault's Parquet lives and return exact per-cell statistics; ``checks``
validates a table against its public schema and measures its layout. Noise, the ledger and keys never pass through
here: what leaves these modules are exact numbers that stay in the vault until the engine adds noise.
"""
