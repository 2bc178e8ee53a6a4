"""The injection sweep of issue #6: hostile strings in every text input and filter; and of
issue #13: hostile numbers in every number input.

The inputs are discovered from the schema: every argument (of Query, Mutation and of nested
fields such as `Customer.interactions`) and every input-object field whose named type is
String, ID or JSON, or a scalar sent as a string (Date, DateTime, Decimal). Each is sent with
every hostile value, batched with aliases, both as variables and as literals in the document
(queries take a compiled fast path for literals). A field with such an input but no base
operation below fails `test_every_text_input_has_a_base_operation`, so nothing new is skipped.

For every response: an allowed status; no masked internal error (a client's mistake must stay
readable); no SQL, stack traces or internal names in any message; the database intact. Queries
must match nothing (the seeded data holds none of the hostile values) and change nothing;
mutations must refuse the value with a field error or store it exactly as given.

Every Decimal, Float and Int input (discovered the same way) gets NaN, infinities, -0, values
too large or too small for any column, and null where it may be null (an open range bound):
each answer must be a coded client error or a success, never a masked error (a client's input
is never our failure, nor the database's).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLInputObjectType,
    GraphQLObjectType,
    is_input_object_type,
    is_list_type,
    is_non_null_type,
    is_scalar_type,
    parse,
    validate,
)
from graphql.language.print_string import print_string

from api.limits import QueryLimits, check_shape
from api.schema import schema
from tests.conftest import DATA_TABLES, serving
from tests.factories import (
    T0,
    add_consent,
    add_customer,
    add_identity,
    add_interaction,
    add_product,
    add_purchase,
)
from tests.http_client import GRAPHQL_RESPONSE, data, error_codes, gql

GRAPHQL = schema._schema  # the graphql-core schema the endpoint serves

# --------------------------------------------------------------------------------------------
# The hostile values
# --------------------------------------------------------------------------------------------


def _incompressible(n: int) -> str:
    """`n` characters PostgreSQL cannot compress (a repeated one would fit any index)."""
    text = "'; --%_\\"
    for i in itertools.count():
        if len(text) >= n:
            return text[:n]
        text += hashlib.sha256(str(i).encode()).hexdigest()
    raise AssertionError  # unreachable


HOSTILE: dict[str, str] = {
    "drop": "'; DROP TABLE customers; --",
    "or": "' OR '1'='1",
    "percent": "%",
    "underscore": "_",
    "backslash": "\\",
    "quote": '"',
    "placeholder": "$1",
    "parens": ")) OR ((1=1",
    "nul": "nul\u0000byte",
    "long": _incompressible(10_000),
    "unicode": "Zoë 😀 שלום مرحبا \u202eevil",
    "ne": '{"$ne": 1}',
    "wildcards": "%_%_",
}  # lone surrogates are not valid JSON, so no client can send them
# JSON inputs also get objects: a NoSQL-style operator, and each hostile string as a key
# and as a value.
HOSTILE_JSON: dict[str, Any] = {
    "ne_object": {"$ne": 1},
    **{f"{k}_value": {"v": v} for k, v in HOSTILE.items()},
    **{f"{k}_key": {v: "v"} for k, v in HOSTILE.items()},
    **HOSTILE,
}


class Raw(str):
    """Spelled as is in a document literal (a number JSON cannot carry, e.g. `1e400`), and
    sent as a string in variables."""

    __slots__ = ()


# Numbers no column or comparison can hold, and the edges of each type.
HOSTILE_NUMBERS: dict[str, dict[str, Any]] = {
    "Decimal": {
        "nan": "NaN", "snan": "sNaN", "inf": "Infinity", "ninf": "-Infinity", "neg_zero": "-0",
        "huge": "1e1000000", "tiny": "1e-1000000", "long": "9" * 40, "negative": "-1e20",
        "money_max": "99999999999999.99", "above_money": "1e14", "many_places": "0." + "1" * 40,
    },
    "Float": {
        "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "neg_zero": -0.0,
        "huge": 1.7976931348623157e308, "tiny": 5e-324, "negative": -1e308,
        "overflow": Raw("1e400"),
    },
    "Int": {
        "neg_zero": -0, "int_max": 2**31 - 1, "int_min": -(2**31), "over": 2**31,
        "huge": 2**63, "nan": float("nan"), "fraction": 1.5,
    },
}  # fmt: skip

TEXT_SCALARS = {"String", "ID", "JSON"}
ENCODED_SCALARS = {"Date", "DateTime", "Decimal"}  # strings on the wire too
NUMBER_SCALARS = {"Decimal", "Float", "Int"}

# Statuses a GraphQL-over-HTTP server may answer a request with hostile content.
ALLOWED_STATUS = {200, 400, 413}
MASKED = {"INTERNAL_SERVER_ERROR", "DB_UNAVAILABLE"}
# What must never reach a client: SQL, driver and server names, stack traces, internals.
LEAKS = [
    re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|WHERE|FROM)\b"),  # SQL keywords, upper case
    re.compile(
        r"syntax error at|\brelation\b|\bcolumn\b|asyncpg|postgres|psycopg|sqlstate|traceback|"
        r"\bfile \"|\.py\b|site-packages|strawberry|<class '|violates|constraint|"
        r"duplicate key|invalid byte sequence|unsupported unicode escape|search_text|"
        r"_idx\b|\bpg_|exception",
        re.IGNORECASE,
    ),
]

# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Slot:
    """One text input: an argument, or a field inside one, of `owner.field`."""

    owner: str  # Query, Mutation, or the object type of a nested field (Customer)
    field: str
    path: Path  # ("items", 0, "orderRef"): 0 stands for any list item
    scalar: str
    nullable: bool = False  # whether null may be sent in its place

    @property
    def coordinate(self) -> str:
        return f"{self.owner}.{self.field}"

    @property
    def where(self) -> str:
        """The path as written in the tables below: `items[].orderRef`."""
        out = ""
        for part in self.path:
            out += "[]" if isinstance(part, int) else ("." if out else "") + part
        return out

    @property
    def key(self) -> str:
        return f"{self.field}({self.where})"

    @property
    def label(self) -> str:
        return f"{self.owner}.{self.key}"

    @property
    def encoded(self) -> bool:
        return self.scalar in ENCODED_SCALARS


def _walk_input(
    type_: Any, path: Path, seen: frozenset[str], scalars: set[str]
) -> Iterator[tuple[Path, str, bool]]:
    nullable = True
    while is_non_null_type(type_) or is_list_type(type_):
        nullable = not is_non_null_type(type_)
        if is_list_type(type_):
            path += (0,)
        type_ = type_.of_type
    if is_input_object_type(type_):
        assert isinstance(type_, GraphQLInputObjectType)
        if type_.name in seen:
            return
        for name, input_field in type_.fields.items():
            yield from _walk_input(input_field.type, (*path, name), seen | {type_.name}, scalars)
    elif is_scalar_type(type_) and type_.name in scalars:
        yield path, type_.name, nullable


def discover(scalars: set[str] = TEXT_SCALARS | ENCODED_SCALARS) -> list[Slot]:
    """Every input of the schema of these `scalars`, Query first, then nested fields, then
    Mutation."""
    slots = []
    for type_name, type_ in GRAPHQL.type_map.items():
        if type_name.startswith("__") or not isinstance(type_, GraphQLObjectType):
            continue
        for field_name, definition in type_.fields.items():
            for arg_name, arg in definition.args.items():
                for path, scalar, nullable in _walk_input(
                    arg.type, (arg_name,), frozenset(), scalars
                ):
                    slots.append(Slot(type_name, field_name, path, scalar, nullable))
    order = {"Query": 0, "Mutation": 2}
    return sorted(slots, key=lambda s: (order.get(s.owner, 1), s.label))


SLOTS = discover()
NUMBER_SLOTS = discover(NUMBER_SCALARS)
QUERY_SLOTS = [s for s in SLOTS if s.owner != "Mutation"]
MUTATION_SLOTS = [s for s in SLOTS if s.owner == "Mutation"]

# --------------------------------------------------------------------------------------------
# Base operations: a valid call of each field with a text input, to put hostile values into
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """The id of a seeded record, known once seeded."""

    name: str


class EnumName(str):
    """An enum value: a bare name in a literal, a string in variables."""

    __slots__ = ()


UNIQUE = object()  # a fresh value per alias (external ids, SKUs), so aliases write apart
DROP = object()  # leave this argument or field out


@dataclass(frozen=True)
class Base:
    """A valid call: `args` (placeholders allowed), the selection on its result, and, for a
    nested field, the root field (and its arguments) it is reached through. `when` adjusts
    the arguments for one input (`{"items[].customerSource": {"items[].customerId": DROP}}`):
    several fields take one of two alternatives, and some inputs need a companion."""

    args: dict[str, Any]
    select: str
    parent: tuple[str, dict[str, Any]] | None = None
    when: dict[str, dict[str, Any]] = field(default_factory=dict)
    via: str | None = None  # a field between the parent and this one (`churnRisk`)

    def nested(self, field_name: str) -> tuple[str, ...]:
        """The keys from an alias's result down to the field's own result."""
        if self.parent is None:
            return ()
        return (self.via, field_name) if self.via else (field_name,)


ERRORS = "errors { field code message }"
REFUSALS = f"... on ValidationFailed {{ {ERRORS} }}"
CONFLICT = "... on Conflict { code message }"
BATCH = (
    "__typename ... on BatchWritten { inserted updated unchanged "
    f"rejected {{ index {ERRORS} }} }} {REFUSALS}"
)
CONNECTION = "totalCount nodes { id }"
CUSTOMER_1 = ("customer", {"id": Seed("ann")})
WINDOW = {"from": "2025-01-01T00:00:00Z", "to": "2025-03-01T00:00:00Z"}
PURCHASE = {
    "customerId": Seed("ann"), "externalId": UNIQUE, "productSku": "SKU-1", "quantity": 1,
    "unitPrice": "10.00", "currency": "EUR", "purchasedAt": "2025-01-02T00:00:00Z",
    "channel": "web",
}  # fmt: skip
INTERACTION = {
    "customerId": Seed("ann"), "externalId": UNIQUE, "occurredAt": "2025-01-02T00:00:00Z",
    "channel": "web", "kind": "page_view", "properties": {"k": "v"},
}  # fmt: skip


def _by_external_id(prefix: str) -> dict[str, dict[str, Any]]:
    """Inputs naming the customer by external id rather than by id."""
    ref = {f"{prefix}customerId": DROP}
    return {
        f"{prefix}customerExternalId": {**ref, f"{prefix}customerSource": "crm"},
        f"{prefix}customerSource": {**ref, f"{prefix}customerExternalId": "CRM-1"},
    }


BASES: dict[str, Base] = {
    "Query.customer": Base({}, "id lastName", when={"source": {"externalId": "CRM-1"}}),
    "Query.customers": Base({"first": 5}, CONNECTION),
    "Query.product": Base({}, "id sku"),
    "Query.products": Base({"first": 5}, CONNECTION),
    "Query.duplicateCandidates": Base({"first": 5}, "score"),
    "Query.auditLog": Base({"first": 5}, CONNECTION),
    "Query.exportCustomerData": Base({}, ""),
    "Query.scores": Base({}, "id", when={"source": {"externalIds": ["CRM-1"]}}),
    "Query.revenue": Base({"granularity": EnumName("MONTH"), **WINDOW}, "orders"),
    "Query.cohortRetention": Base(WINDOW, "size"),
    "Query.topProducts": Base(WINDOW, "revenue"),
    "Query.topCategories": Base(WINDOW, "revenue"),
    "Query.kpis": Base(WINDOW, "orders"),
    "Query.churnRiskDistribution": Base({}, "customers"),
    "ChurnRisk.factors": Base({}, "feature", parent=CUSTOMER_1, via="churnRisk"),
    "Query.customersAggregate": Base(
        {},
        "count",
        when={"filter.interactions.channel": {"filter.interactions.kind": "page_view"}},
    ),
    "Query.segment": Base({}, "id"),
    "Segment.customers": Base({"first": 5}, CONNECTION, parent=("segment", {"name": "all"})),
    "Customer.churnRisk": Base({}, "probability", parent=CUSTOMER_1),
    "Customer.nextPurchase": Base({}, "probability30d", parent=CUSTOMER_1),
    "Customer.recommendations": Base({}, "score", parent=CUSTOMER_1),
    "Customer.buyAgain": Base({}, "score", parent=CUSTOMER_1),
    "Customer.purchases": Base({"first": 5}, CONNECTION, parent=CUSTOMER_1),
    "Customer.interactions": Base({"first": 5}, CONNECTION, parent=CUSTOMER_1),
    "Mutation.upsertCustomer": Base(
        {"source": "web", "input": {"externalId": UNIQUE, "lastName": "Base"}},
        f"__typename ... on Customer {{ id }} {REFUSALS}",
    ),
    "Mutation.recordPurchases": Base(
        {"source": "shop", "items": [PURCHASE]}, BATCH, when=_by_external_id("items[].")
    ),
    "Mutation.recordInteractions": Base(
        {"source": "web", "items": [INTERACTION]}, BATCH, when=_by_external_id("items[].")
    ),
    "Mutation.setConsent": Base(
        {
            "source": "web",
            "input": {
                "customerId": Seed("ann"),
                "purpose": "newsletter",
                "granted": True,
                "recordedAt": "2025-01-02T00:00:00Z",
            },
        },
        f"__typename ... on Consent {{ purpose }} {REFUSALS}",
        when=_by_external_id("input."),
    ),
    "Mutation.upsertProducts": Base(
        {
            "items": [
                {
                    "sku": UNIQUE,
                    "name": "Base product",
                    "category": "base",
                    "price": "1.00",
                    "currency": "EUR",
                }
            ]
        },
        BATCH,
    ),
    "Mutation.mergeCustomers": Base(
        {"survivorId": Seed("ann"), "mergedIds": [Seed("bob")], "dryRun": True},
        f"__typename {REFUSALS} {CONFLICT}",
    ),
    "Mutation.unmergeCustomers": Base({"mergeId": "1"}, f"__typename {REFUSALS} {CONFLICT}"),
    "Mutation.eraseCustomer": Base({}, f"__typename {REFUSALS}"),
    "Mutation.createApiKey": Base({"role": EnumName("APP")}, f"__typename {REFUSALS}"),
    "Mutation.createSegment": Base(
        {"name": UNIQUE, "definition": {"countryIn": ["GB"]}},
        f"__typename {REFUSALS}",
        when={"definition.interactions.channel": {"definition.interactions.kind": "page_view"}},
    ),
    "Mutation.deleteSegment": Base({}, ""),
    "Mutation.refreshRfm": Base({}, "customers"),
    "Mutation.revokeApiKey": Base({}, f"__typename {REFUSALS}"),
}


# How each mutation input may treat a hostile value.
@dataclass(frozen=True)
class Stored:
    """Free text: stored exactly as given (after the field's documented `transform`), read
    back with `sql`. Values `must_accept` says are ordinary text may not be refused."""

    sql: str
    transform: Callable[[Any], Any] = lambda v: v
    must_accept: Callable[[Any], bool] = lambda v: "\0" not in v and len(v) <= 100


REFUSED = "refused"  # a format (e-mail, code, currency...) or a reference no hostile value fits


def _json_object(value: Any) -> Any:
    return value if isinstance(value, dict) else json.loads(value)


def _plain_object(value: Any) -> bool:
    return isinstance(value, dict) and "\\u0000" not in json.dumps(value)


EXPECT: dict[str, Stored | str] = {
    "upsertCustomer(source)": REFUSED,
    "upsertCustomer(input.externalId)": Stored(
        "SELECT value FROM identities WHERE kind = 'external_id'"
    ),
    "upsertCustomer(input.firstName)": Stored("SELECT first_name FROM customers"),
    "upsertCustomer(input.lastName)": Stored("SELECT last_name FROM customers"),
    "upsertCustomer(input.email)": REFUSED,
    "upsertCustomer(input.phone)": REFUSED,
    "upsertCustomer(input.country)": REFUSED,
    "upsertCustomer(input.birthDate)": REFUSED,
    "upsertCustomer(input.observedAt)": REFUSED,
    "recordPurchases(source)": REFUSED,
    "recordPurchases(items[].customerId)": REFUSED,
    "recordPurchases(items[].customerExternalId)": REFUSED,
    "recordPurchases(items[].customerSource)": REFUSED,
    "recordPurchases(items[].externalId)": Stored("SELECT external_id FROM purchases"),
    "recordPurchases(items[].purchasedAt)": REFUSED,
    "recordPurchases(items[].productSku)": REFUSED,
    "recordPurchases(items[].orderRef)": Stored("SELECT order_ref FROM purchases"),
    "recordPurchases(items[].unitPrice)": REFUSED,
    "recordPurchases(items[].amount)": REFUSED,
    "recordPurchases(items[].currency)": REFUSED,
    "recordPurchases(items[].channel)": REFUSED,
    "recordInteractions(source)": REFUSED,
    "recordInteractions(items[].customerId)": REFUSED,
    "recordInteractions(items[].customerExternalId)": REFUSED,
    "recordInteractions(items[].customerSource)": REFUSED,
    "recordInteractions(items[].externalId)": Stored("SELECT external_id FROM interactions"),
    "recordInteractions(items[].occurredAt)": REFUSED,
    "recordInteractions(items[].channel)": REFUSED,
    "recordInteractions(items[].kind)": REFUSED,
    # A JSON object, or (as in a CSV import) a string holding one.
    "recordInteractions(items[].properties)": Stored(
        "SELECT properties FROM interactions", _json_object, _plain_object
    ),
    "setConsent(source)": REFUSED,
    "setConsent(input.customerId)": REFUSED,
    "setConsent(input.customerExternalId)": REFUSED,
    "setConsent(input.customerSource)": REFUSED,
    "setConsent(input.purpose)": REFUSED,
    "setConsent(input.recordedAt)": REFUSED,
    "upsertProducts(source)": REFUSED,
    "upsertProducts(items[].sku)": Stored("SELECT sku FROM products"),
    "upsertProducts(items[].name)": Stored("SELECT name FROM products"),
    "upsertProducts(items[].category)": Stored("SELECT category FROM products", str.lower),
    "upsertProducts(items[].price)": REFUSED,
    "upsertProducts(items[].currency)": REFUSED,
    "mergeCustomers(survivorId)": REFUSED,
    "mergeCustomers(mergedIds[])": REFUSED,
    "unmergeCustomers(mergeId)": REFUSED,
    "eraseCustomer(id)": REFUSED,
    "createApiKey(name)": Stored("SELECT name FROM api_keys", str.strip),
    "revokeApiKey(idOrPrefix)": REFUSED,
    "createSegment(name)": Stored("SELECT name FROM segments", str.strip),
    "createSegment(description)": Stored("SELECT description FROM segments"),
    "createSegment(definition.countryIn[])": REFUSED,
    "createSegment(definition.consentedTo)": REFUSED,
    "createSegment(definition.bought.sku)": Stored(
        "SELECT definition #>> '{bought,sku}' FROM segments", str.strip
    ),
    "createSegment(definition.bought.category)": Stored(
        "SELECT definition #>> '{bought,category}' FROM segments", lambda v: v.strip().lower()
    ),
    "createSegment(definition.interactions.kind)": Stored(
        "SELECT definition #>> '{interactions,kind}' FROM segments", lambda v: v.strip().lower()
    ),
    "createSegment(definition.interactions.channel)": Stored(
        "SELECT definition #>> '{interactions,channel}' FROM segments", str.strip
    ),
    **{
        f"createSegment(definition.{r}.{b})": REFUSED
        for r in (
            "totalSpend",
            "orders",
            "daysSinceLastPurchase",
            "churnProbability",
            "purchaseProbability30d",
            "expectedPurchases",
        )
        for b in ("min", "max")
    },
    "deleteSegment(id)": REFUSED,
    "refreshRfm(asOf)": REFUSED,
}


def test_every_text_input_has_a_base_operation():
    """A new field or argument taking text must be added to the sweep, not skipped."""
    coordinates = {s.coordinate for s in SLOTS}
    assert sorted(coordinates - BASES.keys()) == [], "add a base operation to BASES"
    swept = coordinates | {s.coordinate for s in NUMBER_SLOTS}
    assert sorted(BASES.keys() - swept) == [], "BASES names fields that are gone"
    keys = {s.key for s in MUTATION_SLOTS}
    assert sorted(keys - EXPECT.keys()) == [], "say in EXPECT how the mutation stores it"
    assert sorted(EXPECT.keys() - keys) == [], "EXPECT names inputs that are gone"
    # The sweep sees what it must (guards the discovery itself).
    labels = {s.label for s in SLOTS}
    assert {
        "Query.customers(filter.search)", "Query.products(search)", "Query.scores(externalIds[])",
        "Customer.interactions(kinds[])", "Mutation.upsertCustomer(input.lastName)",
        "Mutation.recordInteractions(items[].properties)", "Mutation.mergeCustomers(mergedIds[])",
    } <= labels  # fmt: skip
    assert len([s for s in SLOTS if not s.encoded]) >= 45
    # Every base operation is a valid document (else every value would be "refused").
    seeds = {"ann": 1, "bob": 2}
    for slot in SLOTS:
        if slot.coordinate in BASES:
            document, _, _ = build(slot, BASES[slot.coordinate], {"x": "x"}, seeds, inline=False)
            assert validate(GRAPHQL, parse(document)) == [], slot.label


# --------------------------------------------------------------------------------------------
# Building and sending the operations
# --------------------------------------------------------------------------------------------

_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")
_counter = itertools.count()


class Unprintable(Exception):
    """A value a document literal cannot spell (an object key that is not a GraphQL name,
    a float that is not finite)."""


def literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        raise Unprintable(value)  # no GraphQL number spells it (Raw("1e400") comes closest)
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, EnumName | Raw):
        return str(value)
    if isinstance(value, str):
        return print_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        if not all(_NAME.match(k) for k in value):
            raise Unprintable(value)
        return "{" + ", ".join(f"{k}: {literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def _path(text: str) -> Path:
    return tuple(part for p in text.split(".") for part in (
        (p[:-2], 0) if p.endswith("[]") else (p,)
    ))  # fmt: skip


def set_path(root: Any, path: Path, value: Any) -> Any:
    """`root` with the value at `path` replaced (DROP: removed); containers made as needed."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(root) if isinstance(root, list) and root else [None]
        items[0] = set_path(items[0], rest, value)
        return items
    obj = dict(root) if isinstance(root, dict) else {}
    if value is DROP and not rest:
        obj.pop(head, None)
    else:
        obj[head] = set_path(obj.get(head), rest, value)
    return obj


def resolve(value: Any, seeds: dict[str, int]) -> Any:
    if isinstance(value, Seed):
        return str(seeds[value.name])
    if value is UNIQUE:
        return f"inj-{next(_counter)}"
    if isinstance(value, dict):
        return {k: resolve(v, seeds) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, seeds) for v in value]
    return value


