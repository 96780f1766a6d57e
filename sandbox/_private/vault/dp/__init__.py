"""From protected rows to noisy numbers: table data, exact aggregates, noise mechanisms, DP models, the audit.

Rule of this room: it never touches the ledger; what leaves it is a DP answer (``public``) and the exact
disclosure facts (``private``) that only the gate and reviewers read.
"""
