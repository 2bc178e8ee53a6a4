"""`cdm import` as a person runs it."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.cli.test_cli import assert_one_line_error, cdm
from tests.factories import add_product


def test_import_customers_with_mapping_and_rejects(database_url, tmp_path):
    source = tmp_path / "crm export.txt"
    source.write_text(
        "ID    Given   Family    Mail\n"
        "C-1   Ada     Lovelace  ada@example.com\n"
        "C-2   Bad     Row       not-a-mail\n"
    )
    result = cdm(
        "import", "customers", str(source), "--source", "crm", "--delimiter", "whitespace",
        "--map", "external_id=ID,first_name=Given,last_name=Family,email=Mail",
        "--max-reject-rate", "0.5", env={"CDM_DATABASE_URL": database_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "rows read" in result.stdout
    rejects = tmp_path / "crm export.rejects.csv"
    assert f"Refused rows and why: {rejects}\n" in result.stdout  # on one line, whole
    with rejects.open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["line"], r["field"], r["code"]) for r in rows] == [("3", "email", "invalid_email")]


def test_import_refuses_bad_input_in_one_line(database_url, tmp_path):
    env = {"CDM_DATABASE_URL": database_url}
    assert_one_line_error(cdm("import", "planets", str(tmp_path), env=env), "unknown entity")
    missing = cdm("import", "products", str(tmp_path / "nope.csv"), env=env)
    assert_one_line_error(missing, "no such file")
    bad_currency = tmp_path / "p.csv"
    bad_currency.write_text("sku,name,category,price\nA,B,C,1\n")
    result = cdm("import", "products", str(bad_currency), "--currency", "EURO", env=env)
    assert_one_line_error(result, "EURO")
    odd = tmp_path / "odd.xyz"
    odd.write_text("x\n")
    assert_one_line_error(cdm("import", "products", str(odd), env=env), "--format")


def _rejects(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


async def _last_run(db) -> tuple[int, int, int]:
    row = await db.fetchrow(
        "SELECT rows_read, inserted, rejected FROM import_runs ORDER BY id DESC LIMIT 1"
    )
    return row["rows_read"], row["inserted"], row["rejected"]


async def _purchases_by_shop_id(db) -> list[tuple[str, str]]:
    """(purchase external id, the shop id of the customer it landed on)."""
    rows = await db.fetch(
        "SELECT p.external_id, i.value FROM purchases p JOIN identities i"
        " ON i.customer_id = p.customer_id AND i.kind = 'external_id' AND i.source = 'shop'"
        " ORDER BY 1"
    )
    return [(r["external_id"], r["value"]) for r in rows]


async def test_a_file_column_named_customer_id_is_not_read_as_ours(db, database_url, tmp_path):
    """The shop's own numeric `customer_id`, mapped to customer_external_id, must name the
    shop's customer, never CDM's customer of that number."""
    env = {"CDM_DATABASE_URL": database_url}
    await add_product(db, "SKU-1")
    people = tmp_path / "people.csv"
    # CDM numbers them 1, 2, 3 in file order: shop ids 3, 1, 2 all mean someone else in CDM.
    people.write_text("customer_id,email\n3,c@example.com\n1,a@example.com\n2,b@example.com\n")
    made = cdm("import", "customers", str(people), "--source", "shop",
               "--map", "external_id=customer_id", env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    orders = tmp_path / "orders.csv"
    lines = [f"L{n},{1 + n % 3},SKU-1,1,{n}.00,2025-01-0{1 + n % 9}" for n in range(1, 9)]
    orders.write_text("line,customer_id,sku,qty,price,date\n" + "\n".join(lines) + "\n")
    result = cdm(
        "import", "purchases", str(orders), "--source", "shop", "--currency", "EUR",
        "--map", "external_id=line,customer_external_id=customer_id,product_sku=sku,"
        "quantity=qty,unit_price=price,purchased_at=date", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert await _last_run(db) == (8, 8, 0)
    assert await _purchases_by_shop_id(db) == [(f"L{n}", str(1 + n % 3)) for n in range(1, 9)]


async def test_a_row_naming_its_customer_twice_or_by_no_customer_is_refused(
    db, database_url, tmp_path
):
    env = {"CDM_DATABASE_URL": database_url}
    cid = await db.fetchval("INSERT INTO customers (first_name) VALUES ('Ada') RETURNING id")
    await db.execute(
        "INSERT INTO identities (customer_id, kind, source, value)"
        " VALUES ($1, 'external_id', 'shop', 'S-1')", cid,
    )  # fmt: skip
    both = tmp_path / "both.csv"
    both.write_text(
        "external_id,customer_id,customer_external_id,amount,currency,purchased_at\n"
        f"P1,{cid},S-1,1.00,EUR,2025-01-01T00:00:00Z\n"
    )
    result = cdm("import", "purchases", str(both), "--source", "shop", env=env)
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    (reject,) = _rejects(tmp_path / "both.rejects.csv")
    assert (reject["field"], reject["code"]) == ("customer_id", "ambiguous_customer")
    assert "customer_external_id" in reject["reason"]
    assert await db.fetchval("SELECT count(*) FROM purchases") == 0

    erased = await db.fetchval(
        "INSERT INTO customers (erased_at) VALUES (now()) RETURNING id"
    )  # a tombstone: nothing more is recorded about them
    ids = ["999", str(erased), "abc", "99999999999999999999", "\u00b2", "0"]
    bad = tmp_path / "bad ids.csv"
    bad.write_text(
        "external_id,cust,amount,currency,purchased_at\n"
        + "".join(f"Q{n},{v},1.00,EUR,2025-01-01T00:00:00Z\n" for n, v in enumerate(ids))
        + f"OK,{cid},1.00,EUR,2025-01-01T00:00:00Z\n"
    )
    result = cdm("import", "purchases", str(bad), "--source", "shop", "--map",
                 "customer_id=cust", "--max-reject-rate", "1", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    rejects = _rejects(tmp_path / "bad ids.rejects.csv")
    assert [(r["line"], r["field"], r["code"]) for r in rejects] == [
        ("2", "customer_id", "unknown_customer"),
        ("3", "customer_id", "erased_person"),
        *((str(n), "customer_id", "invalid_id") for n in range(4, 8)),
    ]
    assert "no customer with id 999" in rejects[0]["reason"]
    assert "was erased" in rejects[1]["reason"]
    assert await db.fetchval("SELECT array_agg(external_id) FROM purchases") == ["OK"]


async def test_customers_created_at_can_be_mapped_and_only_moves_earlier(
    db, database_url, tmp_path
):
    env = {"CDM_DATABASE_URL": database_url}
    first = tmp_path / "crm.csv"
    first.write_text("Id,Mail,Since\nC-1,a@example.com,2019-05-01\nC-2,b@example.com,\n")
    args = ("import", "customers", "--source", "crm",
            "--map", "external_id=Id,email=Mail,created_at=Since")  # fmt: skip
    result = cdm(*args[:2], str(first), *args[2:], env=env)
    assert result.returncode == 0, result.stderr
    started = datetime.now(UTC)
    created = dict(await db.fetch("SELECT email, created_at FROM customers"))
    assert created["a@example.com"] == datetime(2019, 5, 1, tzinfo=UTC)
    assert created["b@example.com"].year == started.year  # no date given: today
    later = tmp_path / "crm2.csv"
    later.write_text("Id,Mail,Since\nC-1,a@example.com,2021-01-01\nC-2,b@example.com,2018-03-04\n")
    result = cdm(*args[:2], str(later), *args[2:], env=env)
    assert result.returncode == 0, result.stderr
    created = dict(await db.fetch("SELECT email, created_at FROM customers"))
    assert created == {
        "a@example.com": datetime(2019, 5, 1, tzinfo=UTC),  # a later date never moves it
        "b@example.com": datetime(2018, 3, 4, tzinfo=UTC),
    }


async def test_a_map_that_does_not_fit_is_a_usage_error(db, database_url, tmp_path):
    env = {"CDM_DATABASE_URL": database_url}
    path = tmp_path / "c.csv"
    path.write_text("Id,Mail\nC-1,a@example.com\n")
    unknown = cdm("import", "customers", str(path), "--map", "external_id=Id,signup=Mail", env=env)
    assert unknown.returncode == 2
    assert_one_line_error(unknown, "signup", "created_at", "external_id", "birth_date")
    missing = cdm("import", "customers", str(path), "--map", "email=E-Mail", env=env)
    assert missing.returncode == 2
    assert_one_line_error(missing, "'E-Mail'", "'Id', 'Mail'")
    assert await db.fetchval("SELECT count(*) FROM customers") == 0


@pytest.mark.parametrize("writers", ["1", "2", "8"])
async def test_no_customer_is_created_after_its_first_event(db, database_url, tmp_path, writers):
    """Chunks of 3 lines; every customer's earliest purchase comes in a later chunk than a
    later one, and with several writers chunks land in any order (eight: they also race to create
    the same customers)."""
    env = {"CDM_DATABASE_URL": database_url}
    lines = []
    for n in range(60):
        customer, day = f"C-{n % 10}", 28 - n // 3  # later lines: earlier dates
        lines.append(f"L{n},{customer},{n}.00,EUR,2025-01-{day:02d}T12:00:00Z")
    path = tmp_path / "late.csv"
    path.write_text("line,cust,amount,currency,at\n" + "\n".join(lines) + "\n")
    result = cdm(
        "import", "purchases", str(path), "--source", "shop", "--create-missing-customers",
        "--chunk-size", "3", "--writers", writers,
        "--map", "external_id=line,customer_external_id=cust,purchased_at=at", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert await db.fetchval("SELECT count(*) FROM customers") == 10
    late = await db.fetch(
        "SELECT c.id, c.created_at, min(p.purchased_at) AS first FROM customers c"
        " JOIN purchases p ON p.customer_id = c.id GROUP BY c.id HAVING c.created_at <>"
        " min(p.purchased_at)"
    )
    assert [tuple(r) for r in late] == []


@pytest.mark.parametrize(("delimiter", "suffix"), [(";", ".csv"), ("\t", ".tsv"), ("|", ".txt")])
async def test_the_delimiter_is_detected(db, database_url, tmp_path, delimiter, suffix):
    env = {"CDM_DATABASE_URL": database_url}
    rows = [["sku", "name", "category", "price"], ["A-1", "Mug, big", "kitchen", "4,50"],
            ["A-2", "Pan", "kitchen", "30"], ["A-3", "Pot", "kitchen", "12.5"]]  # fmt: skip
    path = tmp_path / f"products{suffix}"
    path.write_text("".join(delimiter.join(r) + "\n" for r in rows))
    result = cdm("import", "products", str(path), "--currency", "EUR", env=env)
    assert result.returncode == 0, result.stderr
    names = await db.fetch("SELECT sku, name FROM products ORDER BY sku")
    assert [tuple(r) for r in names] == [("A-1", "Mug, big"), ("A-2", "Pan"), ("A-3", "Pot")]


async def test_too_many_refused_rows_fail_the_import(db, database_url, tmp_path):
    env = {"CDM_DATABASE_URL": database_url}
    path = tmp_path / "p.csv"
    # Forced to the wrong delimiter: every row is refused.
    path.write_text("sku;name;category;price\nA;Mug;k;1\nB;Pan;k;2\n")
    result = cdm("import", "products", str(path), "--currency", "EUR", "--delimiter", ",",
                 env=env)  # fmt: skip
    assert result.returncode == 1
    assert_one_line_error(result, "all 2 rows were refused", "nothing was written")
    # One bad row in five is 20 %: over the default 10 %, within an explicit 25 %.
    path.write_text("sku,name,category,price\nA,a,k,1\nB,b,k,2\nC,c,k,x\nD,d,k,4\nE,e,k,5\n")
    result = cdm("import", "products", str(path), "--currency", "EUR", env=env)
    assert result.returncode == 1
    assert_one_line_error(
        result, "1 of 5 rows were refused", "--max-reject-rate", "4 rows accepted stay written"
    )
    assert await db.fetchval("SELECT count(*) FROM products") == 4  # those stay written
    again = cdm("import", "products", str(path), "--currency", "EUR",
                "--max-reject-rate", "0.25", env=env)  # fmt: skip
    assert again.returncode == 0, again.stderr


async def test_an_unclosed_quote_costs_one_line(db, database_url, tmp_path):
    env = {"CDM_DATABASE_URL": database_url}
    path = tmp_path / "p.csv"
    path.write_text(
        'sku,name,category,price\nA,Mug,k,1\nB,"Pan,k,2\nC,Pot,k,3\nD,"Two\nlines",k,4\n'
        'E,Lid,k,5\nF,Cup,"k,6\n'
    )
    result = cdm("import", "products", str(path), "--currency", "EUR",
                 "--max-reject-rate", "0.5", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # Six data rows (D's quoted line break is one row), two of them refused.
    assert await _last_run(db) == (6, 4, 2)
    names = await db.fetch("SELECT sku, name FROM products ORDER BY sku")
    assert [tuple(r) for r in names] == [("A", "Mug"), ("C", "Pot"), ("D", "Two lines"),
                                         ("E", "Lid")]  # fmt: skip
    rejects = _rejects(tmp_path / "p.rejects.csv")
    assert [(r["line"], r["code"], r["reason"], r["raw"]) for r in rejects] == [
        ("3", "unreadable", "has an unclosed quote", 'B,"Pan,k,2'),
        ("8", "unreadable", "has an unclosed quote", 'F,Cup,"k,6'),
    ]
