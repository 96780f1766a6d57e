"""The release gate's building blocks: disclosure checks, review workflow, audit log, outbox and verify.

Each module is one concept:

- :mod:`.sdc` – ACRO-style statistical disclosure control on the private cell statistics of a table;
- :mod:`.workflow` – the review state machine, a table of allowed transitions with an owner per action;
- :mod:`.auditlog` – the append-only, hash-chained audit log (JSON lines) and its crash recovery;
- :mod:`.outbox` – atomic, content-addressed release folders with a manifest, and their recovery;
- :mod:`.verify` – recompute the chain and the outbox hashes and name the first broken link;
- :mod:`.gate` – provenance, SDC, fairness and budget checks of a release request;
- :mod:`.service` – requests stored in the ledger database, tying gate, workflow, log and outbox together;
- :mod:`.routes` and :mod:`.review_page` – the vault's HTTP endpoints and the reviewer web page;
- :mod:`.client` – ``ws.release`` on the analyst's side; :mod:`.render`, :mod:`.release_files`,
  :mod:`.names`, :mod:`.verdict` – small helpers.
"""