@dataclass
class Call:
    """One alias of a batch: the hostile value it carries and the key of its result."""

    alias: str
    name: str
    value: Any


def build(
    slot: Slot, base: Base, values: dict[str, Any], seeds: dict[str, int], inline: bool
) -> tuple[str, dict[str, Any], list[Call]]:
    """A document calling `slot`'s field once per value (aliased), and its variables."""
    definition = GRAPHQL.get_type(slot.owner).fields[slot.field]  # type: ignore[union-attr]
    var_defs: list[str] = []
    variables: dict[str, Any] = {}
    parts: list[str] = []
    calls: list[Call] = []
    for i, (name, value) in enumerate(values.items()):
        args = base.args  # set_path copies what it changes
        for where, extra in base.when.get(slot.where, {}).items():
            args = set_path(args, _path(where), extra)
        args = resolve(set_path(args, slot.path, value), seeds)
        spelled = []
        for arg, arg_value in args.items():
            if inline:
                spelled.append(f"{arg}: {literal(arg_value)}")
            else:
                var_defs.append(f"$v{i}_{arg}: {definition.args[arg].type}")
                variables[f"v{i}_{arg}"] = arg_value
                spelled.append(f"{arg}: $v{i}_{arg}")
        call = slot.field + (f"({', '.join(spelled)})" if spelled else "")
        call += f" {{ {base.select} }}" if base.select else ""  # JSON: no selection
        if base.via:
            call = f"{base.via} {{ {call} }}"
        if base.parent:
            root, root_args = base.parent
            root_args = ", ".join(
                f"{k}: {literal(v)}" for k, v in resolve(root_args, seeds).items()
            )
            call = f"{root}({root_args}) {{ {call} }}"
        parts.append(f"a{i}: {call}")
        calls.append(Call(f"a{i}", name, value))
    kind = "mutation" if slot.owner == "Mutation" else "query"
    header = f"{kind}({', '.join(var_defs)})" if var_defs else kind
    return header + " {\n  " + "\n  ".join(parts) + "\n}", variables, calls


