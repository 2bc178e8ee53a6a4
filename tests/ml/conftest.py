"""A seeded database of its own for the model tests (the `db` fixture truncates the shared one),
and the three tasks trained on it once per run."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.app import create_app
from cdm.settings import Settings
from ingestion.seed import seed_database
from ml.registry import ModelRegistry, default_tracking_uri
from ml.training import pipeline
from ml.training.outcome import TrainedTask
from ml.training.plan import TrainingPlan
from sql import migrate
from sql.database import connect
from sql.embedded import replace_database

SEED_NOW = datetime(2025, 6, 1, tzinfo=UTC)
SEEDED_CUSTOMERS = 5000


@pytest.fixture(scope="session")
async def seeded_url(server_url: str) -> AsyncIterator[str]:
    name = f"cdm_ml_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = replace_database(server_url, name)
    conn = await connect(url)
    try:
        await migrate.migrate(conn)
        await seed_database(conn, customers=SEEDED_CUSTOMERS, seed=7, now=SEED_NOW)
    finally:
        await conn.close()
    try:
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
def plan() -> TrainingPlan:
    return TrainingPlan(as_of=SEED_NOW)


@pytest.fixture(scope="session")
async def trained(seeded_url: str, plan: TrainingPlan) -> dict[str, TrainedTask]:
    conn = await connect(seeded_url)
    try:
        results = await pipeline.train(conn, pipeline.TASKS, plan)
    finally:
        await conn.close()
    return {t.task: t for t in results}


@pytest.fixture(scope="session")
def champions_dir(tmp_path_factory: pytest.TempPathFactory, trained, plan) -> Path:
    """A data directory whose MLflow store holds a champion of every task."""
    directory = tmp_path_factory.mktemp("cdm-champions")
    registry = ModelRegistry(default_tracking_uri(directory), directory / "mlartifacts")
    for task in pipeline.TASKS:
        registry.record(trained[task], plan.describe())
    return directory


def serving_settings(data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "expose_statement_count": True,
        "model_refresh_seconds": 0,
        "mlflow_tracking_uri": default_tracking_uri(data_dir),
    }
    return Settings(**{**values, **overrides})


def copy_store(source: Path, destination: Path) -> Path:
    """A copy of a data directory's MLflow store, without its served-model cache."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("models"))
    return destination


@asynccontextmanager
async def serving(url: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client to the app serving ``settings``' models over the database at ``url``."""
    app = create_app(settings, url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cdm.test") as http:
            yield http
