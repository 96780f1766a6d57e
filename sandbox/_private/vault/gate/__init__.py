"""The release gate: what may leave, checked item by item, and the review workflow that decides it.

- :mod:`.checks` – provenance, SDC, fairness and budget checks of a release request;
- :mod:`.sdc` – ACRO-style statistical disclosure control on the private cell statistics of a table;
- :mod:`.workflow` – the review state machine, a table of allowed transitions with an owner per action;
- :mod:`.requests` – requests stored in the ledger database, tying checks, workflow, journal and outbox together;
- :mod:`.names` – sanitising names that end up on disk or in front of reviewers.

Rule of this room: it decides on ledger records only (never on objects a client sends), and writes only through
:mod:`sandbox._private.vault.outbox`.
"""