def batches(
    slot: Slot, base: Base, values: dict[str, Any], seeds: dict[str, int], inline: bool
) -> Iterator[tuple[str, dict[str, Any], list[Call]]]:
    """Documents within the query limits (aliases, fields, tokens) covering every value."""
    if inline:
        printable = {}
        for name, value in values.items():
            try:
                literal(resolve(value, seeds))
            except Unprintable:
                continue
            printable[name] = value
        values = printable
    document, variables, calls = build(slot, base, values, seeds, inline)
    if len(values) > 1 and (check_shape(parse(document), QueryLimits()) or len(document) > 60_000):
        items = list(values.items())
        half = len(items) // 2
        yield from batches(slot, base, dict(items[:half]), seeds, inline)
        yield from batches(slot, base, dict(items[half:]), seeds, inline)
        return
    yield document, variables, calls


async def post(http: httpx.AsyncClient, document: str, variables: dict[str, Any]) -> tuple:
    # json.dumps spells NaN and Infinity (not JSON): the server must refuse them as such.
    response = await http.post(
        "/graphql",
        content=json.dumps({"query": document, "variables": variables}),
        headers={"Accept": GRAPHQL_RESPONSE, "Content-Type": "application/json"},
    )
    try:
        body = response.json()
    except ValueError:
        body = {"errors": [{"message": response.text}]}
    return response.status_code, body


