"""Internals of the fairness audit: one concept per module (inputs, counts, metrics, bootstrap, verdict...)."""
