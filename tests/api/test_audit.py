"""The audit log: every mutation in its own transaction, reads of personal data in batches,
append-only in the database, readable by admins alone."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

import sql.audit
from api.schema import schema
from api.schema.audited import Audited
from domain.access import Role
from tests.conftest import api_key, bearer, serving
from tests.factories import add_customer, add_product
from tests.http_client import GRAPHQL_RESPONSE, data, error_codes, gql

# One call per mutation, with the customers it must be recorded against (filled in by setup).
MUTATIONS = {
    "upsertCustomer": """mutation { upsertCustomer(source: "web",
        input: {externalId: "W-1", email: "new@example.org"}) { __typename } }""",
    "recordPurchases": """mutation($c: ID!) { recordPurchases(source: "shop", items: [
        {customerId: $c, externalId: "o-1", purchasedAt: "2025-01-01T00:00:00Z",
         productSku: "SKU-1", quantity: 1, unitPrice: 5, currency: "EUR", channel: "web"}]) {
        __typename } }""",
    "recordInteractions": """mutation($c: ID!) { recordInteractions(source: "web", items: [
        {customerId: $c, externalId: "e-1", occurredAt: "2025-01-01T00:00:00Z",
         channel: "web", kind: "page_view"}]) { __typename } }""",
    "setConsent": """mutation($c: ID!) { setConsent(source: "web", input: {customerId: $c,
        purpose: "email_marketing", granted: true}) { __typename } }""",
    "upsertProducts": """mutation { upsertProducts(items: [{sku: "SKU-2", name: "Pen",
        category: "office", price: 2, currency: "EUR"}]) { __typename } }""",
    "mergeCustomers": """mutation($c: ID!, $d: ID!) { mergeCustomers(survivorId: $c,
        mergedIds: [$d]) { __typename } }""",
    "unmergeCustomers": """mutation($m: ID!) { unmergeCustomers(mergeId: $m) { __typename } }""",
    "reloadModels": "mutation { reloadModels { task } }",
    "eraseCustomer": """mutation($d: ID!) { eraseCustomer(id: $d) { __typename } }""",
    "createApiKey": """mutation { createApiKey(name: "crm", role: APP, expiresInDays: 30) {
        ... on ApiKeyCreated { key { prefix } } } }""",
    "revokeApiKey": """mutation { revokeApiKey(idOrPrefix: "1") { __typename } }""",
    "refreshRfm": "mutation { refreshRfm { customers } }",
    "createSegment": """mutation { createSegment(name: "gb", definition: {countryIn: ["GB"]}) {
        __typename } }""",
    "deleteSegment": """mutation($s: ID!) { deleteSegment(id: $s) }""",
}


async def entries(db: asyncpg.Pool, request_id: str | None = None, **filters: object) -> list:
    """Entries matching ``filters`` (and ``request_id``): the log outlives each test's data."""
    found = await sql.audit.page(db, sql.audit.AuditFilter(**filters), limit=1000)
    return [e for e in found if request_id is None or e.request_id == request_id]


def new_id() -> str:
    return uuid.uuid4().hex


async def post(client, query: str, variables: dict | None = None, request_id: str = "r-1"):
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables or {}},
        headers={"Accept": GRAPHQL_RESPONSE, "X-Request-Id": request_id},
    )
    assert response.headers["X-Request-Id"] == request_id
    return response


def test_every_mutation_is_audited_and_tested_here():
    mutation_type = schema.get_type_by_name("Mutation")
    for field in mutation_type.fields:
        assert any(isinstance(e, Audited) for e in field.extensions), field.name
    names = set(schema._schema.mutation_type.fields)
    assert names == set(MUTATIONS), "add the new mutation to MUTATIONS with its expected entry"


