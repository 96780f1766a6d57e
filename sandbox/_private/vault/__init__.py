"""The vault process: the only code that reads protected rows, keeps the ledger and decides what leaves.

Rooms follow the data's path: :mod:`.http` (the door: app, auth, errors, routes, review page),
:mod:`.registry` and :mod:`.tokens` (who and what is known), :mod:`.dp` (rows to noisy numbers), :mod:`.ledger`
(what was spent), :mod:`.gate` (what may leave), :mod:`.outbox` (what left, and the hash-chained journal).
Rule of this room: it never imports ``sandbox._private.kernel`` (``tests/test_layers.py``).
"""
