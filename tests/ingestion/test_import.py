"""Bulk import against PostgreSQL: counts add up, rejects explained, idempotent, crash-safe."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from domain.records import ParseOptions
from domain.standardize import TimeRules
from ingestion import importer
from ingestion.importer import ImportOptions, import_files
from ingestion.readers import FileFormat
from tests.factories import add_product

NOW = datetime(2025, 6, 1, tzinfo=UTC)

PURCHASES = """\
order line,customer,sku,qty,price,when
L1,C-1,SKU-1,2,10.00,20250101
L2,C-1,,1,5.50,20250102
L3,C-2,SKU-1,1,10.00,20250103
L4,C-1,SKU-404,1,1.00,20250104
L5,C-3,SKU-1,0,1.00,20250105
L6,C-2,SKU-1,1,10.00,20991231
"""
MAP = {"external_id": "order line", "customer_external_id": "customer", "product_sku": "sku",
       "quantity": "qty", "unit_price": "price", "purchased_at": "when"}  # fmt: skip


def _options(entity: str, **kw) -> ImportOptions:
    parse = ParseOptions(
        source="shop", now=NOW, default_currency="EUR", phone_region="DE",
        time=TimeRules(format=kw.pop("time_format", None)),
    )  # fmt: skip
    return ImportOptions(entity=entity, parse=parse, **kw)


async def _snapshot(db) -> dict:
    tables = {
        "customers": "SELECT id, first_name, email, phone, country FROM customers ORDER BY id",
        "identities": "SELECT customer_id, kind, source, value FROM identities ORDER BY 1,2,3,4",
        "purchases": "SELECT customer_id, external_id, product_id, quantity, amount, purchased_at"
        " FROM purchases ORDER BY 1, 2",
        "stats": "SELECT * FROM customer_purchase_stats ORDER BY customer_id",
    }
    return {name: [tuple(r) for r in await db.fetch(sql)] for name, sql in tables.items()}


async def _import(db, tmp_path, text, options, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    sink = io.StringIO()
    async with db.acquire() as conn:
        summary = await import_files(conn, [path], options, rejects=sink)
    return summary, list(csv.DictReader(io.StringIO(sink.getvalue())))


async def test_purchases_counts_add_up_and_rejects_say_why(db, tmp_path):
    await add_product(db, "SKU-1")
    options = _options("purchases", mapping=MAP, time_format="%Y%m%d",
                       create_missing_customers=True)  # fmt: skip
    summary, rejects = await _import(db, tmp_path, PURCHASES, options)
    assert (summary.read, summary.inserted, summary.updated, summary.unchanged,
            summary.rejected) == (6, 3, 0, 0, 3)  # fmt: skip
    assert summary.balanced
    reasons = {int(r["line"]): (r["field"], r["code"]) for r in rejects}
    assert reasons == {
        5: ("product_sku", "unknown_product"),
        6: ("quantity", "not_positive"),
        7: ("purchased_at", "in_future"),
    }
    assert all(r["raw"] for r in rejects)
    # C-1 and C-2 were created as minimal customers with their external ids.
    ids = await db.fetch("SELECT value FROM identities WHERE kind = 'external_id' ORDER BY 1")
    assert [r["value"] for r in ids] == ["C-1", "C-2"]
    # ... created as of their earliest purchase, so no history predates them.
    created = await db.fetch(
        "SELECT i.value, c.created_at FROM customers c JOIN identities i ON i.customer_id = c.id"
        " ORDER BY 1"
    )
    assert [r["created_at"] for r in created] == [
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 3, tzinfo=UTC),
    ]
    assert await db.fetchval("SELECT sum(amount) FROM purchases") == 35.50


async def test_unknown_customers_are_rejected_without_create_missing(db, tmp_path):
    await add_product(db, "SKU-1")
    options = _options("purchases", mapping=MAP, time_format="%Y%m%d")
    summary, rejects = await _import(db, tmp_path, PURCHASES, options)
    assert summary.inserted == 0
    assert summary.rejected == 6
    unknown = [r for r in rejects if r["code"] == "unknown_customer"]
    assert len(unknown) == 4  # the other two fail validation first
    assert "--create-missing-customers" in unknown[0]["reason"]
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


async def test_importing_twice_changes_nothing(db, tmp_path):
    await add_product(db, "SKU-1")
    options = _options("purchases", mapping=MAP, time_format="%Y%m%d",
                       create_missing_customers=True)  # fmt: skip
    await _import(db, tmp_path, PURCHASES, options)
    before = await _snapshot(db)
    again, _ = await _import(db, tmp_path, PURCHASES, options)
    assert (again.inserted, again.updated, again.unchanged, again.rejected) == (0, 0, 3, 3)
    assert await _snapshot(db) == before


async def test_changed_rows_are_updated(db, tmp_path):
    await add_product(db, "SKU-1")
    options = _options("purchases", mapping=MAP, time_format="%Y%m%d",
                       create_missing_customers=True)  # fmt: skip
    await _import(db, tmp_path, PURCHASES, options)
    changed = PURCHASES.replace("L2,C-1,,1,5.50", "L2,C-1,,1,6.50")
    summary, _ = await _import(db, tmp_path, changed, options)
    assert (summary.inserted, summary.updated, summary.unchanged) == (0, 1, 2)
    assert await db.fetchval("SELECT sum(amount) FROM purchases") == 36.50


async def test_killed_import_rerun_equals_a_clean_run(db, tmp_path, monkeypatch):
    await add_product(db, "SKU-1")
    lines = ["order line,customer,sku,qty,price,when"] + [
        f"L{i},C-{i % 7},SKU-1,1,{i}.00,202501{1 + i % 28:02d}" for i in range(1, 41)
    ]
    text = "\n".join(lines) + "\n"
    options = _options("purchases", mapping=MAP, time_format="%Y%m%d",
                       create_missing_customers=True, chunk_size=10)  # fmt: skip
    clean_summary, _ = await _import(db, tmp_path, text, options)
    clean = await _snapshot(db)
    await db.execute("TRUNCATE customers, purchases, identities, customer_purchase_stats CASCADE")

    real = importer.write_chunk
    calls = {"n": 0}

    async def dies_on_third_chunk(conn, opts, chunk, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the process is killed mid-import
        return await real(conn, opts, chunk, **kwargs)

    monkeypatch.setattr(importer, "write_chunk", dies_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        await _import(db, tmp_path, text, options)
    assert await db.fetchval("SELECT count(*) FROM purchases") == 20  # two whole chunks
    monkeypatch.setattr(importer, "write_chunk", real)
    rerun, _ = await _import(db, tmp_path, text, options)
    assert rerun.balanced
    after = await _snapshot(db)
    # Same data as the clean run; customer ids may differ, so compare by external ids.
    assert len(after["purchases"]) == len(clean["purchases"]) == clean_summary.inserted
    assert sorted(r[1:] for r in after["purchases"]) == sorted(r[1:] for r in clean["purchases"])
    runs = await db.fetch("SELECT status FROM import_runs ORDER BY id")
    assert [r["status"] for r in runs] == ["succeeded", "failed", "succeeded"]


async def test_customers_identity_resolution_and_survivorship(db, tmp_path):
    crm = """id;name;surname;mail;phone;country
