"""The release gate: what may leave, checked item by item, and the review workflow that decides it.

- :mod:`.checks` – provenance, SDC, fairness and budget checks of a release request;
- :mod:`.dp_sdc` – the analyst's side of disclosure control: the rules on DP values only (released noisy counts,
  or a DP disclosure test charged in the ledger);
- :mod:`.sdc` – ACRO-style statistical disclosure control on the private cell statistics of a table (exact);
- :mod:`.findings` – the exact findings for reviewers only (``reviewer_findings``; its shape is documented there);
- :mod:`.limits` – the daily cap of requests per analyst and dataset, and the flags of repeated blocked requests;
- :mod:`.workflow` – the review state machine, a table of allowed transitions with an owner per action;
- :mod:`.requests` – requests stored in the ledger database, tying checks, workflow, journal and outbox together;
- :mod:`.names` – sanitising names that end up on disk or in front of reviewers.

Rules of this room: it decides on ledger records only (never on objects a client sends), tells the analyst only
what public facts and DP values show (DESIGN invariant 10), and writes only through
:mod:`sandbox._private.vault.outbox`.
"""
