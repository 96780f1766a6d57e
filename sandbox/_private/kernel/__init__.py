"""The analyst's and the reviewer's side: code that runs in a Jupyter kernel, a papermill run or the CLI client.

Rule of this room: it never imports ``sandbox._private.vault`` and never holds protected rows; it talks to the
vault only through :mod:`.transport` (``tests/test_layers.py`` enforces the import rule).
"""
