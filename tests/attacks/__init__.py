"""The adversarial suite: one module per attack; see SECURITY.md."""
