"""Served boosters compiled to native code: same predictions as LightGBM, or LightGBM."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from ml.serving.heads import compile_head, compiled_file, load_head


def _booster(objective: str, tmp_path, **extra) -> tuple[lgb.Booster, object]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 6))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take their own branch
    signal = np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) ** 2
    labels = {
        "binary": (signal + rng.standard_normal(3000) > 0.5).astype(float),
        "poisson": rng.poisson(np.exp(0.3 * signal)).astype(float),
    }[objective]
    data = lgb.Dataset(x, labels, **extra)
    params = {"objective": objective, "num_leaves": 15, "verbose": -1, "seed": 1}
    booster = lgb.train(params, data, num_boost_round=60)
    path = tmp_path / f"{objective}.txt"
    booster.save_model(str(path))
    return booster, path


@pytest.mark.parametrize("objective", ["binary", "poisson"])
def test_a_compiled_head_predicts_what_lightgbm_predicts(tmp_path, objective):
    booster, path = _booster(objective, tmp_path)
    assert compile_head(path, booster) is None
    head = load_head(path)
    assert head.compiled
    rng = np.random.default_rng(9)
    for rows in (1, 40, 12_000):  # one thread, then a thread pool
        x = rng.standard_normal((rows, 6)) * 3
        x[rng.random(x.shape) < 0.2] = np.nan
        expected = booster.predict(x)
        assert np.allclose(head.predict(x), expected, rtol=0, atol=1e-12)
    if objective == "binary":  # probabilities, not log-odds
        assert ((head.predict(x) > 0) & (head.predict(x) < 1)).all()
    # Explanations still come from LightGBM's exact TreeSHAP.
    contributions = head.contributions(x[:5])
    assert np.allclose(contributions.sum(axis=1), booster.predict(x[:5], raw_score=True))


def test_altered_native_code_is_never_loaded(tmp_path, caplog):
    booster, path = _booster("binary", tmp_path)
    assert compile_head(path, booster) is None
    native = compiled_file(path)
    native.write_bytes(native.read_bytes()[:-64])  # truncated
    head = load_head(path)
    assert not head.compiled
    assert "does not match its checksum" in caplog.text
    x = np.zeros((3, 6))
    assert np.array_equal(head.predict(x), booster.predict(x))


def test_without_a_compiled_file_lightgbm_predicts(tmp_path):
    booster, path = _booster("poisson", tmp_path)
    head = load_head(path)  # never compiled
    assert not head.compiled
    x = np.ones((4, 6))
    assert np.array_equal(head.predict(x), booster.predict(x))