C-1; Ada ;Lovelace;ADA@Example.com;030 1234567;Germany
C-2;Grace;Hopper;grace@navy.mil;;USA
C-1;Ada;King;ada@example.com;;DE
"""
    options = _options(
        "customers",
        file_format=FileFormat(delimiter=";"),
        mapping={
            "external_id": "id",
            "first_name": "name",
            "last_name": "surname",
            "email": "mail",
        },
    )
    summary, rejects = await _import(db, tmp_path, crm, options)
    assert rejects == []
    # Lines 2 and 4 are one person (same CRM id): one customer, the later line updates it.
    assert (summary.inserted, summary.updated, summary.unchanged) == (2, 1, 0)
    rows = await db.fetch(
        "SELECT first_name, last_name, email, phone, country FROM customers ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        ("Ada", "King", "ada@example.com", "+49301234567", "DE"),
        ("Grace", "Hopper", "grace@navy.mil", None, "US"),
    ]
    # A web sign-up with Ada's e-mail is matched to her, not created anew.
    web = "email,first_name\nada@EXAMPLE.com,Adah\n"
    web_options = _options("customers")
    web_options = ImportOptions(entity="customers", parse=ParseOptions(source="web", now=NOW))
    summary, _ = await _import(db, tmp_path, web, web_options, name="web.csv")
    assert (summary.inserted, summary.updated) == (0, 1)
    assert await db.fetchval("SELECT count(*) FROM customers") == 2
    sources = await db.fetchval(
        "SELECT field_sources FROM customers WHERE email = 'ada@example.com'"
    )
    assert sources["first_name"]["source"] == "web"
    assert sources["last_name"]["source"] == "shop"


@pytest.mark.parametrize("kind", ["whitespace", "headerless", "jsonl", "parquet"])
async def test_input_formats(db, tmp_path, kind):
    rows = [("P-1", "Mug", "Kitchen", "4.50"), ("P-2", "Pan", "Kitchen", "30")]
    names = ["sku", "name", "category", "price"]
    fmt = FileFormat()
    if kind == "whitespace":
        path = tmp_path / "p.txt"
        path.write_text("sku   name\tcategory price\n" + "\n".join("  ".join(r) for r in rows))
        fmt = FileFormat(delimiter="whitespace")
    elif kind == "headerless":
        path = tmp_path / "p.csv"
        path.write_text("\n".join(",".join(r) for r in rows) + "\n")
        fmt = FileFormat(header=False, columns=tuple(names))
    elif kind == "jsonl":
        import orjson

        path = tmp_path / "p.jsonl"
        path.write_bytes(b"\n".join(orjson.dumps(dict(zip(names, r, strict=True))) for r in rows))
    else:
        path = tmp_path / "p.parquet"
        pq.write_table(pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}), path)
    options = _options("products", file_format=fmt)
    async with db.acquire() as conn:
        summary = await import_files(conn, [path], options)
    assert (summary.read, summary.inserted) == (2, 2)
    prices = await db.fetch("SELECT sku, price, category, currency FROM products ORDER BY sku")
    assert [tuple(r) for r in prices] == [
        ("P-1", pytest.approx(4.5), "kitchen", "EUR"),
        ("P-2", pytest.approx(30), "kitchen", "EUR"),
    ]


async def test_unreadable_lines_are_rejected_not_dropped(db, tmp_path):
    text = "sku,name,category,price\nA,Mug,k,1\nB,only two\n"
    summary, rejects = await _import(db, tmp_path, text, _options("products"))
    assert (summary.read, summary.inserted, summary.rejected) == (2, 1, 1)
    assert rejects[0]["line"] == "3"
    assert rejects[0]["code"] == "unreadable"
    assert rejects[0]["raw"] == "B,only two"  # the text as found, not an empty column


async def test_every_write_dates_its_customer_back_to_the_earliest_event(db):
    """API batches and import chunks share the writer: an event older than the customer
    moves the customer's created_at back to it, never forward."""
    from ingestion.writes import write_batch
    from tests.factories import add_customer

    cid = await add_customer(db, created_at=datetime(2025, 5, 1, tzinfo=UTC))
    ref = {"customer_id": str(cid), "currency": "EUR"}
    steps = [
        ("interactions", {"external_id": "i", "occurred_at": "2025-04-01T00:00:00Z",
                          "channel": "web", "kind": "visit"}, datetime(2025, 4, 1)),
        ("purchases", {"external_id": "p", "amount": "1", "purchased_at":
                       "2025-03-01T00:00:00Z"}, datetime(2025, 3, 1)),
        ("consents", {"purpose": "email", "granted": "yes", "recorded_at":
                      "2025-02-01T00:00:00Z"}, datetime(2025, 2, 1)),
        ("purchases", {"external_id": "q", "amount": "1", "purchased_at":
                       "2025-04-15T00:00:00Z"}, datetime(2025, 2, 1)),  # later: no change
    ]  # fmt: skip
    for entity, item, expected in steps:
        async with db.acquire() as conn:
            outcome = await write_batch(conn, _options(entity), [{**ref, **item}])
        assert outcome.written, outcome.errors
        created = await db.fetchval("SELECT created_at FROM customers WHERE id = $1", cid)
        assert created == expected.replace(tzinfo=UTC), entity
    # A refused line (unknown product) was not written: it does not date the customer.
    refused = {**ref, "external_id": "r", "amount": "1", "product_sku": "NOPE",
               "purchased_at": "2024-01-01T00:00:00Z"}  # fmt: skip
    async with db.acquire() as conn:
        outcome = await write_batch(conn, _options("purchases"), [refused], partial=True)
    assert [e.code for e in outcome.errors[0]] == ["unknown_product"]
    created = await db.fetchval("SELECT created_at FROM customers WHERE id = $1", cid)
    assert created == datetime(2025, 2, 1, tzinfo=UTC)


