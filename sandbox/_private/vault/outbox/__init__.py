"""What left the vault: content-addressed release folders with manifests, the hash-chained journal, and verify.

Rule of this room: files are written whole or not at all, and every release is recorded in the journal.
"""
