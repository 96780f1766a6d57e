"""Reproducible performance runs against peers, side by side; ``python -m benchmarks`` runs them all."""
