"""The privacy ledger: populations and their one budget, registered tables, and every charge, on SQLite or PostgreSQL.

Rule of this room: a charge is reserved (and counts as spent) before its computation, and its answer is durable
before it is returned; nothing here computes on rows and no lock is held while the caller computes.
"""
