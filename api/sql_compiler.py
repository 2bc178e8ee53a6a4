"""Reads compiled to one SQL statement that returns the response's JSON (issue 14).

For a validated query and a role, the compiler walks the selection once and keeps, for each
field, how the database renders it: a column expression (masked for the role, when personal
data is masked for it), a list, a page of a connection, or a nested object. At each request
the plan is rendered into ONE statement with the request's arguments as parameters; the
database builds the whole ``data`` object with json_build_object / json_agg over correlated
subqueries of the named statements in ``sql/queries`` (so the rows, their order and their
filters are the same ones the resolvers read), and Python passes its bytes through.

What this compiler does not cover (live model scores, writes, introspection, governance ...)
raises :class:`Unsupported` at compile time; arguments it would word an error about (a bad
cursor, a page too large, an external-id lookup) raise :class:`Fallback` at render time. In
both cases the request goes on to the Python paths (``api/compiled.py``, then graphql-core),
which answer exactly as before; every fallback is counted with its reason (``api/metrics.py``).

Values render exactly as the Python path serializes them (timestamps as ``isoformat()``,
decimals as ``str(Decimal)``, the average order value rounded half to even ...: see
migration 0013); the parity check (``api/parity.py``) compares both paths on every query the
test suite sends.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    get_argument_values,
    get_named_type,
    is_leaf_type,
)
from strawberry.types.arguments import convert_arguments
from strawberry.utils.str_converters import to_camel_case

from api import sql_analytics
from api.context import Context
from api.python_fields import HIDDEN_ID, PYTHON_CUSTOMER_FIELDS, PythonFields
from api.remembered_counts import CountKey, CountMemory
from api.selection import Fallback, Unsupported, collect_fields, uses_variables
from cdm.settings import Settings
from domain.access import PERSONAL_FIELDS, Access, MaskKind, Role, access
from domain.consent import OBJECTED, WITHHELD
from domain.customer_queries import (
    CustomerFilter,
    CustomerOrder,
    CustomerSortField,
    SortDirection,
    TimeWindow,
    contains_pattern,
)
from domain.errors import UserError
from domain.ids import parse_id
from domain.pagination import check_page_size, decode_cursor
from sql import json_read as j
from sql.customer_list import customer_count, customer_page_statement
from sql.executor import Database
from sql.repositories import PRODUCT_ORDERING

_STRAWBERRY_FIELD = "strawberry-definition"
_log = logging.getLogger("cdm.api.sql")


class Fields(list["Sel"]):
    """The fields selected on one object, and the SQL of their object once it is known to
    bind nothing per request (made on first use, then reused: most of a statement's text)."""

    def __init__(self, fields: list[Sel] | None = None) -> None:
        super().__init__(fields or ())
        self.static = all(f.static for f in self)
        self.rendered: dict[tuple[str, str], str] = {}
        self.python = [f for f in self if f.node is not None]  # answered after the SQL
        self.merge: PythonFields | None = None


@dataclass(slots=True)
class Sel:
    """One selected field, as compiled."""

    key: str
    name: str
    attr: str  # the Python attribute name (the views of sql.json_read are keyed by it)
    type_name: str  # the field's named type
    children: Fields = field(default_factory=Fields)
    arguments: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    mask: MaskKind | None = None
    static: bool = True  # may render the same SQL text for every request (see _object)
    node: FieldNode | None = None  # set for a field Python answers (api/python_fields.py)

    def child(self, *path: str) -> Sel | None:
        """The first selected field along ``path`` of field names (through any alias)."""
        node: Sel | None = self
        for name in path:
            node = next((c for c in node.children if c.name == name), None) if node else None
        return node

    def selects(self, *path: str) -> bool:
        """Whether ``path`` is selected below this field."""
        return self.child(*path) is not None


@dataclass(slots=True)
class Env:
    """What one rendering knows: its parameters, the variables, the settings."""

    st: j.Statement
    variables: Any  # graphql-core's coerced variable values
    settings: Settings
    machine_client: bool
    ctes: list[str] = field(default_factory=list)
    read_ids: list[str] = field(default_factory=list)  # queries of the customers read
    found: dict[object, Any] = field(default_factory=dict)  # rows looked up before (_LOOKUPS)
    remembered: list[tuple[CountKey, str, int]] = field(default_factory=list)  # see below

    def args(self, sel: Sel) -> dict[str, Any]:
        assert sel.arguments is not None
        return sel.arguments(self.variables)

    def cte(self, sql: str) -> str:
        name = f"r{len(self.ctes)}"
        self.ctes.append(f"{name} AS ({sql})")
        return name

    def remembered_count(self, sql: str, params: list[object]) -> str:
        """The count statement ``sql`` over customers alone, answered from the counts
        seen before while the customers' generation has not moved (api/remembered_counts.py):
        noted as (its key, its CTE, the index of its known generation's parameter)."""
        name = self.cte(j.remembered_count(self.st, f"({self.st.embed(sql, params)})"))
        key = (sql, tuple(params))  # type: ignore[arg-type]  # bound values are hashable
        self.remembered.append((key, name, len(self.st.params) - 2))
        return j.remembered_value(name)

    def object(self, sels: Fields, type_name: str, alias: str) -> str:
        """The JSON object of a row of ``type_name`` aliased ``alias`` (for the renderers of
        other modules)."""
        return _object(self, sels, type_name, alias)


# -- Compiling the selection -----------------------------------------------------------------

# Object types rendered here and the fields of each this module renders (saved segments
# and RFM add theirs at import: api/sql_compiler_segments.py, api/sql_compiler_rfm.py).
_SCALARS = {
    "Customer": j.CUSTOMER,
    "Purchase": j.PURCHASE,
    "Product": j.PRODUCT,
    "Identity": j.IDENTITY,
    "Consent": j.CONSENT,
    "Interaction": j.INTERACTION,
    "PurchaseSummary": j.SUMMARY,
    "StoredScores": j.STORED_SCORES,
    **sql_analytics.SCALARS,
}
_NESTED = {
    "Query": {"customer", "customers", "product", "products"},
    "Customer": {
        "identities",
        "consents",
        "purchase_summary",
        "purchases",
        "interactions",
        "stored_scores",
        "scores_withheld",
    },
    "Purchase": {"product"},
    "StoredScores": {"recommended_products"},
    **sql_analytics.NESTED,
}
_NESTED["Query"] |= sql_analytics.ROOTS
# Nested fields whose SQL depends on nothing but their arguments and selection (their rows are
# correlated to their owner's; no CTE, no customers read): with literal arguments, or none,
# they render the same text for every request (see _object).
_STATIC_NESTED = {
    ("Customer", "identities"),
    ("Customer", "consents"),
    ("Customer", "purchase_summary"),
    ("Customer", "purchases"),
    ("Customer", "interactions"),
    ("Purchase", "product"),
    ("StoredScores", "recommended_products"),
}
# Fields whose SQL differs from one request to the next although they take no variable (they
# bind values of their own, or embed what a look-up found): never kept as static text.
_PER_REQUEST: set[tuple[str, str]] = {("Customer", "scores_withheld")}
# Root fields whose SQL needs rows read first (a saved segment's definition): an async
# look-up per field, given the field, the request's variables and its database; what it
# returns is kept in Env.found under id(field) for the renderer.
_LOOKUPS: dict[tuple[str, str], Callable[[Sel, Any, Database], Awaitable[object]]] = {}
# Root fields whose statement depends on nothing but the document and the settings (no clock,
# no rows read before rendering): see SqlQuery.reusable.
_REUSABLE_ROOTS = {"customer", "customers", "product", "products", "__typename"}
_CONNECTION_FIELDS = {"nodes", "edges", "page_info", "total_count"}
_PAGE_INFO = {"has_next_page", "has_previous_page", "start_cursor", "end_cursor"}


class _Compiler:
    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
        role: Role,
    ) -> None:  # fmt: skip
        self.schema = schema
        self.operation = operation
        self.role = role
        self.strawberry = schema._strawberry_schema  # type: ignore[attr-defined]
        self.fragments: dict[str, FragmentDefinitionNode] = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def selection(self, parent: GraphQLObjectType, node_set: Any) -> Fields:
        fields = collect_fields(parent, node_set, self.fragments)
        selected = Fields([self.field(parent, key, node) for key, node in fields.items()])
        if selected.python:
            selected.merge = PythonFields(
                self.schema, self.operation, [f.node for f in selected.python if f.node],
                [f.key for f in selected.python],
            )  # fmt: skip
        return selected

    def field(self, parent: GraphQLObjectType, key: str, node: FieldNode) -> Sel:
        name = node.name.value
        if name == "__typename":
            return Sel(key, name, name, parent.name)
        if name.startswith("__"):
            raise Unsupported("introspection")
        definition = parent.fields[name]
        strawberry_field = (definition.extensions or {}).get(_STRAWBERRY_FIELD)
        attr = strawberry_field.python_name if strawberry_field is not None else name
        named = get_named_type(definition.type)
        sel = Sel(key, name, attr, named.name)
        if parent.name == "Customer" and attr in PYTHON_CUSTOMER_FIELDS:
            sel.node = node  # a null in the SQL, filled in afterwards
            return sel
        coordinate = f"{parent.name}.{name}"
        verdict = access(self.role, coordinate)
        if verdict is Access.DENY:
            raise Unsupported(f"{coordinate} is refused to this role")  # refused before this
        if verdict is Access.MASK:
            sel.mask = PERSONAL_FIELDS[coordinate]
        if not self.renders(parent.name, attr, named.name):
            raise Unsupported(f"{coordinate} is not compiled to SQL")
        if definition.args:
            sel.arguments = self.arguments(definition, node, strawberry_field)
            sel.static = not uses_variables(node)
        if node.selection_set is not None:
            if not isinstance(named, GraphQLObjectType):
                raise Unsupported(f"abstract type {named.name}")
            sel.children = self.selection(named, node.selection_set)
            nested_static = (parent.name, attr) in _STATIC_NESTED or parent.name.endswith(
                ("Connection", "Edge")  # nodes, edges, pageInfo: parts of their page
            )
            sel.static = sel.static and nested_static and sel.children.static
        if (parent.name, attr) in _PER_REQUEST:
            sel.static = False
        return sel

    @staticmethod
    def renders(parent: str, attr: str, type_name: str) -> bool:
        if attr in _SCALARS.get(parent, {}) or attr in _NESTED.get(parent, ()):
            return True
        if parent.endswith("Connection"):
            return attr in _CONNECTION_FIELDS
        if parent.endswith("Edge"):
            return attr in ("cursor", "node")
        return parent == "PageInfo" and attr in _PAGE_INFO

    def arguments(
        self, definition: Any, node: FieldNode, strawberry_field: Any
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """Converts the field's arguments, as its resolver would receive them."""
        scalars = self.strawberry.schema_converter.scalar_registry
        config = self.strawberry.config
        names = {a.graphql_name or to_camel_case(a.python_name): a.python_name
                 for a in strawberry_field.arguments}  # fmt: skip

        def convert(variables: Any) -> dict[str, Any]:
            raw = get_argument_values(definition, node, variables)
            return convert_arguments(
                raw, strawberry_field.arguments, scalar_registry=scalars, config=config
            )

        def rename(variables: Any) -> dict[str, Any]:
            # Scalars come out of graphql-core as the resolver gets them (strawberry's own
            # conversion, meant for input objects and enums, costs more than the rest).
            raw = get_argument_values(definition, node, variables)
            return {names[k]: v for k, v in raw.items()}

        simple = all(
            is_leaf_type(t) and not isinstance(t, GraphQLEnumType)
            for t in (get_named_type(a.type) for a in definition.args.values())
        )
        chosen = rename if simple else convert

        if uses_variables(node):
            return chosen
        literal: list[dict[str, Any]] = []  # converted on first use, then shared (read-only)

        def constant(variables: Any) -> dict[str, Any]:
            if not literal:
                literal.append(chosen(variables))
            return literal[0]

        return constant


# -- Rendering -------------------------------------------------------------------------------


def _typename(type_name: str) -> str:
    return j.key(type_name)  # a GraphQL name: a safe literal


def _scalar(sel: Sel, view: dict[str, str], alias: str) -> str:
    expression = view[sel.attr].format(a=alias)
    if sel.mask is not None:
        expression = j.MASKED[sel.mask].format(expression)
    return expression


def _object(env: Env, sels: Fields, type_name: str, alias: str) -> str:
    """The JSON object of a row of ``type_name`` aliased ``alias`` (its text kept for the
    next request when it is the same for every request and bound no value)."""
    if not sels.static:
        return _render_object(env, sels, type_name, alias)
    found = sels.rendered.get((type_name, alias))
    if found is None:
        bound = len(env.st.params)
        found = _render_object(env, sels, type_name, alias)
        if len(env.st.params) != bound:  # literal arguments bound values (a date, a cursor)
            sels.static = False
        else:
            sels.rendered[(type_name, alias)] = found
    return found


def _render_object(env: Env, sels: Fields, type_name: str, alias: str) -> str:
    view = _SCALARS.get(type_name, {})
    pairs = []
    for sel in sels:
        if sel.node is not None:
            value = "NULL"  # its place in the object; Python fills it in
        elif sel.name == "__typename":
            value = _typename(type_name)
        elif sel.attr in view:
            value = _scalar(sel, view, alias)
        else:
            value = _NESTED_RENDERERS[(type_name, sel.attr)](env, sel, alias)
        pairs.append((sel.key, value))
    if sels.python:
        return j.json_object(pairs, hidden=(HIDDEN_ID, f"{alias}.id::text"))
    return j.json_object(pairs)


def _connection(
    env: Env, sel: Sel, page: j.Page, node_type: str, count: Callable[[], str],
    has_previous: bool, joins: str = "",
) -> str:  # fmt: skip
    """A connection object over ``page``: nodes, edges, pageInfo, totalCount as selected."""
    alias = page.alias

    def node(sels: Fields) -> str:
        return _object(env, sels, node_type, alias)

    pairs = []
    for part in sel.children:
        if part.name == "__typename":
            value = _typename(sel.type_name)
        elif part.attr == "nodes":
            value = page.nodes(node(part.children))
        elif part.attr == "edges":
            edge = []
            for inner in part.children:
                if inner.name == "__typename":
                    edge.append((inner.key, _typename(part.type_name)))
                elif inner.attr == "cursor":
                    edge.append((inner.key, _cursor(page)))
                else:
                    edge.append((inner.key, node(inner.children)))
            value = page.nodes(j.json_object(edge))
        elif part.attr == "page_info":
            value = j.json_object(
                [(p.key, _page_info(p, page, has_previous)) for p in part.children]
            )
        else:
            value = count()
        pairs.append((part.key, value))
    rows = any(
        part.attr in ("nodes", "edges")
        or (part.attr == "page_info" and any(p.attr != "has_previous_page" for p in part.children))
        for part in sel.children
    )
    return page.select(j.json_object(pairs), rows, joins)


def _cursor(page: j.Page) -> str:
    if page.cursor is None:
        raise Fallback("cursors of this ordering are encoded in Python")
    return page.cursor


def _page_info(sel: Sel, page: j.Page, has_previous: bool) -> str:
    if sel.name == "__typename":
        return _typename("PageInfo")
    if sel.attr == "has_next_page":
        return page.has_next()
    if sel.attr == "has_previous_page":
        return "true" if has_previous else "false"
    _cursor(page)
    return page.start_cursor() if sel.attr == "start_cursor" else page.end_cursor()


def _first(env: Env, first: int) -> int:
    try:
        return check_page_size(first, env.settings.max_page_size)
    except UserError as error:
        raise Fallback("a page size to refuse") from error


def _after(after: str | None, ordering: str, arity: int) -> tuple[Any, ...] | None:
    if after is None:
        return None
    try:
        return decode_cursor(after, ordering, arity)
    except UserError as error:
        raise Fallback("a cursor to refuse") from error


# Root fields: each returns the field's JSON expression; the customers they read are noted.


def _customer_root(env: Env, sel: Sel, _alias: str) -> str:
    args = env.args(sel)
    if args.get("external_id") is not None or args.get("id") is None:
        raise Fallback("customer by external id (or arguments to refuse)")
    try:
        pk = parse_id(args["id"])
    except UserError as error:
        raise Fallback("an id to refuse") from error
    rows = env.cte(env.st.named("customers_by_ids", [pk]))
    env.read_ids.append(j.ids(rows))
    return j.one(_object(env, sel.children, "Customer", "c"), rows, "c")


_CUSTOMER_CURSOR = {
    CustomerSortField.CREATED_AT: ("t", "cdm_json_time(c.sort_value)"),
    CustomerSortField.TOTAL_SPEND: ("d", "c.sort_value::text"),
}


def _customers_root(env: Env, sel: Sel, _alias: str) -> str:
    args = env.args(sel)
    try:
        flt = args["filter"].to_domain() if args.get("filter") else CustomerFilter()
    except UserError as error:
        raise Fallback("a filter to refuse") from error
    order_by = args.get("order_by")
    order = (
        CustomerOrder(order_by.field.value, order_by.direction.value)
        if order_by
        else CustomerOrder()
    )
    first = _first(env, args["first"])
    after = _after(args.get("after"), order.key, 2)
    st = env.st
    page_sql, page_args = customer_page_statement(flt, order, after, first + 1)
    assert page_args[-1] == first + 1  # its LIMIT, written in (see sql.json_read.integer)
    direction = "DESC" if order.direction is SortDirection.DESC else "ASC"
    page_rows = st.embed(page_sql, [*page_args[:-1], j.integer(first + 1)])
    rows = env.cte(j.numbered(page_rows, "c", f"c.sort_value {direction}, c.id {direction}"))
    first_param = j.integer(first).sql
    env.read_ids.append(j.ids(rows, first_param))
    sort = _CUSTOMER_CURSOR.get(order.field)

    def cursor() -> str:
        assert sort is not None
        return j.cursor(st.bind(j.json_text(order.key), "text"), sort, ("i", "c.id::text"))

    page = j.Page(rows, "c", first_param, cursor if sort is not None else None)  # rows: a CTE

    def count() -> str:
        sql, params, customers_alone = customer_count(flt)
        if customers_alone:
            return env.remembered_count(sql, params)
        return f"({st.embed(sql, params)})"

    return _connection(env, sel, page, "Customer", count, after is not None)


def _product_root(env: Env, sel: Sel, _alias: str) -> str:
    args = env.args(sel)
    if (args.get("id") is None) == (args.get("sku") is None):
        raise Fallback("arguments to refuse")
    if args.get("id") is not None:
        try:
            rows = env.st.named("products_by_ids", [parse_id(args["id"])])
        except UserError as error:
            raise Fallback("an id to refuse") from error
    else:
        rows = env.st.named("product_by_sku", args["sku"])
    return j.one(_object(env, sel.children, "Product", "pr"), f"({rows})", "pr")


def _products_root(env: Env, sel: Sel, _alias: str) -> str:
    args = env.args(sel)
    first = _first(env, args["first"])
    after = _after(args.get("after"), PRODUCT_ORDERING, 1)
    search = args.get("search")
    like = contains_pattern(search) if search is not None else None
    category = args.get("category")
    st = env.st
    after_id = after[0] if after else None
    rows = st.named("products_page", category, like, after_id, j.integer(first + 1))
    rows = j.numbered(rows, "pr", "pr.id")

    def cursor() -> str:
        return j.cursor(st.bind(j.json_text(PRODUCT_ORDERING), "text"), ("i", "pr.id::text"))

    page = j.Page(f"({rows})", "pr", j.integer(first).sql, cursor)

    def count() -> str:
        return f"({st.named('products_count', category, like)})"

    return _connection(env, sel, page, "Product", count, after is not None)


# Customer fields


def _identities(env: Env, sel: Sel, c: str) -> str:
    rows = env.st.named("identities_by_customer_ids", j.Raw(f"ARRAY[{c}.id]"))
    obj = _object(env, sel.children, "Identity", "i")
    return j.json_list(obj, rows, "i", "i.kind, i.source, i.id")


def _consents(env: Env, sel: Sel, c: str) -> str:
    rows = env.st.named("current_consents_by_customer_ids", j.Raw(f"ARRAY[{c}.id]"))
    return j.json_list(_object(env, sel.children, "Consent", "k"), rows, "k", "k.purpose")


def _purchase_summary(env: Env, sel: Sel, c: str) -> str:
    counts = [n for s in sel.children for n in j.SUMMARY_DISTINCT.get(s.attr, ())]
    return j.summary(c, _object(env, sel.children, "PurchaseSummary", "s"), counts)


def _withheld(env: Env, c: str) -> str:
    no_consent = env.st.bind(WITHHELD, "text") if env.machine_client else None
    return j.withheld(c, env.st.bind(OBJECTED, "text"), no_consent)


def _scores_withheld(env: Env, _sel: Sel, c: str) -> str:
    return _withheld(env, c)


def _stored_scores(env: Env, sel: Sel, c: str) -> str:
    obj = _object(env, sel.children, "StoredScores", "cs")
    return j.stored_scores(c, obj, _withheld(env, c))


def _recommended_products(env: Env, sel: Sel, scores: str) -> str:
    return j.recommended_products(scores, _object(env, sel.children, "Product", "pr"))


def _window(env: Env, sel: Sel, ordering: str, kinds: bool = False) -> tuple[TimeWindow, int]:
    args = env.args(sel)
    first = _first(env, args["first"])
    after = _after(args.get("after"), ordering, 2)
    try:
        window = TimeWindow(
            first=first, after=after, since=args.get("since"), until=args.get("until"),  # type: ignore[arg-type]
            kinds=tuple(args["kinds"]) if kinds and args.get("kinds") is not None else None,
        )  # fmt: skip
    except UserError as error:
        raise Fallback("a time window to refuse") from error
    return window, first


def _purchases(env: Env, sel: Sel, c: str) -> str:
    window, first = _window(env, sel, "purchases")
    st = env.st
    with_products = sel.selects("nodes", "product") or sel.selects("edges", "node", "product")

    def cursor() -> str:
        return j.cursor(
            st.bind(j.json_text("purchases"), "text"),
            ("t", "cdm_json_time(p.purchased_at)"), ("i", "p.id::text"),
        )  # fmt: skip

    rows = j.PURCHASES.page(st, c, first + 1, window)
    page = j.Page(rows, "p", j.integer(first).sql, cursor)

    def count() -> str:
        if window.bounded:
            return j.PURCHASES.count(st, c, window)
        return j.PURCHASES_UNBOUNDED_COUNT.format(customer=c)

    joins = j.PURCHASED_PRODUCT_JOIN if with_products else ""
    return _connection(env, sel, page, "Purchase", count, window.after is not None, joins)


def _purchased_product(env: Env, sel: Sel, _p: str) -> str:
    obj = _object(env, sel.children, "Product", "pr")
    return f"(CASE WHEN pr.id IS NULL THEN NULL ELSE {obj} END)"


def _interactions(env: Env, sel: Sel, c: str) -> str:
    window, first = _window(env, sel, "interactions", kinds=True)
    st = env.st
    kinds = list(window.kinds) if window.kinds is not None else None

    def cursor() -> str:
        return j.cursor(
            st.bind(j.json_text("interactions"), "text"),
            ("t", "cdm_json_time(i.occurred_at)"), ("i", "i.id::text"),
        )  # fmt: skip

    rows = j.INTERACTIONS.page(st, c, first + 1, window, kinds)
    page = j.Page(rows, "i", j.integer(first).sql, cursor)
    return _connection(
        env, sel, page, "Interaction", lambda: j.INTERACTIONS.count(st, c, window, kinds),
        window.after is not None,
    )  # fmt: skip


_NESTED_RENDERERS: dict[tuple[str, str], Callable[[Env, Sel, str], str]] = {
    ("Query", "customer"): _customer_root,
    ("Query", "customers"): _customers_root,
    ("Query", "product"): _product_root,
    ("Query", "products"): _products_root,
    ("Customer", "identities"): _identities,
    ("Customer", "consents"): _consents,
    ("Customer", "purchase_summary"): _purchase_summary,
    ("Customer", "purchases"): _purchases,
    ("Customer", "interactions"): _interactions,
    ("Purchase", "product"): _purchased_product,
    ("Customer", "stored_scores"): _stored_scores,
    ("Customer", "scores_withheld"): _scores_withheld,
    ("StoredScores", "recommended_products"): _recommended_products,
    **sql_analytics.RENDERERS,
}


@dataclass(frozen=True, slots=True)
class Rendered:
    """A statement ready to run: its SQL, its parameters, whether it returns customer ids
    (its second column), and the counts it may reuse: their keys, and for each the index of
    the parameter of its known generation (its count's follows); the statement returns the
    generation and count of each in its last column."""

    sql: str
    params: list[object]
    reads_customers: bool
    remembered: tuple[CountKey, ...] = ()
    known_at: tuple[int, ...] = ()

    def with_counts(self, counts: CountMemory | None) -> Rendered:
        """This statement with the counts known in ``counts`` as its parameters."""
        if not self.remembered:
            return self
        params = list(self.params)
        for key, at in zip(self.remembered, self.known_at, strict=True):
            params[at], params[at + 1] = (counts and counts.get(key)) or (None, None)
        return Rendered(self.sql, params, self.reads_customers, self.remembered, self.known_at)

    def remember(self, row: Any, counts: CountMemory) -> None:
        """Keep the generations and counts the statement returned, for the next request."""
        if self.remembered:
            counts.learn(self.remembered, row[-1])


class SqlQuery:
    """An operation compiled for one role: rendered per request into one statement."""

    __slots__ = (
        "_reused",
        "aggregates",
        "answers_in_python",
        "lookups",
        "machine_client",
        "reusable",
        "roots",
        "track_reads",
    )

    def __init__(
        self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode,
        role: Role, *, track_reads: bool,
    ) -> None:  # fmt: skip
        if operation.operation is not OperationType.QUERY:
            raise Unsupported("only queries are compiled")
        if operation.directives:
            raise Unsupported("operation directives")
        query_type = schema.query_type
        assert query_type is not None
        self.roots = _Compiler(schema, document, operation, role).selection(
            query_type, operation.selection_set
        )
        aggregates = sum(sel.attr in sql_analytics.ROOTS for sel in self.roots)
        if aggregates > 1:
            # Each scans many rows: the Python paths run them side by side on several
            # connections, where one statement would run them one after another.
            raise Unsupported("several analytics roots")
        # An aggregate is planned for its arguments' values (the compiled reads' generic plans
        # made topProducts 60 % slower): it runs on the main pool, whose plans are custom.
        self.aggregates = aggregates == 1
        self.track_reads = track_reads
        self.machine_client = role is Role.PERSONALIZATION
        self.answers_in_python = _has_python(self.roots)  # some fields filled in after the SQL
        self.lookups = [s for s in self.roots if ("Query", s.attr) in _LOOKUPS]
        # Without variables, roots whose statement follows from the document alone render
        # the same statement for every request: rendered once (its counts set per request).
        self.reusable = (
            not operation.variable_definitions
            and not self.lookups
            and all(sel.attr in _REUSABLE_ROOTS for sel in self.roots)
        )
        self._reused: tuple[Settings, Rendered] | None = None

    async def look_up(self, variables: Any, db: Database) -> dict[object, Any]:
        """What the root fields need read before rendering (see _LOOKUPS), for render()."""
        return {
            id(sel): await _LOOKUPS[("Query", sel.attr)](sel, variables, db) for sel in self.lookups
        }

    async def fill(
        self, data: dict[str, Any], context: Context, variables: dict[str, Any] | None
    ) -> bool:
        """Fill in the fields Python answers; False when graphql-core must answer instead."""
        found: dict[int, tuple[Fields, list[dict[str, Any]]]] = {}
        _collect(self.roots, data, found)
        for fields, objects in found.values():
            assert fields.merge is not None
            if not await fields.merge.fill(objects, context, variables):
                return False
        return True

    def render(
        self, variables: Any, settings: Settings, found: dict[object, Any] | None = None,
        counts: CountMemory | None = None,
    ) -> Rendered:  # fmt: skip
        """The statement for these (coerced) variables and what look_up() found, reusing
        the `counts` seen before where still exact; Fallback when Python must answer."""
        if self._reused is not None and self._reused[0] is settings:
            return self._reused[1].with_counts(counts)
        env = Env(j.Statement(), variables, settings, self.machine_client, found=found or {})
        data = _object(env, self.roots, "Query", "")
        with_ = f"WITH {', '.join(env.ctes)} " if env.ctes else ""
        # As UTF-8 bytes (bytea): asyncpg hands them over as they came, where text would be
        # decoded into a str only to be encoded again for the response (30 µs for W2's 15 kB).
        columns = f"convert_to({data}::text, 'UTF8')"
        reads = self.track_reads and bool(env.read_ids)
        if reads:
            columns += ", ARRAY(" + " UNION ".join(env.read_ids) + ")"
        if env.remembered:
            columns += ", " + j.remembered_column(cte for _, cte, _ in env.remembered)
        sql, params = env.st.finish(f"{with_}SELECT {columns}")
        kept = env.st.kept
        assert kept is not None
        rendered = Rendered(
            sql, params, reads, tuple(key for key, _, _ in env.remembered),
            tuple(kept.index(at) for _, _, at in env.remembered),
        )  # fmt: skip
        if self.reusable:
            self._reused = (settings, rendered)
        return rendered.with_counts(counts)


def _has_python(fields: Fields) -> bool:
    return bool(fields.python) or any(_has_python(f.children) for f in fields)


def _collect(
    fields: Fields, value: Any, found: dict[int, tuple[Fields, list[dict[str, Any]]]]
) -> None:
    """The objects of ``value`` (the JSON of ``fields``) that carry Python-answered fields."""
    if isinstance(value, list):
        for item in value:
            _collect(fields, item, found)
        return
    if not isinstance(value, dict):
        return
    if fields.python:
        found.setdefault(id(fields), (fields, []))[1].append(value)
    for sel in fields:
        if sel.children:
            _collect(sel.children, value.get(sel.key), found)


def compile_sql(
    schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode, role: Role,
    *, track_reads: bool,
) -> SqlQuery | str:  # fmt: skip
    """The operation compiled for ``role``, or the reason it is left to the Python paths."""
    try:
        return SqlQuery(schema, document, operation, role, track_reads=track_reads)
    except (Unsupported, ValueError) as why:
        return str(why)
    except Exception:  # our bug: the Python paths still answer; the log and metric show it
        _log.exception("the SQL compiler failed on an operation; the Python paths answer it")
        return "compiler error (logged)"


# Renderers of other modules, which use the helpers above; each registers itself in the
# tables above (imported last, as they import this module).
from api import sql_compiler_rfm, sql_compiler_segments  # noqa: E402, F401
