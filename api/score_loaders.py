"""Per-request loaders for model scores: however many customers a response holds, scoring
costs one feature statement and one prediction call per model.

Churn and next-purchase loaders both ask the features loader for their customers in the
same dispatch, so one feature frame (one statement) serves both; recommendations read the
customers' purchase history (one statement) and the day's cached item statistics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from aiodataloader import DataLoader

from api.loaders import BatchLoader
from domain.predictions import BuyAgainItem, ChurnRisk, NextPurchase, Recommendations
from ml.features import FeatureFrame
from ml.serving.scoring import Scorer
from sql.executor import Database


class ScoreLoaders:
    """The score loaders of one request, all as of the same instant."""

    def __init__(self, scorer: Scorer, db: Database, as_of: datetime) -> None:
        self.scorer = scorer
        self.db = db
        self.as_of = as_of
        loop = asyncio.get_running_loop()
        self.features: DataLoader[int, FeatureFrame] = BatchLoader(self._features, loop=loop)
        self.churn: DataLoader[int, ChurnRisk | None] = BatchLoader(
            partial(self._churn, explain=False), loop=loop
        )
        self.churn_explained: DataLoader[int, ChurnRisk | None] = BatchLoader(
            partial(self._churn, explain=True), loop=loop
        )
        self.next_purchase: DataLoader[int, NextPurchase | None] = BatchLoader(
            self._next_purchase, loop=loop
        )
        self.recommendations: DataLoader[int, Recommendations | None] = BatchLoader(
            self._recommendations, loop=loop
        )
        self.buy_again: DataLoader[int, list[BuyAgainItem] | None] = BatchLoader(
            self._buy_again, loop=loop
        )

    async def _features(self, ids: Sequence[int]) -> list[FeatureFrame]:
        self.db.statements += 1
        async with self.db.pool.acquire() as conn:
            frame = await self.scorer.features(conn, ids, self.as_of)
        return [frame] * len(ids)  # every key shares the batch's frame

    async def _frame(self, ids: Sequence[int]) -> FeatureFrame:
        frames = await self.features.load_many(ids)
        unique = {id(f): f for f in frames}
        if len(unique) == 1:
            return frames[0]
        # Keys that arrived in different feature batches: join their frames.
        import numpy as np  # here: the frames are NumPy's already; a server starts without it

        parts = list(unique.values())
        ids_all = np.concatenate([f.customer_ids for f in parts])
        matrix = np.vstack([f.matrix for f in parts])
        order = np.argsort(ids_all, kind="stable")
        return FeatureFrame(as_of=self.as_of, customer_ids=ids_all[order], matrix=matrix[order])

    async def _churn(self, ids: Sequence[int], *, explain: bool) -> list[ChurnRisk | None]:
        self.scorer.model("churn")  # fail fast (typed error) before computing features
        found = await self.scorer.churn(await self._frame(ids), explain=explain)
        return [found.get(i) for i in ids]

    async def _next_purchase(self, ids: Sequence[int]) -> list[NextPurchase | None]:
        self.scorer.model("next_purchase")
        found = await self.scorer.next_purchase(await self._frame(ids))
        return [found.get(i) for i in ids]

    async def _recommendations(self, ids: Sequence[int]) -> list[Recommendations | None]:
        self.scorer.model("upsell")
        self.db.statements += 1
        async with self.db.pool.acquire() as conn:
            found = await self.scorer.recommendations(conn, ids, self.as_of)
        return [found.get(i) for i in ids]

    async def _buy_again(self, ids: Sequence[int]) -> list[list[BuyAgainItem] | None]:
        self.db.statements += 1
        async with self.db.pool.acquire() as conn:
            found = await self.scorer.buy_again(conn, ids, self.as_of)
        return [found.get(i) for i in ids]
