"""How the demo shows things: paths as typed from here, the ``sandbox`` command, gate reasons and margins."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["shown_path", "sandbox_command", "reason_lines", "describe_margin", "independence_label"]


def shown_path(path: Path) -> str:
    """``path`` relative to the current folder when it lies inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def sandbox_command() -> tuple[str, str | None]:
    """How to call the ``sandbox`` of this environment from here, and a hint when it is not on PATH."""
    exe = Path(sys.executable).parent / "sandbox"
    found = shutil.which("sandbox")
    if found and Path(found).resolve() == exe.resolve():
        return "sandbox", None
    shown = shown_path(exe)
    activate = shown_path(exe.parent / "activate")
    return shown, f"`sandbox` is not on your PATH here: the commands call {shown} (or run `source {activate}` first)"


def _bullets(text: str, indent: str) -> list[str]:
    """Split a gate reason that lists several findings (``;``-separated) into one line per finding."""
    parts = [p.strip() for p in text.split("; ")]
    if len(parts) < 3:
        parts = [text]
    return [f"{indent}- {parts[0]}", *(f"{indent}  {p}" for p in parts[1:])]


def reason_lines(reasons: Sequence[str], indent: str, where: str, limit: int = 14) -> list[str]:
    """Format at most ``limit`` lines of reasons; count the rest and say where to read them all."""
    lines: list[str] = []
    shown, cut = 0, 0
    for reason in reasons:
        more = _bullets(reason, indent)
        if len(more) > limit // 2:  # one reason of many findings: its first ones, and how many more
            cut += len(more) - limit // 2
            more = more[: limit // 2]
        if lines and len(lines) + len(more) > limit:
            break
        lines += more
        shown += 1
    if shown < len(reasons) or cut:
        left = f"{len(reasons) - shown} more reason(s)" if shown < len(reasons) else f"{cut} more finding(s)"
        lines.append(f"{indent}... and {left}: all of them are in {where}")
    return lines


def describe_margin(audit: Any) -> str:
    """Describe the largest significant decisive disparity between groups against its fail threshold.

    A disparity decides a verdict only when its interval (which includes the DP noise) excludes 0; its margin is
    how far it lies below the policy's fail threshold.
    """
    try:
        d = audit.disparities
        d = d[(d["reference"] == "between_groups") & d["decisive"].astype(bool)]
        significant = d[d["difference_low"].astype(float) > 0]
        if significant.empty:
            return "no decisive gap between groups is significant (every interval includes 0)"
        worst = significant.sort_values("difference", ascending=False).iloc[0]
        fail, gap = float(worst["fail_threshold"]), float(worst["difference"])
        return (
            f"largest significant gap: {str(worst['metric']).replace('_', ' ')} for {worst['attribute']} {gap:.3f} "
            f"(interval {float(worst['difference_low']):.3f} to {float(worst['difference_high']):.3f}); fail "
            f"threshold {fail:g}, margin {fail - gap:+.3f}"
        )
    except (KeyError, AttributeError, TypeError, ValueError, IndexError):  # another audit layout: say so
        return "its largest gap is not available from this audit"


def independence_label(review: Mapping[str, Any]) -> str | None:
    """Return the manifest's own review-independence label, where the vault writes one."""
    for key in ("independence", "review_independence"):
        value = review.get(key)
        if isinstance(value, Mapping) and value.get("label"):
            return str(value["label"])
        if isinstance(value, str) and value:
            return value
    return None
