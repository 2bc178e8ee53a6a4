"""A seeded database of its own for the model tests (the `db` fixture truncates the shared one),
and the three tasks trained on it once per run."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdm.settings import Settings
from ingestion.seed import seed_database
from ml.registry import ModelRegistry, default_tracking_uri
from ml.training import pipeline
from ml.training.outcome import TrainedTask
from ml.training.plan import TrainingPlan
from sql.database import connect
from tests.conftest import fresh_database, serving  # noqa: F401 (serving: for ML tests)

SEED_NOW = datetime(2025, 6, 1, tzinfo=UTC)
SEEDED_CUSTOMERS = 5000


@asynccontextmanager
async def seeded_database(
    server_url: str, prefix: str, *, customers: int, seed: int
) -> AsyncIterator[str]:
    """A fresh database of ``customers`` synthetic customers as of SEED_NOW, dropped on exit."""
    async with fresh_database(server_url, prefix) as url:
        conn = await connect(url)
        try:
            await seed_database(conn, customers=customers, seed=seed, now=SEED_NOW)
        finally:
            await conn.close()
        yield url


@pytest.fixture(scope="session")
async def seeded_url(server_url: str) -> AsyncIterator[str]:
    async with seeded_database(server_url, "cdm_ml", customers=SEEDED_CUSTOMERS, seed=7) as url:
        yield url


@pytest.fixture(scope="session")
def plan() -> TrainingPlan:
    return TrainingPlan(as_of=SEED_NOW)


@pytest.fixture(scope="session")
async def trained(seeded_url: str, plan: TrainingPlan) -> dict[str, TrainedTask]:
    conn = await connect(seeded_url)
    try:
        run = await pipeline.train(conn, pipeline.TASKS, plan)
    finally:
        await conn.close()
    assert run.plan == replace(plan, method="direct")  # the history holds whole windows
    assert not run.skipped
    assert not run.notes
    return {t.task: t for t in run.trained}


@pytest.fixture(scope="session")
def champions_dir(tmp_path_factory: pytest.TempPathFactory, trained, plan) -> Path:
    """A data directory whose MLflow store holds a champion of every task."""
    directory = tmp_path_factory.mktemp("cdm-champions")
    registry = ModelRegistry(default_tracking_uri(directory), directory / "mlartifacts")
    for task in pipeline.TASKS:
        registry.record(trained[task], plan.describe())
    return directory


def cli_env(url: str, data_dir: Path) -> dict[str, str]:
    """Environment for `cdm` processes on ``url`` with their store in ``data_dir``.

    MLflow exports the tracking URI of the last registry this test process opened; the
    command must fall back to its own data directory instead. Model loading may take as
    long as it needs: tests must not depend on how busy the machine is.
    """
    return {
        "CDM_DATABASE_URL": url, "CDM_DATA_DIR": str(data_dir), "COLUMNS": "160",
        "MLFLOW_TRACKING_URI": "",
        # Creating an empty MLflow store can outlast the default budget on a busy machine.
        "CDM_MODEL_LOAD_TIMEOUT_SECONDS": "600",
    }  # fmt: skip


def serving_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "expose_statement_count": True,
        "model_refresh_seconds": 0,
        "mlflow_tracking_uri": default_tracking_uri(data_dir),
        # A first start downloads and checks every model; on a busy machine that can outlast
        # the default budget, and tests must not depend on timing. Tests of a slow registry
        # set their own budget.
        "model_load_timeout_seconds": 600,
    }
    return Settings(**{**values, **overrides})


def copy_store(source: Path, destination: Path) -> Path:
    """A copy of a data directory's MLflow store, without its served-model cache."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("models"))
    return destination
