"""``<workspace>/demo.json``: the population a demo belongs to, and what it did with it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sandbox._private.shared.canonical import sha256_file
from sandbox._private.shared.files import write_private

from .plan import DEMO_STATE

__all__ = ["DemoState", "fingerprint"]

_STATE_FORMAT = "sandbox.demo/2"


@dataclass
class DemoState:
    """``<workspace>/demo.json``: the population it belongs to, and what the demo did with it."""

    fingerprint: dict[str, Any]
    registered: list[str] = field(default_factory=list)
    attempts: dict[str, dict[str, str]] = field(default_factory=dict)
    release_id: str | None = None
    reviewers: list[str] = field(default_factory=list)
    finished: str | None = None

    @classmethod
    def load(cls, root: Path, fingerprint: dict[str, Any]) -> tuple[DemoState, bool]:
        """Return the state of this population, and whether an earlier demo's (another population) was set aside."""
        try:
            data = json.loads((root / DEMO_STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls(fingerprint), False
        if not isinstance(data, dict) or data.get("format") != _STATE_FORMAT or data.get("fingerprint") != fingerprint:
            return cls(fingerprint), True
        return (
            cls(
                fingerprint,
                list(data.get("registered") or []),
                dict(data.get("attempts") or {}),
                data.get("release_id"),
                list(data.get("reviewers") or []),
                data.get("finished"),
            ),
            False,
        )

    def save(self, root: Path) -> None:
        doc = {"format": _STATE_FORMAT, **asdict(self)}
        write_private(root / DEMO_STATE, json.dumps(doc, indent=2) + "\n")


def fingerprint(population: Path, households: int, seed: int, scenario: str) -> dict[str, Any]:
    return {
        "households": households,
        "seed": seed,
        "scenario": scenario,
        "manifest_sha256": sha256_file(population / "manifest.json"),
    }
