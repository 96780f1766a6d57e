"""The model card and the DP table of the review page: what a released item is, in words and rounded numbers.

A model is shown as a card (estimator, target, features, ε, classes, the largest coefficients, dataset version,
author, mechanism, run), never as its JSON; a table item as its DP rows with the noise they carry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .review_format import count, epsilon, is_number, number, significant
from .review_html import Raw, facts, sub, table, tag
from .review_i18n import Labels, t, t_or

__all__ = ["model_card", "aggregate_table", "top_coefficients", "TOP_COEFFICIENTS", "MAX_TABLE_ROWS"]

#: Coefficients shown on the model card, largest first.
TOP_COEFFICIENTS = 8
#: Rows of a DP table shown on the page (the outbox holds them all).
MAX_TABLE_ROWS = 60


def _flat(values: Any) -> list[float]:
    """Return the first row of a coefficient matrix (binary models keep one row), or the vector itself."""
    if isinstance(values, list) and values and isinstance(values[0], list):
        values = values[0]
    if not isinstance(values, list):
        return []
    return [float(v) if is_number(v) else math.nan for v in values]


def top_coefficients(model: Mapping[str, Any], n: int = TOP_COEFFICIENTS) -> list[tuple[str, float]]:
    """Return the ``n`` coefficients of largest magnitude as ``(input name, value)``, largest first."""
    params = model.get("params") or {}
    coef = _flat(params.get("coef") if isinstance(params, Mapping) else None)
    names = [str(x) for x in model.get("feature_names") or []]
    if len(names) != len(coef):
        names = [f"x{i}" for i in range(len(coef))]
    pairs = [(name, c) for name, c in zip(names, coef, strict=True) if math.isfinite(c)]
    return sorted(pairs, key=lambda p: -abs(p[1]))[:n]


def _classes(model: Mapping[str, Any], lang: str) -> str:
    classes = model.get("classes")
    if not isinstance(classes, list) or not classes:
        return ""

    def word(c: object) -> str:
        if isinstance(c, bool):
            return t("yes" if c else "no", lang)
        return str(c)

    text = " / ".join(word(c) for c in classes)
    if len(classes) == 2:
        text += f" ({t('positive', lang)}: {word(classes[1])})"
    return text


def model_card(
    model: Mapping[str, Any], ledger: Mapping[str, Any], author: str, labels: Labels, *, item_id: str
) -> Raw:
    """Render a fitted model's card from its public values and ledger entry."""
    lang = labels.lang
    spec = sub(model, "spec")
    estimator = str(model.get("estimator") or spec.get("estimator") or "?")
    target = str(model.get("target") or spec.get("target") or "")
    features = [str(f) for f in spec.get("features") or []]
    params = sub(model, "params")
    intercept = _flat(params.get("intercept")) if params else []
    top = top_coefficients(model)
    total = len(_flat(params.get("coef"))) if params else 0
    eps = model.get("epsilon", ledger.get("epsilon"))
    delta = model.get("delta", ledger.get("delta"))
    privacy = f"ε {epsilon(eps, lang)}" + (f", δ {significant(delta, lang, 2)}" if is_number(delta) and delta else "")
    card = facts(
        [
            (t("estimator", lang), f"{t_or('e_' + estimator, lang, estimator)} · {estimator}"),
            (t("target", lang), _named(target, labels)),
            (t("features", lang), tag("ul", [tag("li", _named(f, labels)) for f in features], cls="inline-list")),
            ("ε / δ", privacy),
            (t("classes", lang), _classes(model, lang)),
            (t("intercept", lang), ", ".join(significant(v, lang) for v in intercept)),
            (t("dataset", lang), f"{ledger.get('dataset', '')} ({t('version', lang)} {ledger.get('version', '?')})"),
            (t("author", lang), author),
            (t("mechanism", lang), model.get("mechanism") or ledger.get("mechanism")),
            (t("preprocessing", lang), spec.get("preprocessing")),
            (t("run", lang), ledger.get("run_id")),
        ]
    )
    parts: list[object] = [tag("h4", f"{t('sec_model', lang)} · {item_id}"), card]
    if top:
        rows = [(labels.feature(name), significant(value, lang)) for name, value in top]
        parts.append(tag("h5", t("coefficients", lang)))
        parts.append(tag("p", t("coef_note", lang, n=len(top), total=total), cls="note"))
        parts.append(table([t("feature", lang), t("coefficient", lang)], rows, numeric=[1], cls="data coef"))
    quality = model.get("quality")
    if isinstance(quality, Mapping) and quality:
        parts.append(tag("h5", t("quality", lang)))
        parts.append(tag("p", t("quality_note", lang, eps=epsilon(quality.get("epsilon"), lang)), cls="note"))
        parts.append(table(["", ""], _quality_rows(quality, lang), numeric=[1]))
    return tag("div", parts, cls="card model-card", data_item=item_id)


