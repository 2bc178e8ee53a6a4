"""Duplicate candidates, merges and exact undo against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import pytest

from domain.merging import Conflicted, Merged, MergePlan, MergeRequest, Refused, Unmerged
from domain.survivorship import Policy, Rule
from sql.identity import duplicate_candidates, merge_customers, unmerge_customers
from sql.queries import names, query
from tests.factories import (
    T0,
    add_consent,
    add_customer,
    add_identity,
    add_interaction,
    add_product,
    add_purchase,
    days,
)

POLICY = Policy(Rule.MOST_RECENT)
TABLES = ("purchases", "interactions", "identities", "consents")


def sources(**fields: tuple[str, object]) -> dict:
    return {f: {"source": s, "at": at.isoformat()} for f, (s, at) in fields.items()}


async def snapshot(db, ids: list[int]) -> dict[str, list[str]]:
    """Every row of the involved customers, the whole stats and alias tables, as jsonb text
    (so numbers are compared digit for digit, not as floats)."""
    snap = {
        "customers": await db.fetch(
            "SELECT to_jsonb(t)::text AS r FROM customers t WHERE id = ANY($1) ORDER BY id", ids
        ),
        "stats": await db.fetch(
            "SELECT to_jsonb(t)::text AS r FROM customer_purchase_stats t ORDER BY customer_id"
        ),
        "aliases": await db.fetch(
            "SELECT to_jsonb(t)::text AS r FROM customer_aliases t ORDER BY merged_id"
        ),
    }
    for table in TABLES:
        snap[table] = await db.fetch(
            f"SELECT to_jsonb(t)::text AS r FROM {table} t WHERE customer_id = ANY($1) ORDER BY id",
            ids,
        )
    return {k: [r["r"] for r in rows] for k, rows in snap.items()}


async def merge(db, survivor: int, *merged: int, dry_run: bool = False, actor: str = "test"):
    return await merge_customers(
        db, MergeRequest(survivor, tuple(merged)), POLICY, actor, dry_run=dry_run
    )


def test_every_identity_statement_is_named():
    for name in ("dedupe_pairs", "merge_record", "unmerge_state", "unmerge_restore_dropped"):
        assert name in names()


async def test_every_identity_statement_prepares(db):
    async with db.acquire() as conn:
        for name in names():
            if name.startswith(("dedupe_", "merge_", "unmerge_")):
                await conn.prepare(query(name))


# --- candidates -------------------------------------------------------------------------


async def test_candidates_found_by_blocking_and_scored(db):
    anna = await add_customer(db, first_name="Anna", last_name="Schmidt", country="DE",
                              email="anna.schmidt@gmail.com")  # fmt: skip
    anna2 = await add_customer(db, first_name="Anna", last_name="Schmitt", country="DE",
                               email="annaschmidt+shop@gmail.com")  # fmt: skip
    jon = await add_customer(db, first_name="Jon", last_name="Smith", phone="+4930123456")
    john = await add_customer(db, first_name="John", last_name="Smith", phone="+4930123456")
    # Same name and phone, different birth dates: never the same person.
    await add_customer(db, first_name="Eva", last_name="Braun", phone="+4930999999",
                       birth_date=date(1990, 1, 1))  # fmt: skip
    await add_customer(db, first_name="Eva", last_name="Braun", phone="+4930999999",
                       birth_date=date(1991, 1, 1))  # fmt: skip
    # A household sharing a phone: the first names disagree, 0.5.
    await add_customer(db, first_name="Max", last_name="Weber", phone="+4940111111")
    await add_customer(db, first_name="Ida", last_name="Weber", phone="+4940111111")

    found = await duplicate_candidates(db, first=10, min_score=0.8)

    assert [(c.a.id, c.b.id) for c in found] == [(jon, john), (anna, anna2)]
    smiths, schmidts = found
    assert smiths.comparison.score == 0.9667
    assert set(smiths.keys) == {"phone_suffix", "name_prefix"}
    assert [(e.field, e.similarity, e.kind.value) for e in smiths.comparison.evidence] == [
        ("name", 0.9333, "fuzzy"), ("phone", 1.0, "exact"), ("country", 1.0, "exact"),
    ]  # fmt: skip
    assert schmidts.comparison.score == 0.9565
    assert "email_local" in schmidts.keys
    email = schmidts.comparison.evidence[1]
    assert (email.field, email.a_value, email.b_value, email.similarity) == (
        "email", "anna.schmidt@gmail.com", "annaschmidt+shop@gmail.com", 0.97,
    )  # fmt: skip

    lower = await duplicate_candidates(db, first=10, min_score=0.5)
    assert len(lower) == 3  # the household now, the Brauns never
    assert {lower[2].a.first_name, lower[2].b.first_name} == {"Max", "Ida"}
    assert lower[2].comparison.score == 0.5


async def test_big_blocks_propose_no_pairs(db):
    # 60 customers share the e-mail local part "info": the key says nothing about identity.
    for i in range(60):
        await add_customer(db, first_name=f"F{i}", last_name=f"L{i}", email=f"info@shop{i}.de")
    a = await add_customer(db, first_name="Ada", last_name="King", email="info@king.de")
    b = await add_customer(db, first_name="Ada", last_name="King", email="info@king.com")
    pairs = await db.fetch(query("dedupe_pairs"), 50, 10, 1000, 0.6)
    assert not [r for r in pairs if "email_local" in r["keys"]]
    assert [list(r["keys"]) for r in pairs if (r["a_id"], r["b_id"]) == (a, b)] == [
        ["name", "name_prefix"]
    ]
    # (Neighbouring addresses such as info@shop1.de and info@shop10.de still pair up.)
    assert {tuple(r["keys"]) for r in pairs} == {("name", "name_prefix"), ("email_neighbour",)}


async def test_common_names_alone_propose_no_pairs(db):
    # Eleven namesakes: more than MAX_NAME_BLOCK_SIZE, so only an identifier key pairs them.
    ids = [
        await add_customer(db, first_name="John", last_name="Smith", email=email)
        for email in ("js@a.com", "john@b.org", "smith@c.net", "j.s@d.de", "jsm@e.fr",
                      "jo@f.it", "sm@g.es", "jj@h.at", "ss@i.ch", "js1@j.be", "x@k.nl")
    ]  # fmt: skip
    await db.execute("UPDATE customers SET phone = '+4930123456' WHERE id = ANY($1)", ids[:2])
    pairs = await db.fetch(query("dedupe_pairs"), 50, 10, 1000, 0.6)
    assert [(r["a_id"], r["b_id"], list(r["keys"])) for r in pairs] == [
        (ids[0], ids[1], ["phone_suffix"])
    ]


async def test_neighbouring_addresses_pair_up_when_alike(db):
    # A typo late in the address and in the last name: no shared key but the neighbour one.
    a = await add_customer(db, first_name="Lars", last_name="Kowalski", country="DE",
                           email="lars.kowalski.1971@example.net")  # fmt: skip
    b = await add_customer(db, first_name="Lars", last_name="Kowalksi", country="DE",
                           email="lars.kowalski.1971x@example.net")  # fmt: skip
    await add_customer(db, first_name="Zoe", email="zoe@example.net")  # next, but not alike
    pairs = await db.fetch(query("dedupe_pairs"), 50, 10, 1000, 0.6)
    assert [(r["a_id"], r["b_id"], list(r["keys"])) for r in pairs] == [
        (a, b, ["email_neighbour", "name_prefix"])
    ]
    found = await duplicate_candidates(db, first=5, min_score=0.8)
    assert [(c.a.id, c.b.id, c.comparison.score) for c in found] == [(a, b, 0.9375)]


async def test_pair_budget_keeps_pairs_sharing_most_keys(db):
    a = await add_customer(db, first_name="Ada", last_name="King", email="ada@king.de")
    b = await add_customer(db, first_name="Ada", last_name="King", email="ada@king.de")
    c = await add_customer(db, first_name="Ada", last_name="Kingsley")
    pairs = await db.fetch(query("dedupe_pairs"), 50, 10, 1, 0.6)
    assert [(r["a_id"], r["b_id"]) for r in pairs] == [(a, b)]
    assert sorted(pairs[0]["keys"]) == ["email", "email_local", "name", "name_prefix"]
    everything = await db.fetch(query("dedupe_pairs"), 50, 10, 10, 0.6)
    assert {(r["a_id"], r["b_id"]) for r in everything} == {(a, b), (a, c), (b, c)}


async def test_candidates_for_one_customer_use_trigram_similarity(db):
    target = await add_customer(db, first_name="Margarethe", last_name="Oberhuber",
                                email="m.oberhuber@example.at", country="AT")  # fmt: skip
    # No key shared with the target (a typo in the name and in the e-mail), similar text.
    typo = await add_customer(db, first_name="Margarete", last_name="Oberhuber",
                              email="m.oberhubr@example.at", country="AT")  # fmt: skip
    other = await add_customer(db, first_name="Zoe", last_name="Quast", email="zq@q.de")
    found = await duplicate_candidates(db, first=5, min_score=0.8, customer_id=target)
    assert [(c.a.id, c.b.id) for c in found] == [(target, typo)]
    assert found[0].keys == ("similar_text",)
    assert found[0].comparison.score >= 0.9
    assert other not in {c.b.id for c in found}

    # A merged id stands for its survivor.
    merged = await merge(db, typo, other)
    assert isinstance(merged, Merged)
    again = await duplicate_candidates(db, first=5, min_score=0.8, customer_id=other)
    assert [(c.a.id, c.b.id) for c in again] == [(typo, target)]
    assert await duplicate_candidates(db, first=5, min_score=0.8, customer_id=999) == []


# --- merge --------------------------------------------------------------------------------


async def test_merge_moves_rows_decides_fields_and_records_everything(db):
    survivor = await add_customer(
        db, first_name="Ada", last_name="Lovelace", email="ada@old.example", phone=None,
        created_at=T0 + days(10),
        field_sources=sources(email=("crm", T0), first_name=("crm", T0)),
    )  # fmt: skip
    other = await add_customer(
        db, first_name="Ada", last_name="Lovelace", email="ada@new.example",
        phone="+442071234567", created_at=T0,
        field_sources=sources(email=("shop", T0 + days(5)), phone=("shop", T0 + days(5))),
    )  # fmt: skip
    book = await add_product(db, "B-1")
    await add_purchase(db, survivor, T0 + days(1), "10.00", product_id=book, external_id="o-1")
    dup = await add_purchase(db, other, T0 + days(1), "99.00", external_id="o-1")  # same key
    moved = await add_purchase(db, other, T0 + days(2), "5.00", product_id=book, external_id="o-2")
    await add_interaction(db, other, T0 + days(3), "complaint", "support", {"x": 1})
    await add_identity(db, other, "email", "shop", "ada@new.example")
    await add_consent(db, other, "email_marketing", True, T0 + days(4))

    plan = await merge(db, survivor, other, dry_run=True)
    assert isinstance(plan, MergePlan)
    decided = {f.field: f for f in plan.fields}
    assert decided["email"].value == "ada@new.example"
    assert decided["email"].customer_id == other
    assert decided["email"].reason == "most_recent: newer observation"
    assert decided["phone"].reason == "field was empty"
    assert decided["first_name"].value == "Ada"
    assert decided["first_name"].changed is False
    move = plan.moves[0]
    assert (move.moved.purchases, move.dropped.purchases) == (1, 1)
    assert (move.moved.interactions, move.moved.identities, move.moved.consents) == (1, 1, 1)
    assert [(d.table, d.key, d.dropped_id) for d in plan.duplicates] == [
        ("purchases", "shop / o-1", dup)
    ]
    assert await db.fetchval("SELECT count(*) FROM merges") == 0  # a dry run writes nothing

    done = await merge(db, survivor, other, actor="alice")
    assert isinstance(done, Merged)

    row = await db.fetchrow("SELECT * FROM customers WHERE id = $1", survivor)
    assert (row["email"], row["phone"], row["created_at"]) == (
        "ada@new.example", "+442071234567", T0,
    )  # fmt: skip
    assert row["field_sources"] == {
        "email": {"source": "shop", "at": (T0 + days(5)).isoformat()},
        "phone": {"source": "shop", "at": (T0 + days(5)).isoformat()},
        "first_name": {"source": "crm", "at": T0.isoformat()},
    }
    assert await db.fetchval("SELECT count(*) FROM customers WHERE id = $1", other) == 0
    purchases = await db.fetch(
        "SELECT id, amount FROM purchases WHERE customer_id = $1 ORDER BY id", survivor
    )
    assert [r["id"] for r in purchases] == [moved - 2, moved]
    assert [r["amount"] for r in purchases] == [Decimal("10.00"), Decimal("5.00")]
    stats = await db.fetchrow("SELECT * FROM customer_purchase_stats WHERE customer_id = $1",
                              survivor)  # fmt: skip
    assert (stats["purchase_count"], stats["total_spend"]) == (2, Decimal("15.00"))
    assert await db.fetchval("SELECT count(*) FROM customer_purchase_stats") == 1
    for table in ("interactions", "identities", "consents"):
        owners = await db.fetch(f"SELECT DISTINCT customer_id FROM {table}")
        assert [r["customer_id"] for r in owners] == [survivor]
    alias = await db.fetchrow("SELECT * FROM customer_aliases")
    assert (alias["merged_id"], alias["customer_id"], alias["merge_id"]) == (
        other, survivor, done.merge_id,
    )  # fmt: skip

    record = await db.fetchrow("SELECT * FROM merges WHERE id = $1", done.merge_id)
    assert record["merged_by"] == "alice"
    assert record["merged_ids"] == [other]
    assert record["evidence"][0]["bId"] == other
    assert record["plan"]["fields"][2]["field"] == "email"
    images = record["before_images"]
    assert images["survivor"]["email"] == "ada@old.example"
    assert images["merged"][0]["id"] == other
    assert images["merged"][0]["field_sources"]["phone"]["source"] == "shop"
    assert [p["id"] for p in images["dropped"]["purchases"]] == [dup]
    assert images["dropped"]["purchases"][0]["amount"] == 99.0
    assert images["moved"]["purchases"] == [{"id": moved, "customer_id": other}]
    assert len(images["moved"]["identities"]) == 1


async def test_merge_refuses_unknown_and_merged_ids(db):
    a = await add_customer(db)
    b = await add_customer(db)
    c = await add_customer(db)
    assert isinstance(await merge(db, a, b), Merged)
    refused = await merge(db, c, 999, b)
    assert isinstance(refused, Refused)
    assert [(e.field, e.code) for e in refused.errors] == [
        ("mergedIds.0", "unknown_customer"), ("mergedIds.1", "already_merged"),
    ]  # fmt: skip
    assert f"merged into customer {a}" in refused.errors[1].message
    refused = await merge(db, b, c)
    assert [(e.field, e.code) for e in refused.errors] == [("survivorId", "already_merged")]


async def test_concurrent_opposite_merges_do_not_both_happen(db):
    a = await add_customer(db)
    b = await add_customer(db)
    first, second = await asyncio.gather(merge(db, a, b), merge(db, b, a))
    outcomes = sorted([type(first).__name__, type(second).__name__])
    assert outcomes == ["Merged", "Refused"]
    assert await db.fetchval("SELECT count(*) FROM customers") == 1
    assert await db.fetchval("SELECT count(*) FROM merges") == 1


# --- undo -----------------------------------------------------------------------------------


async def _rich_customers(db) -> tuple[int, int, int]:
    """A survivor and two customers to merge, with colliding rows of every kind."""
    s = await add_customer(db, first_name="Ada", email="ada@a.example",
                           field_sources=sources(email=("crm", T0)))  # fmt: skip
    m1 = await add_customer(db, first_name="Ada", last_name="Byron", phone="+442071234567",
                            created_at=T0 - days(30), updated_at=T0 + days(1),
                            field_sources=sources(phone=("shop", T0 + days(1))))  # fmt: skip
    m2 = await add_customer(db, first_name="Augusta", email="augusta@a.example",
                            country="FR", created_at=T0 - days(3))  # fmt: skip
    book = await add_product(db, "B-1", "books")
    pen = await add_product(db, "P-1", "office")
    for cid, amount in ((s, "1.10"), (m1, "2.20"), (m2, "3.30")):
        await add_purchase(db, cid, T0 + days(1), amount, product_id=book, external_id="same")
        await add_purchase(db, cid, T0 + days(2), amount, product_id=pen, order_ref=f"o{cid}")
        await add_interaction(db, cid, T0 + days(3), "page_view", "web", {"n": [1, 2]})
        # A number a float cannot hold: the undo must give it back digit for digit.
        await db.execute(
            "INSERT INTO interactions (customer_id, occurred_at, channel, kind, properties,"
            " source, external_id) VALUES ($1, $2, 'web', 'scroll',"
            " '{\"depth\": 0.1000000000000000055511151231257827}'::jsonb, 'web', $3)",
            cid, T0 + days(3), f"scroll-{cid}",
        )  # fmt: skip
    # The same interaction id (source, external id) on two merged customers.
    for cid in (m1, m2):
        await db.execute(
            "INSERT INTO interactions (customer_id, occurred_at, channel, kind, source,"
            " external_id) VALUES ($1, $2, 'email', 'opened', 'mail', 'm-1')",
            cid, T0 + days(cid),
        )  # fmt: skip
        await add_consent(db, cid, "email_marketing", cid == m1, T0 + days(4))
        await add_identity(db, cid, "external_id", "crm", f"CRM-{cid}")
    await add_consent(db, s, "email_marketing", False, T0 + days(4))
    return s, m1, m2


async def test_unmerge_is_exact(db):
    s, m1, m2 = await _rich_customers(db)
    # An older merge whose alias points at m1: the merge re-points it, the undo restores it.
    old = await add_customer(db, first_name="Old")
    assert isinstance(await merge(db, m1, old), Merged)
    involved = [s, m1, m2, old]
    before = await snapshot(db, involved)

    done = await merge(db, s, m1, m2)
    assert isinstance(done, Merged)
    assert await snapshot(db, involved) != before
    assert await db.fetchval("SELECT array_agg(id) FROM customers WHERE id = ANY($1)",
                             involved) == [s]  # fmt: skip
    aliases = await db.fetch("SELECT merged_id, customer_id FROM customer_aliases")
    assert {r["merged_id"]: r["customer_id"] for r in aliases} == {old: s, m1: s, m2: s}
    # Kept once: the survivor's "same" purchase and consent, m1's "m-1" interaction.
    assert sorted(d.table for d in done.plan.duplicates) == [
        "consents", "consents", "interactions", "purchases", "purchases",
    ]  # fmt: skip
    assert await db.fetchval("SELECT count(*) FROM purchases") == 4
    stats = await db.fetch("SELECT customer_id, purchase_count FROM customer_purchase_stats")
    assert [tuple(r) for r in stats] == [(s, 4)]
    depth = "SELECT properties->>'depth' FROM interactions WHERE kind = 'scroll' ORDER BY id"
    assert await db.fetchval(depth) == "0.1000000000000000055511151231257827"

    undone = await unmerge_customers(db, done.merge_id, "bob")
    assert undone == Unmerged(done.merge_id, s, (m1, m2))
    after = await snapshot(db, involved)
    assert after == before
    record = await db.fetchrow("SELECT undone_at, undone_by FROM merges WHERE id = $1",
                               done.merge_id)  # fmt: skip
    assert record["undone_by"] == "bob"
    assert record["undone_at"] is not None


async def test_unmerge_refusals(db):
    s, m1, m2 = await _rich_customers(db)
    first = await merge(db, s, m1)
    later = await merge(db, s, m2)
    assert isinstance(first, Merged)
    assert isinstance(later, Merged)

    blocked = await unmerge_customers(db, first.merge_id, "bob")
    assert isinstance(blocked, Conflicted)
    assert blocked.code == "later_merge"
    assert str(later.merge_id) in blocked.message

    assert isinstance(await unmerge_customers(db, later.merge_id, "bob"), Unmerged)
    again = await unmerge_customers(db, later.merge_id, "bob")
    assert isinstance(again, Conflicted)
    assert again.code == "already_undone"

    # Someone changes the survivor after the merge: restoring it would lose that change.
    await db.execute("UPDATE customers SET last_name = 'King', updated_at = now() WHERE id = $1", s)
    changed = await unmerge_customers(db, first.merge_id, "bob")
    assert isinstance(changed, Conflicted)
    assert changed.code == "survivor_changed"

    unknown = await unmerge_customers(db, 12345, "bob")
    assert isinstance(unknown, Refused)
    assert [(e.field, e.code) for e in unknown.errors] == [("mergeId", "unknown_merge")]


async def test_unmerge_refuses_when_moved_rows_are_gone(db):
    s, m1, _ = await _rich_customers(db)
    done = await merge(db, s, m1)
    await db.execute("DELETE FROM identities WHERE value = $1", f"CRM-{m1}")
    refused = await unmerge_customers(db, done.merge_id, "bob")
    assert isinstance(refused, Conflicted)
    assert refused.code == "rows_changed"
    assert refused.message.startswith("1 rows")


async def test_alias_chains_never_form_and_undo_in_reverse_order(db):
    a = await add_customer(db)
    b = await add_customer(db)
    c = await add_customer(db)
    before = await snapshot(db, [a, b, c])
    first = await merge(db, a, b)  # b -> a
    second = await merge(db, c, a)  # a -> c; b must now point at c directly
    aliases = await db.fetch("SELECT merged_id, customer_id FROM customer_aliases ORDER BY 1")
    assert [tuple(r) for r in aliases] == [(a, c), (b, c)]
    resolved = await db.fetch(query("customers_by_ids"), [a, b, c])
    assert {r["requested_id"]: r["id"] for r in resolved} == {a: c, b: c, c: c}

    assert isinstance(await unmerge_customers(db, second.merge_id, "t"), Unmerged)
    aliases = await db.fetch("SELECT merged_id, customer_id FROM customer_aliases ORDER BY 1")
    assert [tuple(r) for r in aliases] == [(b, a)]
    assert isinstance(await unmerge_customers(db, first.merge_id, "t"), Unmerged)
    assert await snapshot(db, [a, b, c]) == before


@pytest.mark.parametrize(
    ("rule", "trust", "expected"),
    [
        (Rule.MOST_RECENT, (), "new@x.example"),
        (Rule.MOST_TRUSTED, ("crm", "shop"), "old@x.example"),
        (Rule.NON_EMPTY, (), "old@x.example"),
    ],
)
async def test_the_configured_policy_decides(db, rule, trust, expected):
    s = await add_customer(db, email="old@x.example", field_sources=sources(email=("crm", T0)))
    m = await add_customer(db, email="new@x.example",
                           field_sources=sources(email=("shop", T0 + days(1))))  # fmt: skip
    done = await merge_customers(db, MergeRequest(s, (m,)), Policy(rule, trust), "t")
    assert isinstance(done, Merged)
    assert await db.fetchval("SELECT email FROM customers WHERE id = $1", s) == expected
