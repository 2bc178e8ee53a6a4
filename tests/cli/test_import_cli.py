"""`cdm import` as a person runs it."""

from __future__ import annotations

import csv

from tests.cli.test_cli import assert_one_line_error, cdm


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
        env={"CDM_DATABASE_URL": database_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "rows read" in result.stdout
    rejects = tmp_path / "crm export.rejects.csv"
    assert str(rejects) in result.stdout.replace("\n", "")
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
