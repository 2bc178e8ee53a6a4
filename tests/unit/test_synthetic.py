"""The synthetic generator: deterministic, nothing after `now`, and carrying real structure."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from ingestion.synthetic import build_world, generate_chunk

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def world():
    return build_world(NOW)


@pytest.fixture(scope="module")
def chunk(world):
    return generate_chunk(world, 1, 3000, seed=11, chunk=0)


def test_same_seed_same_data(world, chunk):
    again = generate_chunk(world, 1, 3000, seed=11, chunk=0)
    assert np.array_equal(again.purchases.amount_cents, chunk.purchases.amount_cents)
    assert np.array_equal(again.interactions.occurred_at, chunk.interactions.occurred_at)
    other = generate_chunk(world, 1, 3000, seed=12, chunk=0)
    assert not np.array_equal(other.purchases.amount_cents[:50], chunk.purchases.amount_cents[:50])


def test_nothing_at_or_after_now_nor_before_signup(chunk):
    now = np.datetime64(NOW.replace(tzinfo=None), "us")
    assert (chunk.purchases.purchased_at < now).all()
    assert (chunk.interactions.occurred_at < now).all()
    signup = dict(zip(chunk.customers.id.tolist(), chunk.customers.created_at, strict=True))
    first = np.array([signup[c] for c in chunk.purchases.customer_id.tolist()])
    assert (chunk.purchases.purchased_at >= first).all()


def test_amounts_are_quantity_times_unit_price(chunk):
    p = chunk.purchases
    assert (p.amount_cents == p.quantity * p.unit_price_cents).all()
    assert (p.quantity > 0).all()


def test_no_purchases_after_dropout(chunk):
    dropout = dict(zip(chunk.customers.id.tolist(), chunk.latents.dropout_at, strict=True))
    at = chunk.purchases.purchased_at
    ends = np.array([dropout[c] for c in chunk.purchases.customer_id.tolist()])
    assert (at <= ends).all()


def test_heterogeneous_buyers(chunk):
    counts = np.bincount(chunk.purchases.customer_id - 1, minlength=3000)
    assert (counts == 0).mean() > 0.1  # many never or barely buy
    assert np.percentile(counts, 99) > 5 * max(np.median(counts), 1)  # a heavy tail


def test_complaints_foreshadow_churn(chunk):
    churned = chunk.latents.churned
    kinds = chunk.interactions.kind
    complained = np.zeros(3000, dtype=bool)
    complained[chunk.interactions.customer_id[kinds == "complaint"] - 1] = True
    assert churned[complained].mean() > churned[~complained].mean() + 0.1
