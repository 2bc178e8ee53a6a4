"""A seeded database of its own for the model tests (the `db` fixture truncates the shared one),
and the three tasks trained on it once per run."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from ingestion.seed import seed_database
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
