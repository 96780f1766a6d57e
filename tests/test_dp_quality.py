"""The DP quality figures of a fitted model, measured in the vault on held-out households.

References and tolerances:

- at epsilon 1e6 (1e5 for the figures) the noise on each count has scale 1.25e-5, so the released counts are the
  exact ones: accuracy and the confusion counts equal scikit-learn's ``accuracy_score``/``confusion_matrix`` on the
  held-out rows with the model's own predictions (to 1e-12); the binned AUC equals ``roc_auc_score`` on the bin
  index exactly (to 1e-12) and lies within its released ``binning_bound`` of ``roc_auc_score`` on the exact
  probabilities (a proven bound, not a tolerance); the calibration's observed rate per bin is the held-out positive
  rate in the bin (to 1e-12) and its mean predicted probability the mean score there (to 1e-3: score sums carry
  noise of scale 5e-5 each); the RMSE is scikit-learn's on the clipped predictions (rtol 1e-4: the squared-error
  sum's noise has scale 8e5 against a sum of order 1e12);
- the held-out split is the literal rule ``int(sha256(str(id)), 16) % 5 == 0`` on every id, and its share of 2,000
  households lies in 20% +- 3.5 points (more than 3.9 binomial standard errors);
- shapes on neighbouring tables: 3 repetitions each of three estimator families at epsilon 1, with one household
  added (once held out, once kept in); the ``quality`` block has the same keys and list lengths (a value may be
  ``None`` where a noisy denominator is 0: post-processing of DP counts); with data-blind noise (as
  tests/neighbours makes it) the block is byte-identical on the three tables, and with exact counts it is not
  (the negative control).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, mean_squared_error, roc_auc_score
from test_dp_tables import engine_policy, households_frame, households_schema

from sandbox._private.kernel.fitted import FittedModel
from sandbox._private.shared.holdout import HOLDOUT_MODULUS, held_out, is_held_out
from sandbox._private.shared.model_params import predict_from_params, predict_proba_from_params
from sandbox._private.shared.modelspec import ModelSpec
from sandbox._private.shared.policy import ModelRules, default_policy_path
from sandbox._private.vault.dp.engine import DPEngine
from sandbox._private.vault.dp.quality import QUALITY_BINS, binned_auc
from sandbox._private.vault.dp.tabledata import TableData
from sandbox._private.vault.server import open_service

FEATURES = ("household_type", "income", "arrears", "n_children")
ENGINE = DPEngine(engine_policy())


@pytest.fixture(scope="module")
def hh() -> tuple[pd.DataFrame, TableData]:
    frame = households_frame(4_000, seed=7)
    return frame, TableData.from_frame(frame, households_schema())


def _heldout(frame: pd.DataFrame) -> pd.DataFrame:
    """The held-out households, picked by the literal rule (not by the vault's vectorised one)."""
    picked = [int(hashlib.sha256(str(int(h)).encode()).hexdigest(), 16) % 5 == 0 for h in frame.household_id]
    return frame[np.array(picked)].reset_index(drop=True)


def test_split_is_the_public_hash_rule(hh: Any) -> None:
    frame, table = hh
    ids = frame.household_id.to_numpy()
    rule = np.array([is_held_out(h) for h in ids])
    assert np.array_equal(held_out(ids), rule)
    assert 0.165 <= rule.mean() <= 0.235 and HOLDOUT_MODULUS == 5
    # the vault applies it to each row's own household id, whatever the row order
    assert np.array_equal(np.sort(table.units()), np.sort(ids))
    shuffled = TableData.from_frame(frame.sample(frac=1.0, random_state=1), households_schema())
    spec = ModelSpec("logistic_regression", "debt", FEATURES)
    for t in (table, shuffled):
        fitted = ENGINE.fit(spec, t, 1e6)
        assert fitted.private["n_rows_heldout"] == int(rule.sum())
        assert fitted.private["n_rows"] == len(frame) - int(rule.sum())
        assert fitted.public["quality"]["n_heldout"]["value"] == int(rule.sum())


def test_binary_figures_match_sklearn_on_the_heldout_rows_at_huge_epsilon(hh: Any) -> None:
    frame, table = hh
    fitted = ENGINE.fit(ModelSpec("logistic_regression", "debt", FEATURES), table, 1e6)
    q = fitted.public["quality"]
    test = _heldout(frame)
    y = test.debt.to_numpy().astype(bool)
    pred = predict_from_params(fitted.public, test).astype(bool)
    score = predict_proba_from_params(fitted.public, test)[:, 1]
    assert q["accuracy"]["value"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    tn, fp, fn, tp = confusion_matrix(y, pred).ravel()
    assert q["counts"]["confusion"] == {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    bins = np.clip(np.ceil(score * QUALITY_BINS) - 1, 0, QUALITY_BINS - 1)
    assert q["auc"]["value"] == pytest.approx(roc_auc_score(y, bins), abs=1e-12)
    exact = roc_auc_score(y, score)
    assert abs(q["auc"]["value"] - exact) <= q["auc"]["binning_bound"] + 1e-12
    for b, row in enumerate(q["calibration"]):
        in_bin = bins == b
        assert row["n"] == in_bin.sum()
        if in_bin.any():
            assert row["observed_rate"] == pytest.approx(y[in_bin].mean(), abs=1e-12)
            assert row["mean_predicted"] == pytest.approx(score[in_bin].mean(), abs=1e-3)
    assert q["epsilon"] == pytest.approx(1e5) and fitted.public["epsilon_fit"] == pytest.approx(9e5)
    spec = ModelSpec("logistic_regression", "debt", FEATURES)
    assert fitted.public["epsilon"] == 1e6 == ENGINE.cost(spec, table.schema, epsilon=1e6).epsilon


def test_binned_auc_bound_holds_against_exact_auc() -> None:
    """500 random score sets (fixed seed): the binned AUC is within its bound of the exact one, and tight once."""
    rng = np.random.Generator(np.random.SFC64(3))
    tight = 0.0
    for _ in range(500):
        y = rng.random(300) < 0.3
        score = np.clip(rng.normal(0.4 + 0.2 * y, 0.15), 0, 1)
        b = np.clip(np.ceil(score * QUALITY_BINS).astype(int) - 1, 0, QUALITY_BINS - 1)
        neg = np.bincount(b[~y], minlength=QUALITY_BINS).astype(float)
        pos = np.bincount(b[y], minlength=QUALITY_BINS).astype(float)
        auc, bound = binned_auc(neg, pos)
        assert auc is not None and bound is not None
        err = abs(auc - roc_auc_score(y, score))
        assert err <= bound + 1e-12
        tight = max(tight, err / bound)
    assert tight > 0.2  # the bound is not vacuous: some draws come within a factor 5 of it


def test_multiclass_and_regression_figures_match_sklearn_at_huge_epsilon(hh: Any) -> None:
    frame, table = hh
    test = _heldout(frame)
    nb = ENGINE.fit(ModelSpec("gaussian_nb", "debt_level", FEATURES), table, 1e6)
    q = nb.public["quality"]
    pred = predict_from_params(nb.public, test)
    assert q["accuracy"]["value"] == pytest.approx(accuracy_score(test.debt_level, pred), abs=1e-12)
    labels = ["none", "low", "high"]
    assert q["counts"]["confusion_matrix"] == confusion_matrix(test.debt_level, pred, labels=labels).tolist()
    assert q["auc"] is None and q["calibration"] == []
    spec = ModelSpec("linear_regression", "income", ("household_type", "arrears", "n_children", "debt"))
    lr = ENGINE.fit(spec, table, 1e6)
    rmse = lr.public["quality"]["rmse"]
    ref = np.sqrt(mean_squared_error(test.income, np.clip(predict_from_params(lr.public, test), 0, 200_000)))
    assert rmse["value"] == pytest.approx(ref, rel=1e-4) and rmse["clip"] == [0.0, 200_000.0]


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return "string" if isinstance(value, str) else "value"  # a number, or None where a noisy denominator is 0


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec("logistic_regression", "debt", ("household_type", "income")),
        ModelSpec("gaussian_nb", "debt_level", ("household_type", "arrears")),
        ModelSpec("linear_regression", "income", ("household_type", "arrears")),
    ],
    ids=lambda s: s.estimator,
)
def test_quality_block_has_the_same_shape_with_one_household_added(spec: ModelSpec) -> None:
    base = households_frame(400, seed=13)
    new_ids = [h for h in range(90_000_000, 90_000_100) if not (base.household_id == h).any()]
    held = next(h for h in new_ids if is_held_out(h))
    kept = next(h for h in new_ids if not is_held_out(h))
    schema = households_schema()
    tables = [TableData.from_frame(base, schema)] + [
        TableData.from_frame(pd.concat([base, base.iloc[[0]].assign(household_id=h, income=200_000.0)]), schema)
        for h in (held, kept)
    ]
    shapes = {repr(_shape(ENGINE.fit(spec, t, 1.0).public["quality"])) for t in tables for _ in range(3)}
    assert len(shapes) == 1


def test_share_zero_turns_figures_and_split_off(hh: Any) -> None:
    frame, table = hh
    engine = DPEngine(engine_policy().model_copy(update={"models": ModelRules(quality_epsilon_share=0.0)}))
    fitted = engine.fit(ModelSpec("gaussian_nb", "debt", FEATURES), table, 1.0)
    assert fitted.public["quality"] is None and fitted.private["n_rows"] == len(frame)
    assert fitted.public["epsilon_fit"] == fitted.public["epsilon"] == 1.0


def test_kernel_shows_the_figures(hh: Any) -> None:
    _, table = hh
    fitted = ENGINE.fit(ModelSpec("logistic_regression", "debt", FEATURES), table, 1e6)
    payload = {
        "id": "r1",
        "sha256": "0" * 64,
        "dataset": "households",
        "version": 1,
        "kind": "model",
        "query": {"spec": fitted.public["spec"]},
        "epsilon": 1e6,
        "delta": 0.0,
        "mechanism": "diffprivlib.models.LogisticRegression",
        "values": fitted.public,
    }
    model = FittedModel.from_payload(payload)
    quality = model.quality
    assert quality is not None and quality.accuracy is not None and quality.auc is not None
    assert quality.accuracy.value == fitted.public["quality"]["accuracy"]["value"]
    assert len(quality.calibration) == QUALITY_BINS and quality.rmse is None
    text = repr(quality)
    assert text.startswith("ModelQuality(held-out rows (noisy) ") and "accuracy" in text and "AUC" in text
    card = model._repr_html_()
    assert "Held-out quality" in card and f"accuracy {quality.accuracy.format()}" in card
    assert "Calibration" not in card and "observed rate" in quality._repr_html_()
    frame = quality.calibration_frame()
    assert list(frame.columns) == ["lower", "upper", "n", "mean_predicted", "observed_rate"] and len(frame) == 10
    assert frame.attrs["sandbox_result"]["id"] == "r1"


def test_one_charge_covers_fit_and_figures_and_cost_shows_the_split(small_population: Path, tmp_path: Path) -> None:
    """Through the vault service and its ledger: the charge is the requested ε; the figures' share is inside it."""
    svc = open_service(tmp_path / "ws", policy=default_policy_path())
    svc.registry.add_population(small_population)
    svc.tokens.create("ann", "analyst")
    caller = svc.tokens.list()[0]
    spec = {"estimator": "logistic_regression", "target": "arrears", "features": ["income", "household_type"]}
    body = {"dataset": "households", "spec": spec, "epsilon": 0.5}
    cost = svc.fit_cost(body)
    assert cost["epsilon"] == 0.5 and cost["parts"] == {"fit": pytest.approx(0.45), "quality": pytest.approx(0.05)}
    out = svc.fit(body, caller, None)
    (charge,) = svc.ledger.charges()
    assert charge.epsilon == out["charged_epsilon"] == 0.5
    values = out["values"]
    assert values["epsilon_fit"] + values["quality"]["epsilon"] == pytest.approx(0.5)
    assert values["quality"]["format"] == "sandbox.quality/1" and values["quality"]["bins"] == QUALITY_BINS
    assert FittedModel.from_payload(out).quality is not None


def test_with_data_blind_noise_the_quality_block_is_identical_on_neighbours(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing but the noisy counts reaches the figures: with the noise made data-blind (as tests/neighbours does,
    a draw seeded by the public arguments only), D and D' plus one household (held out, or kept in) give the same
    ``quality`` block byte for byte, for each estimator family (1 fit each)."""
    from sandbox._private.vault.dp import mechanisms, quality

    real = mechanisms.noisy_vector

    def blind(true: Any, *, epsilon: float, delta: float, sensitivity: float, integer: bool) -> Any:
        size = int(np.size(true))
        _, noise = real(np.zeros(size), epsilon=epsilon, delta=delta, sensitivity=sensitivity, integer=integer)
        rng = np.random.Generator(np.random.SFC64(abs(hash((size, epsilon, sensitivity, integer)))))
        return (rng.integers(-3, 41, size).astype(float) if integer else rng.uniform(-25, 75, size)), noise

    monkeypatch.setattr(quality, "noisy_vector", blind)
    monkeypatch.setattr(quality, "_bootstrap_rng", lambda: np.random.Generator(np.random.SFC64(5)))
    base = households_frame(300, seed=17)
    new_ids = [h for h in range(80_000_000, 80_000_100) if not (base.household_id == h).any()]
    added = [next(h for h in new_ids if is_held_out(h)), next(h for h in new_ids if not is_held_out(h))]
    schema = households_schema()
    tables = [TableData.from_frame(base, schema)] + [
        TableData.from_frame(pd.concat([base, base.iloc[[0]].assign(household_id=h, debt_level="high")]), schema)
        for h in added
    ]
    for spec in (
        ModelSpec("logistic_regression", "debt", ("household_type", "income")),
        ModelSpec("gaussian_nb", "debt_level", ("household_type", "arrears")),
        ModelSpec("linear_regression", "income", ("household_type", "arrears")),
    ):
        blocks = {json.dumps(ENGINE.fit(spec, t, 1.0).public["quality"], sort_keys=True) for t in tables}
        assert len(blocks) == 1, spec.estimator

    # negative control: figures from the exact counts (no noise) differ once the held-out household is added
    def exact(true: Any, *, epsilon: float, delta: float, sensitivity: float, integer: bool) -> Any:
        return np.asarray(true, dtype=float), real(
            np.zeros(1), epsilon=epsilon, delta=0.0, sensitivity=1, integer=True
        )[1]

    monkeypatch.setattr(quality, "noisy_vector", exact)
    spec = ModelSpec("logistic_regression", "debt", ("household_type", "income"))
    leaky = [json.dumps(ENGINE.fit(spec, t, 1.0).public["quality"], sort_keys=True) for t in tables[:2]]
    assert leaky[0] != leaky[1]