def values_for(slot: Slot) -> dict[str, Any]:
    return HOSTILE_JSON if slot.scalar == "JSON" else HOSTILE


# --------------------------------------------------------------------------------------------
# Judging the responses
# --------------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def response_problems(
    status: int, body: dict[str, Any], calls: list[Call], explain: Callable[[str], str],
    limits: bool = False,
) -> list[str]:  # fmt: skip
    """What is wrong with a response whatever it answers: status, masking, leaks. A query
    limit is a problem of the sweep's batching, unless the values tried are `limits`."""
    problems = []
    if status not in ALLOWED_STATUS:
        problems.append(f"HTTP {status}")
    names = {c.alias: c for c in calls}
    for error in body.get("errors", []):
        extensions = error.get("extensions") or {}
        code = extensions.get("code")
        call = names.get((error.get("path") or [None])[0])
        which = f"{call.name} {_short(call.value)}" if call else "whole request"
        if code in MASKED or code is None or "errorId" in extensions:
            cause = explain(extensions.get("errorId", ""))
            problems.append(f"{which}: masked error {code} (logged: {cause})")
        if code == "QUERY_TOO_COMPLEX" and not limits:
            problems.append(f"the sweep's batch exceeds a query limit: {error.get('message')}")
        text = json.dumps({"message": error.get("message"), "extensions": extensions})
        for pattern in LEAKS:
            if found := pattern.search(text):
                problems.append(f"{which}: leaks {found.group(0)!r}: {error.get('message')!r:.200}")
    return problems