#: Figures of a model's ``quality`` block (``sandbox.quality/1``), in display order, with their label keys.
_QUALITY_FIGURES = (
    ("n_heldout", "q_n"),
    ("accuracy", "q_accuracy"),
    ("auc", "q_auc"),
    ("ece", "q_ece"),
    ("rmse", "q_rmse"),
)


def _quality_rows(quality: Mapping[str, Any], lang: str) -> list[tuple[str, str]]:
    """``(label, value ± noise sd)`` of each held-out figure that applies, rounded."""
    rows = []
    for key, label in _QUALITY_FIGURES:
        fig = quality.get(key)
        if isinstance(fig, Mapping):
            value, sd = fig.get("value"), fig.get("noise_sd")
            text = significant(value, lang) + (f" ± {significant(sd, lang, 2)}" if is_number(sd) else "")
            rows.append((t(label, lang), text))
    return rows


def _named(name: str, labels: Labels) -> str:
    label = labels.column(name)
    return name if label == name else f"{label} ({name})"


_COUNT_COLUMNS = frozenset({"value", "count", "n"})


def _cell(column: str, value: Any, kind: str, lang: str) -> str:
    if isinstance(value, bool):
        return t("yes" if value else "no", lang)
    if not is_number(value):
        return "" if value is None else str(value)
    if column in _COUNT_COLUMNS and kind == "count":
        return count(value, lang)
    if isinstance(value, int):
        return number(value, lang, 0)
    return significant(value, lang, 3) if abs(float(value)) < 1000 else number(value, lang, 0)


def aggregate_table(values: Mapping[str, Any], labels: Labels, *, item_id: str) -> Raw:
    """Render a DP table item: its rows (rounded), the noise it carries, at most :data:`MAX_TABLE_ROWS` rows."""
    lang = labels.lang
    rows: Sequence[Mapping[str, Any]] = [r for r in values.get("rows") or [] if isinstance(r, Mapping)]
    columns = [str(c) for c in values.get("columns") or sorted({k for r in rows for k in r})]
    kind = str(values.get("kind") or "")
    body = [[_cell(c, r.get(c), kind, lang) for c in columns] for r in rows[:MAX_TABLE_ROWS]]
    numeric = [i for i, c in enumerate(columns) if any(is_number(r.get(c)) for r in rows)]
    parts: list[object] = [
        tag("h4", f"{t('k_aggregate', lang)} · {kind} · {item_id}"),
        table([labels.columns.get(c) or t_or(f"col_{c}", lang, c) for c in columns], body, numeric=numeric),
    ]
    if len(rows) > MAX_TABLE_ROWS:
        parts.append(tag("p", f"… {len(rows) - MAX_TABLE_ROWS} +", cls="note"))
    if values.get("error_note"):
        parts.append(tag("p", str(values["error_note"]), cls="note"))
    return tag("div", parts, cls="card table-card", data_item=item_id)
