"""A fitted model's DP quality figures, as the analyst holds them: held-out accuracy, AUC, calibration or RMSE.

The vault measures every fitted model on the households a public rule on the household id held out of the fit,
from noisy counts charged with the fit (see ``docs/analyst.md``). :class:`ModelQuality` is a read-only view of
that block of the model's answer; each figure is a :class:`Figure` with the sd of its DP noise beside it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .mime import RESULT_ATTR
from .results import thaw

__all__ = ["Figure", "CalibrationBin", "ModelQuality"]


@dataclass(frozen=True)
class Figure:
    """One DP figure and the standard deviation of its noise (``None`` where a noisy denominator was 0)."""

    value: float | None
    noise_sd: float | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Figure | None:
        if data is None:
            return None
        return cls(_num(data.get("value")), _num(data.get("noise_sd")))

    def format(self, digits: int = 3) -> str:
        """``0.812 ± 0.004`` (noise sd), or ``n/a``."""
        if self.value is None:
            return "n/a"
        sd = "" if self.noise_sd is None else f" ± {self.noise_sd:.{digits}f}"
        return f"{self.value:.{digits}f}{sd}"


@dataclass(frozen=True)
class CalibrationBin:
    """One bin of predicted probability: noisy size, mean predicted probability, observed positive rate."""

    lower: float
    upper: float
    n: float
    mean_predicted: float | None
    observed_rate: float | None


@dataclass(frozen=True)
class ModelQuality:
    """Quality of a fitted model on held-out households, from DP counts the fit's charge paid for.

    Attributes
    ----------
    model_id : str
        The model these figures belong to.
    epsilon : float
        The part of the fit's epsilon spent on them.
    n_heldout : Figure
        Noisy number of held-out rows measured.
    accuracy, auc, ece, rmse : Figure or None
        Accuracy at threshold 0.5 (classifiers), AUC of the binned ROC and expected calibration error (binary
        classifiers), RMSE (linear regression); ``None`` where the figure does not apply.
    auc_binning_bound : float or None
        The most the binned AUC can differ from the exact AUC of the same rows (ties within a bin).
    calibration : tuple of CalibrationBin
        Per bin of predicted probability (binary classifiers; empty otherwise).
    rule : str
        The public rule that picked the held-out households.
    """

    model_id: str
    epsilon: float
    n_heldout: Figure
    accuracy: Figure | None
    auc: Figure | None
    auc_binning_bound: float | None
    ece: Figure | None
    rmse: Figure | None
    calibration: tuple[CalibrationBin, ...]
    rule: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], model_id: str) -> ModelQuality:
        """Read the ``quality`` block of a model's answer (``format: sandbox.quality/1``)."""
        d = thaw(data)
        auc = d.get("auc")
        n = Figure.from_dict(d["n_heldout"])
        assert n is not None
        return cls(
            model_id=model_id,
            epsilon=float(d["epsilon"]),
            n_heldout=n,
            accuracy=Figure.from_dict(d.get("accuracy")),
            auc=Figure.from_dict(auc),
            auc_binning_bound=None if auc is None else _num(auc.get("binning_bound")),
            ece=Figure.from_dict(d.get("ece")),
            rmse=Figure.from_dict(d.get("rmse")),
            calibration=tuple(
                CalibrationBin(
                    float(b["lower"]),
                    float(b["upper"]),
                    float(b["n"]),
                    _num(b["mean_predicted"]),
                    _num(b["observed_rate"]),
                )
                for b in d.get("calibration", [])
            ),
            rule=str(d.get("split", {}).get("rule", "")),
        )

    def figures(self) -> list[tuple[str, str]]:
        """``(name, formatted value ± noise sd)`` of the figures that apply, in display order."""
        out = [("held-out rows (noisy)", self.n_heldout.format(0))]
        for name, fig in (("accuracy", self.accuracy), ("AUC", self.auc), ("calibration error", self.ece)):
            if fig is not None:
                text = fig.format()
                if name == "AUC" and self.auc_binning_bound is not None and fig.value is not None:
                    text += f" (binning ±{self.auc_binning_bound:.3f})"
                out.append((name, text))
        if self.rmse is not None:
            out.append(("RMSE", self.rmse.format(1)))
        return out

    def calibration_frame(self) -> pd.DataFrame:
        """Return the calibration table as a DataFrame (one row per bin), marked as a vault result (save guard)."""
        frame = pd.DataFrame(
            [(b.lower, b.upper, b.n, b.mean_predicted, b.observed_rate) for b in self.calibration],
            columns=["lower", "upper", "n", "mean_predicted", "observed_rate"],
        )
        frame.attrs[RESULT_ATTR] = self._sandbox_payload_()
        return frame

    def _sandbox_payload_(self) -> dict[str, Any]:
        return {"kind": "model-quality", "id": self.model_id, "epsilon": self.epsilon}

    def __repr__(self) -> str:
        figs = ", ".join(f"{k} {v}" for k, v in self.figures())
        return f"ModelQuality({figs}; ε={self.epsilon:g}, model {self.model_id})"

    def html_rows(self) -> str:
        """Table rows (``<tr>``) of the figures, for the model card."""
        esc = html.escape
        return "".join(
            f"<tr><th style='text-align:left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in self.figures()
        )

    def calibration_html(self) -> str:
        """Return the calibration table as HTML, or an empty string when there is none."""
        if not self.calibration:
            return ""

        def cell(x: float | None) -> str:
            return "–" if x is None else f"{x:.2f}"

        body = "".join(
            f"<tr><td>{b.lower:.1f}–{b.upper:.1f}</td><td>{b.n:.0f}</td><td>{cell(b.mean_predicted)}</td>"
            f"<td>{cell(b.observed_rate)}</td></tr>"
            for b in self.calibration
        )
        return (
            "<table><thead><tr><th>predicted</th><th>n (noisy)</th><th>mean predicted</th><th>observed rate</th>"
            f"</tr></thead><tbody>{body}</tbody></table>"
        )

    def _repr_html_(self) -> str:
        return (
            f"<p><b>DP quality</b> on held-out households (ε = {self.epsilon:g}, ± noise sd)</p>"
            f"<table>{self.html_rows()}</table>{self.calibration_html()}"
            f"<p style='font-size:smaller'>{html.escape(self.rule)}</p>"
        )


def _num(x: Any) -> float | None:
    return None if x is None else float(x)
