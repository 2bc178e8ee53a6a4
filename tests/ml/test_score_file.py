"""`cdm score --all --output`: a file other systems can join back, and `--top N`.

The file names each customer by the external id an import brought (or the seed's CRM id)
and each recommended product by its SKU; `--top N` keeps each customer's best N, in the
table and in the file alike.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sql.database import connect
from tests.cli.test_cli import assert_one_line_error, cdm
from tests.ml.conftest import SEED_NOW, cli_env, copy_store, seeded_database

AT = SEED_NOW.isoformat()
CUSTOMERS = 600

# Seeded customers: their e-mail, whether they have the seed's CRM id (85 % do), and whether
# the models may score them (not objecting to profiling; see modelled_customers).
CUSTOMER_FACTS = """
SELECT c.id, c.email, EXISTS (SELECT 1 FROM identities i WHERE i.customer_id = c.id
                                 AND i.kind = 'external_id') AS has_crm,
       c.id IN (SELECT id FROM modelled_customers) AS modelled
  FROM customers c ORDER BY c.id"""


async def _fetch(url: str, sql: str) -> list[Any]:
    conn = await connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def _import_erp(path: Path, rows: list[tuple[str, str]], env: dict[str, str]) -> None:
    """`cdm import customers` of (external id, e-mail) rows from an ERP: each matches its
    seeded customer by e-mail, which gains the ERP id as an identity."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["external_id", "email"])
        writer.writerows(rows)
    result = cdm("import", "customers", str(path), "--source", "erp", "--delimiter", ",", env=env)
    assert result.returncode == 0, result.stderr


def _stored_lists(rows: list[Any]) -> dict[int, list[int]]:
    return {r["customer_id"]: list(r["recommended_product_ids"]) for r in rows}


@pytest.fixture(scope="module")
async def runs(server_url, champions_dir, tmp_path_factory) -> dict[str, Any]:
    """ERP ids imported for some customers, then two runs: the defaults to Parquet, and
    `--top 3 --id-source erp` to CSV; what each wrote and stored."""
    async with seeded_database(server_url, "cdm_file", customers=CUSTOMERS, seed=13) as url:
        data_dir = copy_store(champions_dir, tmp_path_factory.mktemp("file") / "data")
        env = cli_env(url, data_dir)
        people = await _fetch(url, CUSTOMER_FACTS)
        scored = [r for r in people if r["modelled"] and r["email"]]
        with_crm = [r for r in scored if r["has_crm"]][:40]
        without_crm = [r for r in scored if not r["has_crm"]][:10]
        # Separators and quotes in the ids: the CSV file must still read back as written.
        erp = {r["id"]: f'ERP/{r["id"]:05d}; Müller, "B"' for r in with_crm + without_crm}
        emails = {r["id"]: r["email"] for r in people}
        _import_erp(data_dir / "erp.csv", [(erp[i], emails[i]) for i in erp], env)
        # A later second ERP id for one customer: the file keeps the earlier one.
        twice = with_crm[0]["id"]
        _import_erp(data_dir / "erp-later.csv", [(f"ERP-LATER-{twice}", emails[twice])], env)

        default = data_dir / "scores.parquet"
        first = cdm("score", "--all", "--as-of", AT, "--output", str(default), env=env,
                    timeout=600)  # fmt: skip
        assert first.returncode == 0, first.stderr
        stored_default = _stored_lists(
            await _fetch(url, "SELECT customer_id, recommended_product_ids FROM customer_scores")
        )
        top3 = data_dir / "top3.csv"
        second = cdm("score", "--all", "--as-of", AT, "--top", "3", "--id-source", "erp",
                     "--output", str(top3), env=env, timeout=600)  # fmt: skip
        assert second.returncode == 0, second.stderr
        stored_top3 = _stored_lists(
            await _fetch(url, "SELECT customer_id, recommended_product_ids FROM customer_scores")
        )
        with top3.open(newline="") as f:
            written_top3 = list(csv.DictReader(f))
        yield {
            "erp": erp, "twice": twice, "with_crm": {r["id"] for r in people if r["has_crm"]},
            "default": pq.read_table(default), "stored_default": stored_default,
            "top3": written_top3, "stored_top3": stored_top3, "stdout": second.stdout,
            "skus": {r["id"]: r["sku"] for r in await _fetch(url, "SELECT id, sku FROM products")},
        }  # fmt: skip


