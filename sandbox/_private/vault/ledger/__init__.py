"""The privacy ledger: registered datasets, budgets, and every charged answer, on SQLite or PostgreSQL.

Rule of this room: every charge is durable before its answer is returned; nothing here computes on rows.
"""