async def test_each_mutation_is_recorded_with_who_what_whom_and_request(client, db):
    a = await add_customer(db, email="a@example.org")
    b = await add_customer(db, email="b@example.org", first_name="Ada")
    await add_product(db, "SKU-1")
    variables = {"c": str(a), "d": str(b)}
    expected_ids: dict[str, set[int] | None] = {
        "recordPurchases": {a}, "recordInteractions": {a}, "setConsent": {a},
        "upsertProducts": set(), "mergeCustomers": {a, b}, "reloadModels": set(),
        "upsertCustomer": None,  # a new customer: checked below
        "unmergeCustomers": {a, b}, "eraseCustomer": {b}, "createApiKey": set(),
        "revokeApiKey": set(), "refreshRfm": set(), "createSegment": set(),
        "deleteSegment": set(),
    }  # fmt: skip
    for name, query in MUTATIONS.items():
        if name == "unmergeCustomers":
            variables["m"] = str(await db.fetchval("SELECT max(id) FROM merges"))
        if name == "deleteSegment":
            variables["s"] = str(await db.fetchval("SELECT max(id) FROM segments"))
        used = {k: v for k, v in variables.items() if f"${k}" in query}
        request_id = new_id()
        response = await post(client, query, used, request_id=request_id)
        assert response.status_code == 200, response.text
        assert "errors" not in response.json(), response.json()
        (entry,) = await entries(db, request_id, operation=name)
        assert (entry.actor, entry.role, entry.kind.value) == (
            "key:test admin",
            "admin",
            "mutation",
        )
        assert entry.details["outcome"] == "done", (name, entry.details)
        if expected_ids[name] is None:
            created = await db.fetchval("SELECT customer_id FROM identities WHERE value = 'W-1'")
            assert entry.customer_ids == (created,)
        else:
            assert set(entry.customer_ids) == expected_ids[name], name
        if name == "mergeCustomers":
            assert entry.details == {"outcome": "done", "dryRun": False}


async def test_a_refused_mutation_is_recorded_and_writes_nothing(client, db):
    bad = """mutation { upsertCustomer(source: "web", input: {email: "not-an-email"}) {
        __typename ... on ValidationFailed { errors { field code } } } }"""
    request_id = new_id()
    body = (await post(client, bad, request_id=request_id)).json()
    assert body["data"]["upsertCustomer"]["__typename"] == "ValidationFailed"
    (entry,) = await entries(db, request_id)
    assert (entry.details["outcome"], entry.customer_ids) == ("refused", ())
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_the_change_and_its_entry_commit_together(client, db, monkeypatch):
    async def broken(conn, entry):
        raise RuntimeError("audit store refused the entry")

    monkeypatch.setattr(sql.audit, "record", broken)
    request_id = new_id()
    body = (await post(client, MUTATIONS["upsertCustomer"], request_id=request_id)).json()
    assert error_codes(body) == ["INTERNAL_SERVER_ERROR"]
    # The write happened before the audit entry failed; it was rolled back with it.
    assert await db.fetchval("SELECT count(*) FROM customers") == 0
    assert await entries(db, request_id) == []


async def test_the_log_is_append_only(db):
    actor = new_id()
    await sql.audit.record_many(
        db, [sql.audit.AuditEntry(actor, "admin", sql.audit.AuditKind.COMMAND, "test")]
    )
    for statement in ("UPDATE audit_log SET actor = 'y'", "DELETE FROM audit_log",
                      "TRUNCATE audit_log"):  # fmt: skip
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await db.execute(statement)
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE actor = $1", actor) == 1


async def test_a_batch_is_written_whole_and_exact(db):
    actor = new_id()
    Entry, Kind = sql.audit.AuditEntry, sql.audit.AuditKind
    batch = [
        Entry(actor, "app", Kind.READ, "customers", (3, 1, 2), "r-1", {"fields": ["email"]}),
        Entry(actor, "admin", Kind.COMMAND, "gdpr export", (), None, {}),
        Entry(actor, "analyst", Kind.REFUSAL, "customer", (9_007_199_254_740_993,), "r-3",
              {"reason": "naïve «quote\" {x}", "nested": {"n": [1, 2.5, None]}}),
    ]  # fmt: skip
    await sql.audit.record_many(db, batch)
    rows = await db.fetch(
        "SELECT role, kind, operation, customer_ids, request_id, details FROM audit_log"
        " WHERE actor = $1 ORDER BY id", actor,
    )  # fmt: skip
    assert [tuple(r.values()) for r in rows] == [
        (e.role, e.kind.value, e.operation, list(e.customer_ids), e.request_id, dict(e.details))
        for e in batch
    ]
    # All or none: one entry the table refuses (an empty actor) keeps the whole batch out.
    with pytest.raises(asyncpg.CheckViolationError):
        await sql.audit.record_many(
            db, [Entry(actor, "app", Kind.READ, "x"), Entry("", "app", Kind.READ, "x")]
        )
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE actor = $1", actor) == 3