def test_missing_file_is_a_clear_error(tmp_path: Path):
    from ingestion.readers import InputError, read_chunks

    with pytest.raises(InputError, match="no such file"):
        next(read_chunks(tmp_path / "nope.csv", FileFormat(), 10))


async def test_two_writers_give_the_same_result(db, database_url, tmp_path):
    from sql.database import connect

    await add_product(db, "SKU-1")
    lines = ["order line,customer,sku,qty,price,when"] + [
        f"L{i},C-{i % 13},SKU-1,1,{i}.00,202501{1 + i % 28:02d}" for i in range(1, 201)
    ]
    path = tmp_path / "many.csv"
    path.write_text("\n".join(lines) + "\n")
    options = _options("purchases", mapping=MAP, time_format="%Y%m%d",
                       create_missing_customers=False, chunk_size=15)  # fmt: skip
    for i in range(13):
        cid = await db.fetchval("INSERT INTO customers (first_name) VALUES ('x') RETURNING id")
        await db.execute(
            "INSERT INTO identities (customer_id, kind, source, value)"
            " VALUES ($1, 'external_id', 'shop', $2)", cid, f"C-{i}",
        )  # fmt: skip
    extra = await connect(database_url)
    try:
        async with db.acquire() as conn:
            summary = await import_files(conn, [path], options, extra_connections=[extra])
    finally:
        await extra.close()
    assert (summary.read, summary.inserted, summary.rejected) == (200, 200, 0)
    mismatches = await db.fetchval(
        """SELECT count(*) FROM customer_purchase_stats s
            JOIN (SELECT customer_id, count(*) n, sum(amount) total FROM purchases
                   GROUP BY customer_id) p USING (customer_id)
           WHERE s.purchase_count <> p.n OR s.total_spend <> p.total"""
    )
    assert mismatches == 0


def test_reading_sniffs_the_delimiter_and_accounts_for_every_line(tmp_path: Path):
    from ingestion.readers import Unreadable, read_chunks, source_columns

    excel = tmp_path / "excel.csv"  # a byte-order mark, semicolons, CRLF line ends
    excel.write_bytes(b'\xef\xbb\xbfsku;name\r\nA;"Mug; big"\r\nB;"Pan\r\n')
    assert source_columns(excel, FileFormat()) == ["sku", "name"]
    (chunk,) = read_chunks(excel, FileFormat(), 10)
    assert chunk == [
        (2, {"sku": "A", "name": "Mug; big"}, None),
        (3, None, Unreadable("has an unclosed quote", 'B;"Pan')),
    ]
    single = tmp_path / "emails.csv"  # one column: nothing to sniff, read as CSV
    single.write_text("email\na@example.com\n\nb@example.com\n")
    (chunk,) = read_chunks(single, FileFormat(), 10)
    assert [(n, row) for n, row, _ in chunk] == [
        (2, {"email": "a@example.com"}),
        (4, {"email": "b@example.com"}),
    ]