def alias_outcome(body: dict[str, Any], call: Call, nested: tuple[str, ...]) -> tuple[bool, Any]:
    """(refused, result) for one alias: refused by an error or a typed refusal."""
    errors = [
        f"{(e.get('extensions') or {}).get('code')}: {e.get('message')}"
        for e in body.get("errors", [])
        if body.get("data") is None or (e.get("path") or [None])[0] == call.alias
    ]
    if body.get("data") is None or errors:
        return True, errors  # whole-request errors: e.g. a value of the wrong type
    result = body["data"][call.alias]
    for key in nested:
        result = None if result is None else result[key]
    if isinstance(result, dict) and result.get("__typename") in ("ValidationFailed", "Conflict"):
        return True, result
    if isinstance(result, dict) and result.get("rejected"):
        return True, result
    return False, result


def _empty(result: Any) -> bool:
    if result is None or result == []:
        return True
    if isinstance(result, list) and all(isinstance(r, dict) for r in result):
        # Aggregates answer with zeros, not with nothing: zero orders or customers is empty.
        return all(r.get("orders", r.get("count")) == 0 for r in result)
    return isinstance(result, dict) and result.get("nodes") == [] and not result.get("totalCount")


async def table_digest(pool) -> dict[str, tuple[int, str]]:
    """Row count and a checksum of every data table (raises if one is gone)."""
    digest = {}
    for table in DATA_TABLES:
        row = await pool.fetchrow(
            f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
            f" AS sum FROM {table} t"
        )
        digest[table] = (row["n"], row["sum"])
    return digest


async def tables_exist(pool) -> list[str]:
    missing = []
    for table in (*DATA_TABLES, "api_keys"):
        if await pool.fetchval("SELECT to_regclass($1)", table) is None:
            missing.append(table)
    return missing


# --------------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------------


@dataclass
class Sweep:
    http: httpx.AsyncClient
    pool: Any
    seeds: dict[str, int] = field(default_factory=dict)
    dirty: bool = True

    async def reseed(self) -> None:
        """Plain data: none of it holds a hostile value, so no hostile value may match."""
        await self.pool.execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")
        db = self.pool
        ann = await add_customer(db, first_name="Ann", last_name="Smith", email="ann@example.com")
        bob = await add_customer(db, first_name="Bob", last_name="Jones", email="bob@example.com")
        await add_identity(db, ann, "external_id", "crm", "CRM-1")
        await add_identity(db, bob, "external_id", "crm", "CRM-2")
        sku1 = await add_product(db, "SKU-1", "kitchen")
        await add_product(db, "SKU-2", "garden")
        await add_purchase(db, ann, T0, "10.00", product_id=sku1, order_ref="O-1")
        await add_interaction(db, ann, T0)
        await add_consent(db, ann, "newsletter", True, T0)
        await db.execute(
            "INSERT INTO segments (name, definition, created_by) VALUES ('all', '{}', 'test')"
        )
        self.seeds = {"ann": ann, "bob": bob}
        self.dirty = False


@pytest.fixture(scope="module")
async def sweep(pool, database_url, settings):
    async with serving(database_url, settings) as http:
        yield Sweep(http, pool)


def _explainer(caplog: pytest.LogCaptureFixture) -> Callable[[str], str]:
    """The logged cause behind a masked error's id."""

    def explain(error_id: str) -> str:
        for record in caplog.records:
            if error_id and error_id in record.getMessage():
                exc = record.exc_info[1] if record.exc_info else None
                return f"{type(exc).__name__}: {str(exc)[:160]}" if exc else record.getMessage()
        return "not found in the log"

    return explain