PERSON = "query($id: ID!) { customer(id: $id) { id email identities { value } } }"
NOT_PERSONAL = "query($id: ID!) { customer(id: $id) { id country } }"


async def test_reads_of_personal_data_in_clear_are_recorded_in_batches(db, database_url, settings):
    since = await db.fetchval("SELECT clock_timestamp()")
    cid = await add_customer(db, email="grace@navy.mil")
    fast = settings.model_copy(update={"audit_flush_seconds": 0.05})
    analyst = await api_key(db, Role.ANALYST)
    async with serving(database_url, fast, key=await api_key(db, Role.APP)) as http:
        assert (
            data(await gql(http, PERSON, {"id": str(cid)}))["customer"]["email"] == "grace@navy.mil"
        )
        await gql(http, NOT_PERSONAL, {"id": str(cid)})
        http.headers.update(bearer(analyst))
        masked = data(await gql(http, PERSON, {"id": str(cid)}))["customer"]["email"]
        assert masked == "g***@navy.mil"
        for _ in range(100):
            if await entries(db, kind=sql.audit.AuditKind.READ, since=since):
                break
            await asyncio.sleep(0.05)
    (read,) = await entries(db, kind=sql.audit.AuditKind.READ, since=since)  # the app's read
    assert (read.actor, read.role, read.operation) == ("key:test app", "app", "customer")
    assert read.customer_ids == (cid,)
    assert read.details == {"fields": ["Customer.email", "Identity.value"]}


async def test_queued_reads_are_written_at_a_clean_shutdown(db, database_url, settings):
    since = await db.fetchval("SELECT clock_timestamp()")
    cid = await add_customer(db, email="grace@navy.mil")
    slow = settings.model_copy(update={"audit_flush_seconds": 3600})
    async with serving(database_url, slow) as http:
        await gql(http, PERSON, {"id": str(cid)})
        assert await entries(db, kind=sql.audit.AuditKind.READ, since=since) == []
    (read,) = await entries(db, kind=sql.audit.AuditKind.READ, since=since)
    assert read.customer_ids == (cid,)


AUDIT_LOG = """query($c: ID, $after: String, $since: DateTime) {
  auditLog(customerId: $c, first: 1, after: $after, since: $since) {
  totalCount pageInfo { hasNextPage endCursor }
  nodes { actor role kind operation customerIds requestId details } } }"""


