"""Value objects and rules that both processes import: errors, schema, policy, queries, specs, wire format.

Rule of this room: it imports nothing from ``sandbox._private.kernel`` or ``sandbox._private.vault``
(``tests/test_layers.py`` enforces it). Nothing here touches protected rows or the network.
"""