def test_the_default_file_names_customers_by_their_earliest_external_id(runs):
    rows = runs["default"].to_pylist()
    assert runs["default"].schema.field("external_id").type == pa.string()
    assert len(rows) == len(runs["stored_default"])
    seen = {"crm": 0, "erp": 0, "none": 0}
    for row in rows:
        cid = row["customer_id"]
        if cid in runs["with_crm"]:  # the seed's CRM id predates any import
            assert (row["external_id"], row["external_id_source"]) == (f"CRM-{cid:07d}", "crm")
            seen["crm"] += 1
        elif cid in runs["erp"]:  # no CRM id: the imported ERP id is the only one
            assert (row["external_id"], row["external_id_source"]) == (runs["erp"][cid], "erp")
            seen["erp"] += 1
        else:
            assert (row["external_id"], row["external_id_source"]) == (None, None)
            seen["none"] += 1
    assert seen["crm"] > CUSTOMERS // 2
    assert seen["erp"] > 0
    assert seen["none"] > 0


def test_skus_name_the_recommended_products_in_order(runs):
    rows = runs["default"].to_pylist()
    assert runs["default"].schema.field("recommended_skus").type.value_type == pa.string()
    ranked = [r for r in rows if r["recommended_product_ids"]]
    assert len(ranked) > len(rows) // 2
    for row in rows:
        ids = row["recommended_product_ids"]
        assert ids == runs["stored_default"][row["customer_id"]]
        assert len(ids) <= 5
        assert row["recommended_skus"] == [runs["skus"][p] for p in ids]
    assert sum(len(r["recommended_product_ids"]) == 5 for r in ranked) > len(ranked) // 2


def test_id_source_writes_the_imported_ids_of_that_source(runs):
    written = {int(r["customer_id"]): r for r in runs["top3"]}
    imported = runs["erp"]
    assert imported.keys() <= written.keys()
    for cid, row in written.items():
        expected = (imported[cid], "erp") if cid in imported else ("", "")
        assert (row["external_id"], row["external_id_source"]) == expected, cid
    assert runs["twice"] in imported  # its later ERP id is not the one written
    assert f"{len(imported):,} of {len(written):,} with an external id of source 'erp'" in (
        " ".join(runs["stdout"].split())
    )


def test_top_3_keeps_the_first_3_of_the_default_ranking_stored_and_written(runs):
    default = {r["customer_id"]: r["recommended_product_ids"] for r in runs["default"].to_pylist()}
    written = {int(r["customer_id"]): r for r in runs["top3"]}
    assert written.keys() == default.keys() == runs["stored_top3"].keys()
    full = 0
    for cid, row in written.items():
        ids = [int(p) for p in row["recommended_product_ids"].split(";") if p]
        assert ids == default[cid][:3] == runs["stored_top3"][cid]
        skus = row["recommended_skus"].split(";") if row["recommended_skus"] else []
        assert skus == [runs["skus"][p] for p in ids]
        full += len(ids) == 3
    assert full > len(written) // 2


def test_top_is_bounded_by_what_serving_keeps(tmp_path):
    env = {"CDM_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x", "CDM_DATA_DIR": str(tmp_path)}
    for bad in ("0", "50"):
        assert_one_line_error(
            cdm("score", "--all", "--top", bad, env=env),
            f"--top must be 1 to 20 recommendations, not {bad}",
        )
    assert_one_line_error(
        cdm("score", "--all", "--id-source", "erp", env=env), "--id-source", "give --output"
    )
