"""MLflow tracking and registry: what a run records, and the champion / challenger rules."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from ml.registry import ModelRegistry, RegistryError, default_tracking_uri


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(default_tracking_uri(tmp_path), tmp_path / "mlartifacts")


def weaker(trained):
    """The same task with a deliberately poor model: a few rounds on shuffled labels."""
    rng = np.random.default_rng(0)
    x = trained.input_example
    noise = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 1, "num_threads": 1},
        lgb.Dataset(
            np.vstack([x] * 20),
            rng.integers(0, 2, len(x) * 20),
            feature_name=list(trained.feature_names),
        ),
        num_boost_round=3,
    )
    score = trained.score(noise)
    row = {**trained.comparison["lightgbm"], trained.primary_metric: score}
    return dataclasses.replace(
        trained,
        heads={**trained.heads, trained.primary_head: noise},
        evaluated_heads={**trained.evaluated_heads, trained.primary_head: noise},
        comparison={**trained.comparison, "lightgbm": row},
    )


def test_a_run_records_params_metrics_features_data_plots_and_the_model(
    registry, trained, plan, tmp_path
):
    churn = trained["churn"]
    recorded = registry.record(churn, plan.describe())
    assert recorded.decision.promoted
    assert recorded.decision.version == 1

    client = registry._client
    run = client.get_run(recorded.run_id)
    assert run.data.params["plan.horizon_days"] == "90.0"
    assert json.loads(run.data.params["plan.training_cutoffs"]) == [
        c.isoformat() for c in plan.cutoffs
    ]
    assert run.data.params["lgbm.objective"] == "binary"
    metrics = run.data.metrics
    for model in ("lightgbm", "rfm_recency", "bg_nbd"):
        for metric in ("roc_auc", "pr_auc", "brier", "ece"):
            assert metrics[f"{model}.{metric}"] == pytest.approx(churn.comparison[model][metric])
    assert run.data.tags["cdm.feature_hash"] == churn.feature_hash

    artifacts = {a.path for a in client.list_artifacts(recorded.run_id)}
    assert {"features.json", "data_snapshot.json", "evaluation.json", "plots"} <= artifacts
    # Both boosters: the one judged on the held-out cutoff, and the refitted one served.
    judged = Path(client.download_artifacts(recorded.run_id, "evaluated/churn.txt", str(tmp_path)))
    x = churn.input_example
    assert np.array_equal(
        lgb.Booster(model_file=str(judged)).predict(x), churn.evaluated_heads["churn"].predict(x)
    )
    assert metrics["rounds.churn"] == metrics["rounds_served.churn"] > 0
    assert run.data.tags["cdm.calibration.churn"] == churn.calibrations["churn"].kind
    plots = {a.path for a in client.list_artifacts(recorded.run_id, "plots")}
    assert plots == {
        "plots/roc.png", "plots/calibration.png", "plots/importance.png", "plots/shap_summary.png"
    }  # fmt: skip
    local = Path(client.download_artifacts(recorded.run_id, "features.json", str(tmp_path)))
    assert json.loads(local.read_text())["features"] == list(churn.feature_names)
    # Artifacts live in the data directory, not in the working directory.
    assert (tmp_path / "mlartifacts").is_dir()

    loaded = registry.load("churn")
    assert loaded.version == 1
    assert loaded.feature_hash == churn.feature_hash
    assert np.array_equal(loaded.heads["churn"].predict(x), churn.heads["churn"].predict(x))
    assert float(loaded.tags["horizon_days"]) == 90.0
    p = np.linspace(0.01, 0.99, 50)
    assert loaded.calibration("churn").apply(p) == pytest.approx(
        churn.calibrations["churn"].apply(p), abs=1e-6
    )


def test_next_purchase_loads_all_three_heads(registry, trained, plan):
    registry.record(trained["next_purchase"], plan.describe())
    loaded = registry.load("next_purchase")
    assert set(loaded.heads) == {"p30", "count", "days"}
    x = trained["next_purchase"].input_example
    for head, booster in trained["next_purchase"].heads.items():
        assert np.array_equal(loaded.heads[head].predict(x), booster.predict(x))


def test_champion_changes_only_when_beaten_on_the_same_evaluation(registry, trained, plan):
    churn = trained["churn"]
    first = registry.record(churn, plan.describe()).decision
    assert (first.version, first.promoted) == (1, True)

    # The same model again: a tie is not a win.
    tie = registry.record(churn, plan.describe()).decision
    assert (tie.version, tie.promoted, tie.champion_version) == (2, False, 1)
    assert tie.champion_metric == pytest.approx(churn.metric)
    assert "does not beat champion v1" in tie.reason

    # A poor model loses to the baselines before the champion is even asked.
    poor = registry.record(weaker(churn), plan.describe()).decision
    assert (poor.version, poor.promoted) == (3, False)
    assert "does not beat the" in poor.reason

    versions = {v.version: v for v in registry.versions("churn")}
    assert versions[1].aliases == ("champion",)
    assert versions[3].aliases == ("challenger",)
    assert versions[2].aliases == ()
    assert versions[1].primary_metric == ("roc_auc", pytest.approx(churn.metric))

    # A person may promote by hand, even a poor version...
    registry.promote("churn", 3)
    assert registry.load("churn").version == 3
    assert {v.version: v.aliases for v in registry.versions("churn")}[3] == ("champion",)
    # ...and the next good model beats that champion on the same evaluation rows.
    good = registry.record(churn, plan.describe()).decision
    assert (good.version, good.promoted, good.champion_version) == (4, True, 3)
    assert "beats champion v3" in good.reason
    assert registry.load("churn").version == 4


def test_registry_errors_are_clear(registry):
    with pytest.raises(RegistryError, match="has no champion model yet"):
        registry.load("upsell")
    with pytest.raises(RegistryError, match="has no version 7"):
        registry.promote("churn", 7)
    with pytest.raises(RegistryError, match="unknown task 'nope'"):
        registry.versions("nope")
