"""The vault: the process that holds protected rows, the ledger and the DP engine (DESIGN, "The boundary")."""