async def _run(
    sweep: Sweep, slot: Slot, judge: Callable, caplog, values: dict[str, Any] | None = None,
    before_each_mode: Callable[[], Awaitable[None]] | None = None, limits: bool = False,
) -> list[str]:  # fmt: skip
    """Send `values` (default: every hostile value) to `slot`, as variables and as literals;
    every problem found, by the checks of every response and by `judge` per value."""
    base = BASES.get(slot.coordinate)
    if base is None:
        pytest.fail(f"no base operation for {slot.coordinate} in BASES")
    nested = base.nested(slot.field)
    explain = _explainer(caplog)
    problems = []

    async def send(values: dict[str, Any], mode: str) -> None:
        for document, variables, calls in batches(
            slot, base, values, sweep.seeds, inline=mode == "literal"
        ):
            status, body = await post(sweep.http, document, variables)
            masked = any(
                (e.get("extensions") or {}).get("code") in MASKED for e in body.get("errors", [])
            )
            if len(calls) > 1 and body.get("data") is None and (masked or not slot.encoded):
                # One value failed the whole batch (a root mutation field is non-null): send
                # each on its own to know which, and what the others do.
                for call in calls:
                    await send({call.name: call.value}, mode)
                continue
            problems.extend(
                f"[{mode}] {p}" for p in response_problems(status, body, calls, explain, limits)
            )
            for call in calls:
                refused, result = alias_outcome(body, call, nested)
                if nested and not refused and body["data"][call.alias] is None:
                    problems.append(f"[{mode}] {call.name}: the base's parent was not found")
                problem = await judge(call, refused, result)
                if problem:
                    problems.append(f"[{mode}] {call.name} {_short(call.value)}: {problem}")

    for mode in ("variables", "literal"):
        if before_each_mode is not None:
            await before_each_mode()
        await send(values_for(slot) if values is None else values, mode)
    return problems


@pytest.mark.parametrize("slot", QUERY_SLOTS, ids=lambda s: s.label)
async def test_hostile_query_inputs_match_nothing_and_change_nothing(sweep, slot, caplog):
    if sweep.dirty:
        await sweep.reseed()
    before = await table_digest(sweep.pool)

    async def judge(call: Call, refused: bool, result: Any) -> str | None:
        if not refused and not _empty(result):
            return f"matched seeded data: {_short(result)}"
        return None

    problems = await _run(sweep, slot, judge, caplog)
    assert await tables_exist(sweep.pool) == []
    if await table_digest(sweep.pool) != before:
        problems.append("a query changed the database")
    assert not problems, f"{slot.label}:\n" + "\n".join(problems)


@pytest.mark.parametrize("slot", MUTATION_SLOTS, ids=lambda s: s.label)
async def test_hostile_mutation_inputs_are_refused_or_stored_literally(sweep, slot, caplog):
    expect = EXPECT.get(slot.key)
    if expect is None:
        pytest.fail(f"no expectation for {slot.key} in EXPECT")
    if not sweep.seeds:
        await sweep.reseed()
    sweep.dirty = True
    seeded = await table_digest(sweep.pool)
    rows = {
        t: set(await sweep.pool.fetch(f"SELECT t::text FROM {t} t"))
        for t in ("customers", "identities", "products", "consents")
    }

    async def fresh() -> None:
        """Stored text is looked for in fresh data: only this mode's writes can hold it."""
        nonlocal seeded, rows
        await sweep.reseed()
        sweep.dirty = True
        seeded = await table_digest(sweep.pool)
        rows = {t: set(await sweep.pool.fetch(f"SELECT t::text FROM {t} t")) for t in rows}

    async def judge(call: Call, refused: bool, result: Any) -> str | None:
        if expect == REFUSED:
            return None if refused else f"accepted (expected a field error): {_short(result)}"
        assert isinstance(expect, Stored)
        if refused:
            if expect.must_accept(call.value):
                return f"refused ordinary text: {_short(result)}"
            return None
        stored = [r[0] for r in await sweep.pool.fetch(expect.sql)]
        if expect.transform(call.value) not in stored:
            return "accepted but not stored exactly as given"
        return None

    problems = await _run(
        sweep, slot, judge, caplog, before_each_mode=fresh if isinstance(expect, Stored) else None
    )
    assert await tables_exist(sweep.pool) == []
    after = await table_digest(sweep.pool)
    for table, (count, _) in seeded.items():
        if after[table][0] < count:
            problems.append(f"{table} lost rows ({count} -> {after[table][0]})")
    for table, before in rows.items():
        now = set(await sweep.pool.fetch(f"SELECT t::text FROM {table} t"))
        if not before <= now:
            problems.append(f"seeded rows of {table} changed")
    assert not problems, f"{slot.label}:\n" + "\n".join(problems)


# Valid values: each must be accepted (and, for a query, find the seeded record), which shows
# that the base operation works, so that refusing or not finding a hostile value means
# something.
CONTROLS: dict[str, Any] = {
    "Query.customer(id)": Seed("ann"),
    "Query.customer(externalId)": "CRM-1",
    "Query.customer(source)": "crm",
    "Query.customers(filter.country)": "GB",
    "Query.customers(filter.search)": "ANN",
    "Query.product(sku)": "SKU-1",
    "Query.products(category)": "kitchen",
    "Query.products(search)": "Sku-1",
    "Query.scores(customerIds[])": Seed("ann"),
    "Query.scores(externalIds[])": "CRM-1",
    "Query.scores(source)": "crm",
    "Query.exportCustomerData(id)": Seed("ann"),
    "Mutation.createApiKey(name)": "crm frontend",
    "Customer.interactions(kinds[])": "page_view",
    "Mutation.upsertCustomer(source)": "web",
    "Mutation.upsertCustomer(input.email)": "new@example.com",
    "Mutation.upsertCustomer(input.phone)": "+4930123456",
    "Mutation.upsertCustomer(input.country)": "DE",
    "Mutation.upsertCustomer(input.birthDate)": "1980-04-30",
    "Mutation.upsertCustomer(input.observedAt)": "2025-01-02T00:00:00Z",
    "Mutation.recordPurchases(source)": "shop",
    "Mutation.recordPurchases(items[].customerId)": Seed("bob"),
    "Mutation.recordPurchases(items[].customerExternalId)": "CRM-1",
    "Mutation.recordPurchases(items[].customerSource)": "crm",
    "Mutation.recordPurchases(items[].purchasedAt)": "2025-01-03T00:00:00Z",
    "Mutation.recordPurchases(items[].productSku)": "SKU-2",
    "Mutation.recordPurchases(items[].unitPrice)": "5.00",
    "Mutation.recordPurchases(items[].amount)": "5.00",
    "Mutation.recordPurchases(items[].currency)": "USD",
    "Mutation.recordPurchases(items[].channel)": "store",
    "Mutation.recordInteractions(source)": "web",
    "Mutation.recordInteractions(items[].customerId)": Seed("bob"),
    "Mutation.recordInteractions(items[].customerExternalId)": "CRM-1",
    "Mutation.recordInteractions(items[].customerSource)": "crm",
    "Mutation.recordInteractions(items[].occurredAt)": "2025-01-03T00:00:00Z",
    "Mutation.recordInteractions(items[].channel)": "email",
    "Mutation.recordInteractions(items[].kind)": "click",
    "Mutation.setConsent(source)": "web",
    "Mutation.setConsent(input.customerId)": Seed("bob"),
    "Mutation.setConsent(input.customerExternalId)": "CRM-1",
    "Mutation.setConsent(input.customerSource)": "crm",
    "Mutation.setConsent(input.purpose)": "Email Marketing",
    "Mutation.setConsent(input.recordedAt)": "2025-01-03T00:00:00Z",
    "Mutation.upsertProducts(source)": "shop",
    "Mutation.upsertProducts(items[].price)": "2.50",
    "Mutation.upsertProducts(items[].currency)": "usd",
    "Mutation.mergeCustomers(survivorId)": Seed("ann"),
    "Mutation.mergeCustomers(mergedIds[])": Seed("bob"),
}
SLOTS_BY_LABEL = {s.label: s for s in SLOTS}


