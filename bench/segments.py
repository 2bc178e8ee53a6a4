"""Segmentation and analytics benchmark (issue: segmentation, analytics and a dashboard).

    python bench/segments.py [--customers 1000000] [--database cdm_bench_1m] [--runs 2]

On the embedded server in bench/out/data (or CDM_BENCH_DATABASE_URL), with --customers
seeded customers (three years of history), times:
1. RFM for every customer as of the last purchase (`cdm rfm`: computed and stored);
2. the cohort retention matrix over the three years (36 monthly cohorts x 36 months);
3. monthly revenue over the three years, and `customersAggregate` by country, RFM segment
   and churn band. Targets: RFM and the cohort matrix each under 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta

from common import machine, seeded_database

import sql.analytics as analytics
import sql.rfm
from domain.predictions import RiskBands
from sql.database import connect


async def main(args: argparse.Namespace) -> None:
    url = await seeded_database(args.customers, args.seed, args.database)
    conn = await connect(url)
    try:
        await conn.execute("VACUUM ANALYZE purchases")
        customers = await conn.fetchval("SELECT count(*) FROM customers")
        purchases = await conn.fetchval("SELECT count(*) FROM purchases")
        first, last = await analytics.time_range(conn)
        end = last + timedelta(seconds=1)
        start = end - timedelta(days=3 * 365)
        print(
            f"{customers:,} customers, {purchases:,} purchases, {first:%Y-%m-%d} to {last:%Y-%m-%d}"
        )
        for run in range(1, args.runs + 1):
            started = time.perf_counter()
            scored = await sql.rfm.refresh(conn, end)
            rfm_s = time.perf_counter() - started

            started = time.perf_counter()
            cohorts = await analytics.cohorts(conn, start, end, 36, end)
            cohort_s = time.perf_counter() - started

            started = time.perf_counter()
            months = await analytics.revenue(
                conn, analytics.Granularity.MONTH, start, end, analytics.RevenueFilter(),
                RiskBands(), end,
            )  # fmt: skip
            revenue_s = time.perf_counter() - started

            started = time.perf_counter()
            groups = await analytics.aggregate(
                conn, None, [analytics.Dimension.COUNTRY, analytics.Dimension.RFM_SEGMENT,
                             analytics.Dimension.CHURN_BAND], RiskBands(), end, 1000,
            )  # fmt: skip
            aggregate_s = time.perf_counter() - started
            print(
                f"run {run}: RFM of {scored:,} customers {rfm_s:.1f} s (target 30 s); "
                f"cohort matrix {len(cohorts)} cohorts x 37 months {cohort_s:.1f} s (target 30 s); "
                f"monthly revenue ({len(months)} months) {revenue_s:.1f} s; "
                f"customersAggregate ({len(groups)} groups) {aggregate_s:.1f} s",
                flush=True,
            )
    finally:
        await conn.close()
    print(f"Machine: {machine()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database", default="cdm_bench_1m")
    parser.add_argument("--runs", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
