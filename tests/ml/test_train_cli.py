"""`cdm train` and `cdm models` as real processes on the seeded database."""

from __future__ import annotations

from tests.cli.test_cli import assert_one_line_error, cdm
from tests.ml.conftest import SEED_NOW, cli_env


def test_train_prints_the_comparison_and_registers_a_version(seeded_url, tmp_path):
    settings = cli_env(seeded_url, tmp_path)
    empty = cdm("models", "list", env=settings)
    assert empty.returncode == 0, empty.stderr
    assert "No registered models yet" in empty.stdout

    result = cdm(
        "train", "churn", "--as-of", SEED_NOW.date().isoformat(), "--max-customers", "800",
        "--cutoffs", "2", "--step", "90d", env=settings, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for fragment in ("churn: held-out cutoff", "lightgbm", "rfm_recency", "bg_nbd", "roc_auc",
                     "ece", "registered version 1 as", "MLflow run"):  # fmt: skip
        assert fragment in out, fragment
    assert "evaluated on 2025-03-03" in out  # as-of minus the 90-day horizon
    assert (tmp_path / "mlflow.db").is_file()

    listed = cdm("models", "list", "churn", env=settings)
    assert listed.returncode == 0, listed.stderr
    assert "roc_auc" in listed.stdout
    assert "2025-06-01" in listed.stdout

    promoted = cdm("models", "promote", "churn", "1", env=settings)
    assert promoted.returncode == 0, promoted.stderr
    assert "version 1 is now the champion" in promoted.stdout
    assert "champion" in cdm("models", "list", env=settings).stdout


def test_training_errors_are_one_line(seeded_url, tmp_path):
    settings = cli_env(seeded_url, tmp_path)
    # The seeded history starts in June 2022: no training cutoff has purchases before it,
    # and not even two months of buyers to learn the hazard form from...
    assert_one_line_error(
        cdm("train", "churn", "--as-of", "2022-10-01", env=settings),
        "50 customers had bought by",
        "at least 60 are needed (one step to learn from, one to judge on)",
    )
    assert_one_line_error(
        cdm("train", "churn", "--as-of", "2022-10-01", "--method", "direct", env=settings),
        "purchase history starts",
    )
    # ...or, asked for the direct form, it says the longest horizon that would do.
    assert_one_line_error(
        cdm("train", "churn", "--as-of", "2023-01-01", "--method", "direct", env=settings),
        "50 customers had bought by",
        "the longest this history supports as of 2023-01-01 is",
        "or --method hazard",
    )
    bad_horizon = cdm("train", "churn", "--horizon", "9x", env=settings)
    assert_one_line_error(bad_horizon, "is not a duration like 90d")
    assert bad_horizon.returncode == 2
    assert_one_line_error(cdm("train", "everything", env=settings), "'everything' is not one of")
    assert_one_line_error(
        cdm("models", "promote", "churn", "5", env=settings), "churn has no version 5"
    )