@pytest.mark.parametrize(("label", "value"), CONTROLS.items(), ids=list(CONTROLS))
async def test_the_base_operations_accept_valid_values(sweep, caplog, label, value):
    slot = SLOTS_BY_LABEL.get(label)
    assert slot is not None, f"{label} is no longer an input: update CONTROLS"
    if not sweep.seeds:
        await sweep.reseed()
    sweep.dirty = True

    async def judge(call: Call, refused: bool, result: Any) -> str | None:
        if refused:
            return f"refused: {_short(result)}"
        if slot.owner != "Mutation" and _empty(result):
            return "found nothing"
        return None

    problems = await _run(sweep, slot, judge, caplog, {"valid": value})
    assert not problems, f"{label}:\n" + "\n".join(problems)


def _body(message: str, **extensions: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": extensions}]}


def test_the_sweep_sees_leaks_and_masked_errors():
    leak = _body('relation "customers" does not exist', code="BAD_USER_INPUT")
    assert response_problems(200, leak, [], str) != []
    masked = _body("Internal server error", code="INTERNAL_SERVER_ERROR", errorId="1")
    assert response_problems(200, masked, [], str) != []
    readable = _body("`after` is not a cursor from this list", code="INVALID_CURSOR")
    assert response_problems(200, readable, [], str) == []
    assert response_problems(500, {}, [], str) != []


# --------------------------------------------------------------------------------------------
# Literalness: wildcards are text, and text reads back as written
# --------------------------------------------------------------------------------------------

CUSTOMERS = """query($search: String!) {
  customers(first: 50, filter: {search: $search}) { totalCount nodes { lastName } } }"""
PRODUCTS = """query($search: String, $category: String) {
  products(first: 50, search: $search, category: $category) { totalCount nodes { sku } } }"""


async def test_search_wildcards_are_literal(client, db):
    names = ["Per%cent", "Percent", "Under_score", "Underscore", "Back\\slash", "Backslash"]
    for i, last_name in enumerate(names):
        await add_customer(db, first_name="Kim", last_name=last_name, email=f"k{i}@example.com")
    for sku, name in [
        ("P-1", "50% off"),
        ("P-2", "50 percent off"),
        ("P-3", "snake_case"),
        ("P-4", "snakecase"),
        ("P-5", "back\\slash"),
        ("P-6", "backslash"),
    ]:
        await add_product(db, sku, "%")
        await db.execute("UPDATE products SET name = $1 WHERE sku = $2", name, sku)

    async def customers(search: str) -> list[str] | None:
        body = await gql(client, CUSTOMERS, {"search": search}, expect_status=200)
        if "errors" in body:
            assert error_codes(body) == ["BAD_USER_INPUT"], body  # shorter than 2 characters
            return None
        found = body["data"]["customers"]
        assert found["totalCount"] == len(found["nodes"])
        return sorted(n["lastName"] for n in found["nodes"])

    for search, expected in [
        ("r%", ["Per%cent"]), ("%c", ["Per%cent"]), ("r_", ["Under_score"]),
        ("_s", ["Under_score"]), ("k\\", ["Back\\slash"]), ("\\s", ["Back\\slash"]),
        ("%_%_", []), ("%%", []), ("__", []), ("\\\\", []),
    ]:  # fmt: skip
        assert await customers(search) == expected, search
    for search, expected in [("%", ["Per%cent"]), ("_", ["Under_score"]), ("\\", ["Back\\slash"])]:
        assert await customers(search) in (None, expected), search  # refused, or literal

    async def products(**variables: str) -> list[str]:
        found = data(await gql(client, PRODUCTS, variables))["products"]
        assert found["totalCount"] == len(found["nodes"])
        return [n["sku"] for n in found["nodes"]]

    assert await products(search="%") == ["P-1"]
    assert await products(search="_") == ["P-3"]
    assert await products(search="\\") == ["P-5"]
    assert await products(search="%_%_") == []
    assert await products(search="p-_") == []  # `_` is not "any character" in SKUs either
    assert await products(category="%") == ["P-1", "P-2", "P-3", "P-4", "P-5", "P-6"]
    assert await products(category="_") == []  # a category is compared, never a pattern


UPSERT = """mutation($input: CustomerInput!) { upsertCustomer(source: "crm", input: $input) {
  __typename ... on Customer { id lastName } ... on ValidationFailed { errors { code } } } }"""
READ = """query($id: ID!) { customer(id: $id) { lastName identities { value } } }"""


async def test_sql_in_text_reads_back_identical(client, db):
    last_name = "O'Brien'; DROP TABLE customers; --"
    external_id = "' OR '1'='1 -- %_\\"
    written = data(await gql(client, UPSERT, {"input": {"externalId": external_id,
                                                      "lastName": last_name}}))  # fmt: skip
    customer = written["upsertCustomer"]
    assert customer["lastName"] == last_name
    read = data(await gql(client, READ, {"id": customer["id"]}))["customer"]
    assert read == {"lastName": last_name, "identities": [{"value": external_id}]}
    assert await db.fetchval("SELECT last_name FROM customers") == last_name
    found = data(await gql(client, "query($x: String!) { customer(externalId: $x) { id } }",
                           {"x": external_id}))  # fmt: skip
    assert found["customer"] == {"id": customer["id"]}


# --------------------------------------------------------------------------------------------
# Numbers: NaN, infinities, -0, huge and tiny values, and null for every open bound
# --------------------------------------------------------------------------------------------


def number_values(slot: Slot) -> dict[str, Any]:
    values = dict(HOSTILE_NUMBERS[slot.scalar])
    if slot.nullable:
        values["null"] = None  # `{max: null}`: an open bound, or no value at all
    return values


async def _no_judgement(call: Call, refused: bool, result: Any) -> str | None:
    return None  # any coded refusal or any success; response_problems finds masked errors


def test_every_number_input_has_a_base_operation():
    coordinates = {s.coordinate for s in NUMBER_SLOTS}
    assert sorted(coordinates - BASES.keys()) == [], "add a base operation to BASES"
    labels = {s.label for s in NUMBER_SLOTS}
    assert {
        "Query.customers(filter.minTotalSpend)", "Query.customers(filter.minChurnRisk)",
        "Query.customersAggregate(filter.daysSinceLastPurchase.max)",
        "Mutation.createSegment(definition.orders.max)", "Mutation.recordPurchases(items[].amount)",
        "Customer.purchases(first)",
    } <= labels  # fmt: skip
    nullable = {s.label for s in NUMBER_SLOTS if s.nullable}
    assert "Mutation.createSegment(definition.daysSinceLastPurchase.max)" in nullable
    assert "Query.customers(first)" not in nullable  # Int! with a default


@pytest.mark.parametrize(
    "slot", [s for s in NUMBER_SLOTS if s.owner != "Mutation"], ids=lambda s: s.label
)
async def test_hostile_numbers_in_queries_are_coded_refusals_or_answers(sweep, slot, caplog):
    if sweep.dirty:
        await sweep.reseed()
    before = await table_digest(sweep.pool)
    # A page size (`first`) of 2^31 - 1 is a cost no query may have: a coded refusal too.
    problems = await _run(sweep, slot, _no_judgement, caplog, number_values(slot), limits=True)
    if await table_digest(sweep.pool) != before:
        problems.append("a query changed the database")
    assert not problems, f"{slot.label}:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "slot", [s for s in NUMBER_SLOTS if s.owner == "Mutation"], ids=lambda s: s.label
)
async def test_hostile_numbers_in_mutations_are_coded_refusals_or_answers(sweep, slot, caplog):
    if not sweep.seeds:
        await sweep.reseed()
    sweep.dirty = True
    # A page size (`first`) of 2^31 - 1 is a cost no query may have: a coded refusal too.
    problems = await _run(sweep, slot, _no_judgement, caplog, number_values(slot), limits=True)
    assert not problems, f"{slot.label}:\n" + "\n".join(problems)


