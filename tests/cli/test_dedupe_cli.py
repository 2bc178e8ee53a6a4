"""`cdm dedupe` as a real process on a real database."""

from __future__ import annotations

import orjson

from tests.cli.test_cli import assert_one_line_error, cdm
from tests.factories import T0, add_customer, add_purchase, days


async def _duplicates(db) -> tuple[int, int]:
    a = await add_customer(db, first_name="Grace", last_name="Hopper", email="grace@navy.mil")
    b = await add_customer(db, first_name="Grace", last_name="Hoper", email="grace@navy.mil",
                           phone="+12025550143", updated_at=T0 + days(1))  # fmt: skip
    await add_customer(db, first_name="Alan", last_name="Turing", email="alan@bletchley.uk")
    return a, b


async def test_lists_candidates_as_json_and_as_a_table(db, database_url):
    a, b = await _duplicates(db)
    env = {"CDM_DATABASE_URL": database_url}

    result = cdm("dedupe", "--json", "--first", "5", env=env)
    assert result.returncode == 0, result.stderr
    found = orjson.loads(result.stdout)  # stdout is the JSON and nothing else
    assert len(found) == 1
    pair = found[0]
    assert (pair["a"]["id"], pair["b"]["id"], pair["score"]) == (a, b, 0.9806)
    assert pair["a"]["email"] == "grace@navy.mil"
    assert sorted(pair["blockingKeys"]) == ["email", "email_local"]
    assert pair["evidence"][1] == {"field": "email", "aValue": "grace@navy.mil",
                                   "bValue": "grace@navy.mil", "similarity": 1.0,
                                   "kind": "exact"}  # fmt: skip

    table = cdm("dedupe", env={**env, "COLUMNS": "200"})
    assert table.returncode == 0, table.stderr
    assert "0.98" in table.stdout
    assert "Grace Hoper" in table.stdout
    assert "email exact" in table.stdout
    assert "Alan" not in table.stdout

    none = cdm("dedupe", "--min-score", "0.99", env=env)
    assert none.returncode == 0, none.stderr
    assert "No duplicate candidates scoring 0.99 or more." in none.stdout

    mine = cdm("dedupe", "--json", "--customer", str(b), env=env)
    assert [(p["a"]["id"], p["b"]["id"]) for p in orjson.loads(mine.stdout)] == [(b, a)]


async def test_merge_dry_run_apply_and_unmerge(db, database_url):
    a, b = await _duplicates(db)
    await add_purchase(db, b, T0 + days(2), "12.00")
    env = {"CDM_DATABASE_URL": database_url, "COLUMNS": "200"}

    dry = cdm("dedupe", "--merge", str(a), str(b), env=env)
    assert dry.returncode == 0, dry.stderr
    assert "Dry run: nothing was written" in dry.stdout
    assert "most_recent: newer observation" in dry.stdout
    assert await db.fetchval("SELECT count(*) FROM customers") == 3

    applied = cdm("dedupe", "--merge", str(a), str(b), "--apply", "--json", env=env)
    assert applied.returncode == 0, applied.stderr
    report = orjson.loads(applied.stdout)
    assert report["dryRun"] is False
    merge_id = report["mergeId"]
    assert report["plan"]["moves"][0]["moved"]["purchases"] == 1
    row = await db.fetchrow("SELECT last_name, phone FROM customers WHERE id = $1", a)
    assert tuple(row) == ("Hoper", "+12025550143")
    assert (await db.fetchval("SELECT merged_by FROM merges")).startswith("cli:")

    again = cdm("dedupe", "--merge", str(a), str(b), "--apply", env=env)
    assert_one_line_error(again, f"mergedIds.0: customer {b} was merged into customer {a}")

    undo = cdm("dedupe", "--unmerge", str(merge_id), env=env)
    assert undo.returncode == 0, undo.stderr
    assert f"Undid merge {merge_id}: customers {b} are back." in undo.stdout
    assert await db.fetchval("SELECT last_name FROM customers WHERE id = $1", a) == "Hopper"

    twice = cdm("dedupe", "--unmerge", str(merge_id), env=env)
    assert_one_line_error(twice, "cannot undo", "was undone at")


def test_usage_errors(database_url):
    env = {"CDM_DATABASE_URL": database_url}
    for args in (["--merge", "1"], ["--apply"], ["7"], ["--unmerge", "x"], ["--min-score", "2"]):
        result = cdm("dedupe", *args, env=env)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
    unknown = cdm("dedupe", "--merge", "1", "abc", env=env)
    assert_one_line_error(unknown, "mergedIds.0", "positive integer id")
