"""Two `cdm import` processes at once over the same people: one customer per person."""

from __future__ import annotations

import os
import subprocess
import sys

from domain.customer_queries import CustomerFilter
from sql.customer_list import customer_count_statement

PEOPLE = 3000


def _start(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cdm.cli", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "CDM_LOG_LEVEL": "warning", **env},
    )  # fmt: skip


async def test_two_concurrent_customer_imports_make_one_customer_per_person(
    db, database_url, tmp_path
):
    path = tmp_path / "people.csv"
    lines = ["external_id,first_name,email,phone"]
    lines += [f"P-{i},Name{i},person{i}@example.com,+4930{i:07d}" for i in range(PEOPLE)]
    path.write_text("\n".join(lines) + "\n")
    env = {"CDM_DATABASE_URL": database_url}
    # Small chunks over two connections each: many transactions of the two runs interleave.
    args = ("import", "customers", str(path), "--source", "crm", "--chunk-size", "250")
    runs = [_start(*args, env=env) for _ in range(2)]
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
        assert "Traceback" not in out + err

    assert await db.fetchval("SELECT count(*) FROM customers") == PEOPLE
    # The counter behind totalCount (delta rows from both runs' statements) agrees.
    sql, args = customer_count_statement(CustomerFilter())
    assert await db.fetchval(sql, *args) == PEOPLE
    assert await db.fetchval("SELECT count(DISTINCT customer_id) FROM identities") == PEOPLE
    # Every identity of a person names the one customer whose profile holds the e-mail.
    stray = await db.fetchval(
        """SELECT count(*) FROM identities i JOIN customers c ON c.id = i.customer_id
            WHERE i.kind = 'email' AND i.value IS DISTINCT FROM c.email"""
    )
    assert stray == 0
    runs = await db.fetch("SELECT inserted, unchanged, rejected FROM import_runs")
    # Between them the two runs inserted each person once; the rest they found already there.
    assert sum(r["inserted"] for r in runs) == PEOPLE
    assert sum(r["inserted"] + r["unchanged"] for r in runs) == 2 * PEOPLE
    assert sum(r["rejected"] for r in runs) == 0