SEGMENT_STATS = """query($d: SegmentFilterInput) {
  customersAggregate(filter: $d) { count } }"""


@pytest.mark.parametrize(
    "definition",
    [{"daysSinceLastPurchase": {"max": None}}, {"daysSinceLastPurchase": {}},
     {"totalSpend": {"min": None, "max": None}}, {"interactions": {"kind": "page_view",
                                                                   "min": None}}],
    ids=["recency-max-null", "recency-empty", "spend-nulls", "interactions-min-null"],
)  # fmt: skip
async def test_open_bounds_mean_no_bound(client, db, definition):
    """An open bound is no condition on that side: the customer who bought matches, whatever
    the statement's other parameters."""
    ann = await add_customer(db, first_name="Ann")
    await add_purchase(db, ann, T0, "10.00")
    await add_interaction(db, ann, T0)
    body = await gql(client, SEGMENT_STATS, {"d": definition})
    assert data(body)["customersAggregate"] == [{"count": 1}]


# --------------------------------------------------------------------------------------------
# Time arguments: a zone and the supported range (1900-01-01 .. 2200-01-01 UTC), by name
# --------------------------------------------------------------------------------------------

OUT_OF_RANGE_TIMES = {
    "year_one": "0001-01-01T00:00:00Z",  # datetime.min: -infinity to PostgreSQL
    "before": "1899-12-31T23:59:59Z",
    "after": "2200-01-01T00:00:01Z",
    "year_9999": "9999-12-31T23:59:59+00:00",
}
# Arguments that say *when to look*; record fields of writes (purchasedAt...) are data.
TIME_SLOTS = [
    s for s in discover({"DateTime"})
    if s.owner != "Mutation" or s.coordinate == "Mutation.refreshRfm"
]  # fmt: skip


def test_the_time_sweep_sees_every_time_argument():
    labels = {s.label for s in TIME_SLOTS}
    assert {
        "Query.revenue(from)", "Query.revenue(to)", "Query.cohortRetention(from)",
        "Query.customers(filter.createdAfter)", "Query.auditLog(since)",
        "Customer.purchases(until)", "Customer.churnRisk(asOf)", "Mutation.refreshRfm(asOf)",
    } <= labels  # fmt: skip


@pytest.mark.parametrize("slot", TIME_SLOTS, ids=lambda s: s.label)
async def test_time_arguments_outside_the_supported_range_are_refused_by_name(sweep, slot):
    if sweep.dirty or not sweep.seeds:
        await sweep.reseed()
    base = BASES[slot.coordinate]
    before = await table_digest(sweep.pool)
    name = slot.path[-1]
    problems = []
    for label, value in OUT_OF_RANGE_TIMES.items():
        for inline in (False, True):
            document, variables, _ = build(slot, base, {label: value}, sweep.seeds, inline)
            _, body = await post(sweep.http, document, variables)
            errors = body.get("errors", [])
            found = [
                ((e.get("extensions") or {}).get("code"), (e.get("extensions") or {}).get("field"))
                for e in errors
            ]  # fmt: skip
            if found != [("BAD_USER_INPUT", name)] or "1900-01-01" not in errors[0]["message"]:
                problems.append(f"{label} ({'literal' if inline else 'variables'}): {body}")
    assert await table_digest(sweep.pool) == before
    assert not problems, f"{slot.label}:\n" + "\n".join(problems)