async def test_admins_page_through_the_log_by_customer(client, db):
    a = await add_customer(db)
    marker = new_id()
    for n in range(2):
        query = f"""mutation {{ setConsent(source: "web", input: {{customerId: "{a}",
            purpose: "sms", granted: {"true" if n else "false"}}}) {{ __typename }} }}"""
        assert (await post(client, query, request_id=f"{marker}-{n}")).status_code == 200
    since = (await db.fetchval("SELECT min(at) FROM audit_log WHERE request_id = $1",
                               f"{marker}-0")).isoformat()  # fmt: skip
    first = data(await gql(client, AUDIT_LOG, {"c": str(a), "since": since}))["auditLog"]
    assert first["totalCount"] == 2
    assert first["nodes"] == [
        {"actor": "key:test admin", "role": "admin", "kind": "MUTATION",
         "operation": "setConsent", "customerIds": [str(a)], "requestId": f"{marker}-1",
         "details": {"outcome": "done"}},
    ]  # fmt: skip
    after = first["pageInfo"]["endCursor"]
    variables = {"c": str(a), "after": after, "since": since}
    second = data(await gql(client, AUDIT_LOG, variables))["auditLog"]
    assert [n["requestId"] for n in second["nodes"]] == [f"{marker}-0"]
    assert second["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.ADMIN])
async def test_only_admins_read_the_log(client, db, role):
    client.headers.update(bearer(await api_key(db, role)))
    body = await gql(client, AUDIT_LOG, {}, expect_status=403)
    assert error_codes(body) == ["FORBIDDEN"]


async def refusals(db: asyncpg.Pool, since: object) -> list:
    return await entries(db, kind=sql.audit.AuditKind.REFUSAL, since=since)


async def test_a_forbidden_operation_is_audited_with_its_fields(db, database_url, settings):
    since = await db.fetchval("SELECT clock_timestamp()")
    cid = await add_customer(db)
    analyst = await api_key(db, Role.ANALYST)
    async with serving(database_url, settings, key=analyst) as http:
        erase = "mutation Forget($id: ID!) { eraseCustomer(id: $id) { __typename } }"
        response = await post(http, erase, {"id": str(cid)}, request_id="refused-403")
        assert response.status_code == 403
    (entry,) = await refusals(db, since)
    assert (entry.actor, entry.role, entry.operation, entry.request_id) == (
        "key:test analyst", "analyst", "eraseCustomer", "refused-403",
    )  # fmt: skip
    assert entry.details == {
        "status": 403, "code": "FORBIDDEN", "fields": ["Mutation.eraseCustomer"],
        "reason": "the analyst role may not use Mutation.eraseCustomer",
        "operationName": "Forget",
    }  # fmt: skip
    assert entry.customer_ids == ()  # nothing was read: the arguments are not recorded
    assert await db.fetchval("SELECT erased_at FROM customers WHERE id = $1", cid) is None


async def test_a_flood_of_refusals_writes_a_bounded_log_that_still_counts_them(
    db, database_url, settings
):
    since = await db.fetchval("SELECT clock_timestamp()")
    # A bucket that does not refill within the test: exactly the burst is written one by one.
    strict = settings.model_copy(
        update={"audit_refusals_burst": 20, "audit_refusals_per_minute": 1e-6}
    )
    unknown_key = "Bearer cdm_0123456789_" + "A" * 43
    async with serving(database_url, strict) as http:

        async def refused(n: int) -> int:
            header = unknown_key if n % 2 else "Bearer not-a-key"
            response = await http.post(
                "/graphql", json={"query": "{ models { task } }"},
                headers={"Authorization": header, "Accept": GRAPHQL_RESPONSE},
            )  # fmt: skip
            return response.status_code

        for start in range(0, 200, 10):  # ten concurrent clients at a time
            statuses = await asyncio.gather(*(refused(n) for n in range(start, start + 10)))
            assert statuses == [401] * 10
        # The one allowed caller is not held back by the others' refusals.
        assert (await http.post("/graphql", json={"query": "{ models { task } }"})).is_success
    found = await refusals(db, since)
    one_by_one = [e for e in found if e.operation != "refusals suppressed"]
    summaries = [e for e in found if e.operation == "refusals suppressed"]
    assert len(one_by_one) == 20
    (summary,) = summaries
    assert summary.details["suppressed"] == 180
    assert summary.details["message"] == "180 more refusals suppressed"
    assert summary.details["callers"] == {"client:127.0.0.1": 180}
    assert len(one_by_one) + summary.details["suppressed"] == 200
    reasons = {e.details["reason"] for e in one_by_one}
    assert reasons == {"unknown API key", "that is not a CDM API key (create one with "
                       "`cdm keys create --role <role> --name <who>`)"}  # fmt: skip
    keyed = [e for e in one_by_one if e.details["reason"] == "unknown API key"]
    assert {(e.actor, e.role, e.operation) for e in one_by_one} == {
        ("unauthenticated", "none", "POST /graphql")
    }
    assert {e.details.get("keyPrefix") for e in keyed} == {"0123456789"}
    assert {e.details["status"] for e in one_by_one} == {401}
    assert {e.details["client"] for e in one_by_one} == {"127.0.0.1"}
