"""`cdm gdpr`: export and erasure from the command line, on the record."""

from __future__ import annotations

import json

from tests.cli.test_cli import assert_one_line_error, cdm
from tests.factories import add_customer, add_identity


async def test_export_then_erase(db, database_url, tmp_path):
    cid = await add_customer(db, email="ada@example.org")
    await add_identity(db, cid, "email", "crm", "ada@example.org")
    env = {"CDM_DATABASE_URL": database_url}

    out = tmp_path / "ada.json"
    result = cdm("gdpr", "export", str(cid), "--output", str(out), env=env)
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert (document["customerId"], document["profile"]["email"]) == (cid, "ada@example.org")
    assert document["identities"][0]["value"] == "ada@example.org"

    refused = cdm("gdpr", "erase", str(cid), env=env)
    assert_one_line_error(refused, "--yes")
    assert await db.fetchval("SELECT erased_at FROM customers WHERE id = $1", cid) is None

    erased = cdm("gdpr", "erase", str(cid), "--yes", env=env)
    assert erased.returncode == 0, erased.stderr
    assert f"Erased customer {cid}" in erased.stdout
    assert "1 identities" in erased.stdout
    assert await db.fetchval("SELECT email FROM customers WHERE id = $1", cid) is None
    entries = await db.fetch(
        "SELECT operation, kind, actor FROM audit_log WHERE customer_ids = ARRAY[$1::bigint]"
        " AND kind = 'command' ORDER BY id", cid,
    )  # fmt: skip
    assert [e["operation"] for e in entries][-2:] == ["gdpr export", "gdpr erase"]
    assert all(e["actor"].startswith("cli:") for e in entries)

    again = cdm("gdpr", "erase", str(cid), "--yes", env=env)  # idempotent: says when
    assert again.returncode == 0, again.stderr
    erased_at = await db.fetchval("SELECT erased_at FROM erasures WHERE customer_id = $1", cid)
    assert f"Customer {cid} was already erased at {erased_at:%Y-%m-%d %H:%M} UTC" in again.stdout
    last = await db.fetchrow(
        "SELECT operation, details FROM audit_log WHERE customer_ids = ARRAY[$1::bigint]"
        " ORDER BY id DESC LIMIT 1", cid,
    )  # fmt: skip
    assert (last["operation"], last["details"]) == ("gdpr erase", {"alreadyErased": True})
    assert await db.fetchval("SELECT count(*) FROM erasures WHERE customer_id = $1", cid) == 1
    assert_one_line_error(cdm("gdpr", "export", "999999", env=env), "no customer with id 999999")
