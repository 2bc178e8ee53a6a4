"""Synthetic customer histories with learnable structure, generated fast and reproducibly.

Pure: numpy and the standard library only, no I/O. :mod:`ingestion.seed` writes the columns
produced here to PostgreSQL.

Generative model
================

Everything is driven by a fixed reference time ``now`` (timezone-aware UTC); the history
covers the ``HISTORY_DAYS`` (3 years) before it and nothing is ever generated at or after it.

Catalogue
    ``CATALOGUE_SIZE`` products in 19 categories. Each category has a log-normal price
    (median and spread per category; "premium" adjectives cost 35 % more), Zipf-like
    popularity within the category, and 1-3 *complementary* categories (electronics ->
    phone accessories, kitchen -> grocery, ...). Every product has a *partner* product,
    drawn from its own (30 %) or a complementary (70 %) category: the two are often bought
    together. The catalogue comes from its own fixed seed, so every run shares it.

Customers (one latent profile each)
    * signup ``s``: spread over the history with growth (more recent signups more likely);
    * loyalty ``z ~ N(0, 1)``, which couples the latents below;
    * purchase rate ``lambda ~ Gamma(0.75, .)`` orders/year (Pareto/NBD heterogeneity: many
      light buyers, a long tail of heavy ones);
    * churn hazard ``mu ~ Gamma(2, .) * exp(-0.35 z)``; lifetime ``~ Exp(mu)``; dropout
      ``tau = s + lifetime`` (may lie after ``now``: that customer is still alive). After
      ``tau`` the customer never buys again;
    * service incidents at 0.3 per year; the first one before dropout opens a ticket (half
      the time a complaint follows) and, from then on, adds a competing dropout risk of
      ``3 mu`` and cuts the purchase rate to 60 %: complaints precede fewer purchases;
    * category preferences ``~ Dirichlet(0.3 * C * popularity)`` (concentrated: most
      customers favour 1-3 categories); premium propensity ``~ Beta(2, 3)``, drifting up
      with every order (customers trade up: upsell); a primary purchase channel;
    * e-mail open propensity ``~ Beta(2, 10) * exp(0.3 z)`` and click propensity.

Engagement
    ``e(t) = 1`` until 120 days before ``tau``, then falls linearly to 0.25 at ``tau`` and
    decays (``0.2 exp(-(t - tau) / 60 d)``) afterwards. It thins e-mail opens, clicks and
    browsing, so falling engagement foreshadows churn, also for customers whose dropout is
    still in the future.

Orders and purchases
    Orders form a Poisson process with intensity ``lambda * month(t) * weekday(t)``
    (``* 0.6`` after an incident) on ``[s, min(tau, now))``, sampled by thinning
    (November/December peak, Saturday high); the time of day follows a diurnal profile.
    An order's category is drawn from the preferences, except that with probability 0.35
    it is a complement of the *previous* order's category (A raises the chance of B next).
    Baskets have 1-4 lines (58/25/11/6 %): line 1 is a product of the order's category
    (popularity-weighted; the pricier of two candidates with the premium probability),
    further lines are the partner of line 1 (35 %), another product of the same category
    (30 %) or one of a complementary category. Quantity is 1 (84 %), 2 or 3. 10 % of lines
    are discounted 5-30 % (35 % in November, 25 % in January); amounts are exact cents.
    The channel is the customer's primary one 80 % of the time. Lines of one order share
    ``order_ref`` and timestamp.

Interactions (what foreshadows behaviour)
    * ``email_open``: weekly newsletters plus seasonal campaigns, while the customer holds
      an ``email_marketing`` consent; each is opened with the open propensity times
      engagement; some opens lead to an ``email_click`` on a preferred category;
    * 30 % of orders are preceded (0-3 days) by a click on the latest campaign, linking to
      the order's category; 35 % by a ``page_view`` of the product 0.3-10 days before;
      65 % of web and app orders by a session of product-page views and a checkout view;
    * background browsing (category pages, thinned by engagement);
    * support (channel ``support``): the incident's ``ticket_opened`` and ``complaint``;
      before dropout (also for dropouts up to 90 days after ``now``) a ticket (35 %, 3-80
      days before), a second one (15 %) and a ``complaint`` (20 %); benign tickets after
      2.5 % of orders and complaints after 0.5 %;
    * ``review`` (social) after 7 % of orders, with low ratings near dropout;
    * ``unsubscribe`` when the e-mail consent is revoked.

Consents
    Purposes ``email_marketing``, ``sms`` (only with a phone), ``personalization``,
    ``analytics``, ``profiling``, each present with its own probability and mostly granted
    at signup. A granted consent is later revoked (a second row, ``granted = false``) with a
    small probability, and e-mail marketing by 35 % of churners around their dropout.

Profiles and identities
    Names from built-in lists, unique e-mails ``first.last.<id>@example.<tld>`` (97 %),
    E.164 phones derived bijectively from the id (70 %, so unique), weighted countries,
    birth dates for 60 %. Identities: the e-mail (``shop``), a CRM id ``CRM-0000123`` (85 %)
    and 0-2 web cookies whose value embeds the id (unique across runs).

Reproducibility
    A chunk's output depends only on (``seed``, ``chunk``, ``first_customer_id``, ``n``,
    ``now``): its generator is ``np.random.default_rng([seed, chunk])`` and the ids only
    label rows. Timestamps are ``datetime64[us]`` holding UTC; money is integer cents.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np

DAY = 86_400.0
YEAR = 365.25 * DAY
HISTORY_DAYS = 3 * 365
CATALOGUE_SIZE = 400
CATALOGUE_SEED = 20_240_501
CHUNK_SIZE = 20_000
CURRENCY = "EUR"
PURCHASE_SOURCE = "shop"

PURCHASE_CHANNELS = ("web", "store", "app", "phone", "marketplace")
INTERACTION_CHANNELS = ("web", "email", "support", "social", "store", "app", "phone")
# The system that reports an interaction, by channel (same order as INTERACTION_CHANNELS).
INTERACTION_SOURCES = ("web", "esp", "helpdesk", "reviews", "pos", "app", "callcenter")
INTERACTION_KINDS = (
    "email_open", "email_click", "page_view", "ticket_opened", "complaint", "review",
    "unsubscribe",
)  # fmt: skip
CONSENT_PURPOSES = ("email_marketing", "sms", "personalization", "analytics", "profiling")

# Indices into the tuples above.
_WEB, _EMAIL, _SUPPORT, _SOCIAL, _APP = 0, 1, 2, 3, 5
_OPEN, _CLICK, _VIEW, _TICKET, _COMPLAINT, _REVIEW, _UNSUB = range(7)
_P_WEB, _P_APP = 0, 2

# Seasonality (multipliers on the purchase rate): Jan..Dec and Monday..Sunday.
_MONTH = np.array([0.85, 0.80, 0.90, 0.95, 1.00, 0.95, 0.90, 0.95, 1.00, 1.05, 1.40, 1.65])
_WEEKDAY = np.array([0.95, 0.95, 1.00, 1.00, 1.05, 1.20, 0.90])
_SEASON_MAX = float(_MONTH.max() * _WEEKDAY.max())
_HOUR = np.array([
    0.6, 0.35, 0.2, 0.15, 0.15, 0.25, 0.5, 0.9, 1.2, 1.4, 1.5, 1.6,
    1.8, 1.7, 1.5, 1.5, 1.6, 1.8, 2.1, 2.4, 2.4, 2.0, 1.5, 1.0,
])  # fmt: skip
_HOUR_P = _HOUR / _HOUR.sum()

_MEAN_RATE = 6.2  # orders per year, population mean
_BASKET_P = np.array([0.58, 0.25, 0.11, 0.06])
_QUANTITY_P = np.array([0.84, 0.12, 0.04])
_CHANNEL_P = np.array([0.45, 0.20, 0.20, 0.05, 0.10])
_RAMP_DAYS = 120.0  # engagement starts falling this long before dropout
_INCIDENT_RATE = 0.3  # service incidents per customer-year
_AFTER_INCIDENT = 0.6  # purchase-rate multiplier after an incident

_CONSENT_PRESENT = np.array([0.85, 0.35, 0.60, 0.70, 0.35])
_CONSENT_GRANTED = np.array([0.92, 0.85, 0.90, 0.88, 0.75])

_TICKET_TOPICS = ("delivery", "returns", "account", "refund", "product_defect", "billing")
_BENIGN_TOPIC_P = np.array([0.45, 0.35, 0.20, 0.0, 0.0, 0.0])
_CHURN_TOPIC_P = np.array([0.25, 0.05, 0.05, 0.30, 0.25, 0.10])
_RATING_HAPPY_P = np.array([0.03, 0.05, 0.12, 0.35, 0.45])
_RATING_UNHAPPY_P = np.array([0.30, 0.30, 0.20, 0.12, 0.08])


@dataclass(frozen=True, slots=True)
class _Category:
    slug: str
    median_price: float
    sigma: float
    weight: float
    nouns: tuple[str, ...]
    complements: tuple[str, ...]


_CATEGORIES = (
    _Category("books", 14, 0.35, 1.0, (
        "Novel", "Cookbook", "Travel Guide", "Biography", "Atlas", "Poetry Collection",
        "Graphic Novel", "Field Guide"), ("stationery", "toys")),
    _Category("electronics", 180, 0.8, 1.1, (
        "Headphones", "Bluetooth Speaker", "Smartwatch", "Tablet", "E-Reader",
        "Action Camera", "Soundbar", "Drone"), ("phone_accessories", "computers")),
    _Category("phone_accessories", 22, 0.5, 0.9, (
        "Phone Case", "Charger", "USB-C Cable", "Screen Protector", "Power Bank", "Car Mount",
        "Wireless Charger"), ("electronics",)),
    _Category("computers", 600, 0.55, 0.5, (
        "Laptop", "Monitor", "Keyboard", "Mouse", "Webcam", "Docking Station", "SSD Drive"),
        ("phone_accessories", "stationery")),
    _Category("kitchen", 40, 0.8, 1.0, (
        "Chef's Knife", "Frying Pan", "Espresso Maker", "Blender", "Cutting Board",
        "Dutch Oven", "Kettle", "Spice Rack"), ("grocery", "home_decor")),
    _Category("home_decor", 35, 0.7, 0.8, (
        "Cushion", "Table Lamp", "Vase", "Throw Blanket", "Wall Clock", "Picture Frame",
        "Scented Candle", "Rug"), ("kitchen", "garden")),
    _Category("garden", 30, 0.9, 0.6, (
        "Planter", "Garden Hose", "Pruning Shears", "Seed Kit", "Bird Feeder",
        "Lawn Sprinkler", "Raised Bed"), ("diy", "home_decor")),
    _Category("diy", 55, 0.8, 0.6, (
        "Cordless Drill", "Tool Set", "Spirit Level", "Tape Measure", "Work Gloves",
        "Screwdriver Set", "Ladder"), ("garden",)),
    _Category("womens_fashion", 45, 0.6, 1.2, (
        "Dress", "Blouse", "Cardigan", "Jeans", "Scarf", "Trench Coat", "Skirt", "Handbag"),
        ("shoes", "beauty")),
    _Category("mens_fashion", 45, 0.6, 0.9, (
        "Shirt", "Chinos", "Jacket", "Hoodie", "Polo Shirt", "Wool Sweater", "Belt"),
        ("shoes",)),
    _Category("shoes", 75, 0.45, 0.9, (
        "Sneakers", "Boots", "Loafers", "Sandals", "Running Shoes", "Trail Shoes"),
        ("womens_fashion", "mens_fashion", "sports")),
    _Category("sports", 50, 0.85, 0.8, (
        "Yoga Mat", "Tent", "Backpack", "Water Bottle", "Dumbbell Set", "Bike Helmet",
        "Sleeping Bag"), ("shoes", "health")),
    _Category("beauty", 18, 0.6, 1.0, (
        "Face Serum", "Lipstick", "Shampoo", "Moisturiser", "Perfume", "Hair Dryer",
        "Nail Polish"), ("health", "womens_fashion")),
    _Category("health", 15, 0.5, 0.7, (
        "Vitamin D", "Protein Powder", "First Aid Kit", "Electric Toothbrush", "Thermometer",
        "Massage Ball"), ("beauty", "sports")),
    _Category("toys", 25, 0.7, 0.8, (
        "Board Game", "Puzzle", "Building Blocks", "Plush Bear", "Remote Control Car",
        "Card Game"), ("baby", "books")),
    _Category("baby", 28, 0.7, 0.5, (
        "Baby Monitor", "Stroller Organiser", "Bottle Set", "Baby Blanket", "Teether",
        "Changing Mat"), ("toys", "health")),
    _Category("pet", 20, 0.7, 0.6, (
        "Dog Food", "Cat Litter", "Pet Bed", "Chew Toy", "Leash", "Scratching Post"),
        ("grocery",)),
    _Category("grocery", 9, 0.5, 1.1, (
        "Coffee Beans", "Green Tea", "Olive Oil", "Dark Chocolate", "Pasta", "Honey",
        "Granola"), ("kitchen", "pet")),
    _Category("stationery", 12, 0.7, 0.5, (
        "Notebook", "Fountain Pen", "Desk Organiser", "Planner", "Sticky Notes", "Desk Lamp"),
        ("books", "computers")),
)  # fmt: skip

_ADJECTIVES = (
    "Classic", "Essential", "Compact", "Eco", "Urban", "Nordic", "Vintage", "Everyday",
    "Smart", "Organic", "Travel", "Studio", "Heritage", "Mini", "Premium", "Deluxe", "Pro",
    "Luxe", "Signature", "Ultra",
)  # fmt: skip
_PREMIUM_ADJECTIVES = frozenset({"Premium", "Deluxe", "Pro", "Luxe", "Signature", "Ultra"})

_FIRST_NAMES = (
    "Anna", "Lukas", "Emma", "Noah", "Sofia", "Mateo", "Léa", "Hugo", "Olivia", "Jack",
    "Mia", "Finn", "Chiara", "Lorenzo", "Lucía", "Javier", "Zofia", "Jakub", "Maja", "Oskar",
    "Astrid", "Lars", "Sanne", "Daan", "Fatima", "Omar", "Aisha", "Yusuf", "Priya", "Arjun",
    "Mei", "Wei", "Hana", "Kenji", "Chloé", "Louis", "Amelia", "Oliver", "Ingrid", "Søren",
    "Élodie", "Mathis", "Zeynep", "Emre", "Nadia", "Mehmet", "Grace", "Kwame", "Amara",
    "Chidi", "Isabel", "Diego", "Camila", "Rafael", "Ana", "João", "Siobhán", "Niamh", "Eoin",
    "Katarzyna", "Łukasz", "Marta", "Jonas", "Elif", "Leon", "Clara", "Ben", "Laura",
    "Tomás", "Inès",
)  # fmt: skip
_LAST_NAMES = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Martin", "Bernard", "Dubois",
    "Lefèvre", "Smith", "Jones", "Taylor", "Brown", "Williams", "Johnson", "García",
    "Rodríguez", "Martínez", "López", "Rossi", "Russo", "Bianchi", "Ferrari", "de Jong",
    "Jansen", "van Dijk", "Bakker", "Kowalski", "Nowak", "Wiśniewski", "Andersson",
    "Johansson", "Karlsson", "Nilsson", "Gruber", "Huber", "Wagner", "Novák", "Horváth",
    "Kaya", "Yılmaz", "Demir", "Khan", "Patel", "Singh", "Sharma", "Chen", "Wang", "Li",
    "Nguyen", "Kim", "Tanaka", "Sato", "Okafor", "Mensah", "Diallo", "Haddad", "Nasser",
    "O'Brien", "Murphy", "Silva", "Santos", "Costa", "Pereira", "Larsen", "Hansen",
    "Virtanen", "Papadopoulos",
)  # fmt: skip
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")

# ISO 3166-1 alpha-2, share of customers, E.164 country code, mobile prefix.
_COUNTRIES = (
    ("DE", 0.22, "49", "15"), ("FR", 0.13, "33", "6"), ("GB", 0.12, "44", "7"),
    ("US", 0.11, "1", "2"), ("NL", 0.07, "31", "6"), ("ES", 0.07, "34", "6"),
    ("IT", 0.07, "39", "3"), ("PL", 0.05, "48", "5"), ("SE", 0.04, "46", "7"),
    ("AT", 0.03, "43", "66"), ("BE", 0.03, "32", "4"), ("CH", 0.02, "41", "7"),
    ("DK", 0.02, "45", "2"), ("IE", 0.01, "353", "8"), ("PT", 0.01, "351", "9"),
)  # fmt: skip
_COUNTRY_P = np.array([c[1] for c in _COUNTRIES]) / sum(c[1] for c in _COUNTRIES)


def _ascii_slug(name: str) -> str:
    """Lower-case ASCII letters only, for e-mail local parts (``Łukasz`` -> ``lukasz``)."""
    table = str.maketrans({"ł": "l", "ø": "o", "ß": "ss", "ı": "i", "æ": "ae", "đ": "d"})
    folded = unicodedata.normalize("NFKD", name.lower().translate(table))
    return "".join(ch for ch in folded if "a" <= ch <= "z")


def _objects(values: list[str] | tuple[str, ...]) -> np.ndarray:
    """A 1-d object array (fancy indexing then yields Python strings without copying)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


_FIRST = _objects(_FIRST_NAMES)
_LAST = _objects(_LAST_NAMES)
_FIRST_SLUG = [_ascii_slug(n) for n in _FIRST_NAMES]
_LAST_SLUG = [_ascii_slug(n) for n in _LAST_NAMES]
_COUNTRY_CODES = _objects([c[0] for c in _COUNTRIES])
_PURCHASE_CHANNEL_OBJ = _objects(PURCHASE_CHANNELS)
_INTERACTION_CHANNEL_OBJ = _objects(INTERACTION_CHANNELS)
_INTERACTION_SOURCE_OBJ = _objects(INTERACTION_SOURCES)
_KIND_OBJ = _objects(INTERACTION_KINDS)
_PURPOSE_OBJ = _objects(CONSENT_PURPOSES)


# --- catalogue -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The products (sorted by category) and the structure purchases are drawn from.

    Rows are catalogue indices ``0..n-1``; the database assigns product ids.
    """

    sku: np.ndarray  # object: str, ``SKU-000123``
    name: np.ndarray  # object: str
    category: np.ndarray  # object: str (category slug)
    category_index: np.ndarray  # int64, into ``categories``
    price_cents: np.ndarray  # int64
    created_at: np.ndarray  # datetime64[us], UTC
    categories: tuple[str, ...]
    category_weight: np.ndarray  # float64, sums to 1: how popular each category is
    category_start: np.ndarray  # int64: first row of each category
    category_end: np.ndarray  # int64: one past the last row of each category
    popularity_keys: np.ndarray  # float64: category index + cumulative share within it
    partner: np.ndarray  # int64: the product most often bought with each product
    complements: np.ndarray  # int64 (categories x 3): complementary categories
    complement_cum: np.ndarray  # float64 (categories x 3): their cumulative weights

    @property
    def currency(self) -> str:
        """ISO 4217 currency of every price."""
        return CURRENCY

    def __len__(self) -> int:
        return len(self.sku)

    def sample_in_category(self, category: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Popularity-weighted products of the given categories, for uniforms ``u`` in [0, 1)."""
        rows = np.searchsorted(self.popularity_keys, category + u, side="right")
        # Guard against c + u rounding up to c + 1 for u just below 1.
        return np.minimum(rows, self.category_end[category] - 1)

    def complement_of(self, category: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A complementary category of each given category, for uniforms ``u`` in [0, 1)."""
        j = (u[:, None] >= self.complement_cum[category]).sum(axis=1)
        return self.complements[category, np.minimum(j, 2)]


def generate_catalogue(rng: np.random.Generator, now: datetime) -> Catalogue:
    """Build the product catalogue (``CATALOGUE_SIZE`` products); created before the history."""
    now_s = _epoch_seconds(now)
    slugs = tuple(c.slug for c in _CATEGORIES)
    index = {s: i for i, s in enumerate(slugs)}
    n_cat = len(_CATEGORIES)
    weight = np.array([c.weight for c in _CATEGORIES])
    weight /= weight.sum()

    # Largest-remainder allocation: deterministic, sums to CATALOGUE_SIZE.
    exact = weight * CATALOGUE_SIZE
    counts = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - counts), kind="stable")[: CATALOGUE_SIZE - counts.sum()]:
        counts[i] += 1
    end = np.cumsum(counts)
    start = end - counts

    names: list[str] = []
    prices: list[int] = []
    keys: list[np.ndarray] = []
    for i, cat in enumerate(_CATEGORIES):
        k = int(counts[i])
        combos = rng.choice(len(_ADJECTIVES) * len(cat.nouns), size=k, replace=False)
        adjectives = [_ADJECTIVES[c // len(cat.nouns)] for c in combos]
        nouns = [cat.nouns[c % len(cat.nouns)] for c in combos]
        names += [f"{a} {noun}" for a, noun in zip(adjectives, nouns, strict=True)]
        euros = cat.median_price * np.exp(cat.sigma * rng.standard_normal(k))
        euros *= np.array([1.35 if a in _PREMIUM_ADJECTIVES else 1.0 for a in adjectives])
        # Shop prices end in .49 or .99.
        prices += np.maximum(np.round(euros * 2).astype(np.int64) * 50 - 1, 49).tolist()
        zipf = 1.0 / (rng.permutation(k) + 1.0) ** 0.8
        cum = np.cumsum(zipf) / zipf.sum()
        cum[-1] = 1.0
        keys.append(i + cum)

    category_index = np.repeat(np.arange(n_cat), counts)
    complements = np.zeros((n_cat, 3), dtype=np.int64)
    complement_cum = np.ones((n_cat, 3))
    for i, cat in enumerate(_CATEGORIES):
        comp = [index[s] for s in cat.complements]
        w = np.array([0.5, 0.3, 0.2][: len(comp)])
        complements[i] = (comp * 3)[:3]
        complement_cum[i, : len(comp)] = np.cumsum(w / w.sum())
        complement_cum[i, len(comp) - 1 :] = 1.0

    catalogue = Catalogue(
        sku=_objects([f"SKU-{i + 1:06d}" for i in range(CATALOGUE_SIZE)]),
        name=_objects(names),
        category=_objects([slugs[i] for i in category_index]),
        category_index=category_index,
        price_cents=np.array(prices, dtype=np.int64),
        created_at=_to_datetime64(
            now_s - (HISTORY_DAYS + rng.uniform(30, 365, CATALOGUE_SIZE)) * DAY, now_s
        ),
        categories=slugs,
        category_weight=weight,
        category_start=start,
        category_end=end,
        popularity_keys=np.concatenate(keys),
        partner=np.arange(CATALOGUE_SIZE),
        complements=complements,
        complement_cum=complement_cum,
    )
    # Partners: same category 30 %, else a complementary one; never the product itself.
    own = rng.random(CATALOGUE_SIZE) < 0.3
    other = catalogue.complement_of(category_index, rng.random(CATALOGUE_SIZE))
    partner_cat = np.where(own, category_index, other)
    partner = catalogue.sample_in_category(partner_cat, rng.random(CATALOGUE_SIZE))
    rows = np.arange(CATALOGUE_SIZE)
    same = partner == rows
    partner[same] = start[category_index[same]] + (
        (rows[same] - start[category_index[same]] + 1) % counts[category_index[same]]
    )
    return replace(catalogue, partner=partner)


# --- the world: catalogue, campaign calendar, property vocabulary -----------------------


@dataclass(frozen=True, slots=True)
class World:
    """Everything chunks share: the reference time, catalogue, campaigns and JSON vocabulary.

    Interactions refer to their ``properties`` by index into ``properties`` (a JSON object
    text each), since they repeat a lot: that keeps generation and loading cheap.
    """

    now: datetime
    catalogue: Catalogue
    campaign_at: np.ndarray  # float64 epoch seconds, ascending
    campaign_names: tuple[str, ...]
    properties: tuple[str, ...]
    property_offsets: dict[str, int]  # first index of each section of ``properties``

    @property
    def now_seconds(self) -> float:
        """``now`` as epoch seconds."""
        return _epoch_seconds(self.now)


def build_world(now: datetime, catalogue: Catalogue | None = None) -> World:
    """The shared context for ``now``; the catalogue defaults to the fixed-seed one."""
    now = _utc(now)
    if catalogue is None:
        catalogue = generate_catalogue(np.random.default_rng(CATALOGUE_SEED), now)
    names, times = _campaigns(now)
    props: list[str] = []
    offsets: dict[str, int] = {}

    def section(name: str, objects: list[dict[str, object]]) -> None:
        offsets[name] = len(props)
        props.extend(json.dumps(o, separators=(",", ":")) for o in objects)

    cats = catalogue.categories
    skus = catalogue.sku.tolist()
    section("campaign", [{"campaign": c} for c in names])
    section("click", [{"campaign": c, "link": f"/c/{k}"} for c in names for k in cats])
    section("product", [{"page": f"/p/{s}"} for s in skus])
    section("category", [{"page": f"/c/{k}"} for k in cats])
    section("checkout", [{"page": "/checkout"}])
    section("ticket", [{"topic": t} for t in _TICKET_TOPICS])
    section("complaint", [{"topic": t, "severity": "high"} for t in _TICKET_TOPICS])
    section("review", [{"sku": s, "rating": r} for s in skus for r in range(1, 6)])
    section("unsubscribe", [{"list": "newsletter"}])
    return World(
        now=now,
        catalogue=catalogue,
        campaign_at=np.array(times, dtype=np.float64),
        campaign_names=tuple(names),
        properties=tuple(props),
        property_offsets=offsets,
    )


def _campaigns(now: datetime) -> tuple[list[str], list[float]]:
    """Weekly newsletters (Tuesdays 09:00) and seasonal campaigns over the history."""
    start = now - timedelta(days=HISTORY_DAYS + 14)
    found: list[tuple[datetime, str]] = []
    day = start.replace(hour=9, minute=0, second=0, microsecond=0)
    day += timedelta(days=(1 - day.weekday()) % 7)
    while day < now:
        iso = day.isocalendar()
        found.append((day, f"newsletter-{iso.year}-w{iso.week:02d}"))
        day += timedelta(weeks=1)
    for year in range(start.year, now.year + 1):
        nov1 = datetime(year, 11, 1, 7, tzinfo=UTC)
        thanksgiving = nov1 + timedelta(days=(3 - nov1.weekday()) % 7 + 21)
        found += [
            (datetime(year, 1, 2, 8, tzinfo=UTC), f"winter-sale-{year}"),
            (datetime(year, 6, 24, 8, tzinfo=UTC), f"summer-sale-{year}"),
            (thanksgiving + timedelta(days=1), f"black-friday-{year}"),
            (thanksgiving + timedelta(days=4), f"cyber-monday-{year}"),
            (datetime(year, 12, 8, 8, tzinfo=UTC), f"christmas-{year}"),
        ]
    found = sorted(f for f in found if start <= f[0] < now)
    return [name for _, name in found], [t.timestamp() for t, _ in found]


# --- output columns ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerColumns:
    """``customers`` rows (``search_text`` is generated by the database)."""

    id: np.ndarray  # int64
    first_name: np.ndarray  # object: str
    last_name: np.ndarray  # object: str
    email: np.ndarray  # object: str | None
    phone: np.ndarray  # object: str | None
    country: np.ndarray  # object: str
    birth_date: np.ndarray  # datetime64[D], NaT when unknown
    created_at: np.ndarray  # datetime64[us], UTC
    updated_at: np.ndarray  # datetime64[us], UTC

    def __len__(self) -> int:
        return len(self.id)


@dataclass(frozen=True, slots=True)
class IdentityColumns:
    """``identities`` rows."""

    customer_id: np.ndarray  # int64
    kind: np.ndarray  # object: str
    source: np.ndarray  # object: str
    value: np.ndarray  # object: str
    created_at: np.ndarray  # datetime64[us], UTC

    def __len__(self) -> int:
        return len(self.customer_id)


@dataclass(frozen=True, slots=True)
class PurchaseColumns:
    """``purchases`` rows; ``product`` is a catalogue row, not a database id."""

    customer_id: np.ndarray  # int64
    product: np.ndarray  # int64: catalogue row
    order_ref: np.ndarray  # object: str
    quantity: np.ndarray  # int64
    unit_price_cents: np.ndarray  # int64
    amount_cents: np.ndarray  # int64 (quantity * unit price)
    channel: np.ndarray  # object: str
    purchased_at: np.ndarray  # datetime64[us], UTC
    external_id: np.ndarray  # object: str, unique per customer
    recorded_at: np.ndarray  # datetime64[us], UTC

    def __len__(self) -> int:
        return len(self.customer_id)


@dataclass(frozen=True, slots=True)
class InteractionColumns:
    """``interactions`` rows; ``properties`` indexes ``World.properties``."""

    customer_id: np.ndarray  # int64
    occurred_at: np.ndarray  # datetime64[us], UTC
    channel: np.ndarray  # object: str
    kind: np.ndarray  # object: str
    properties: np.ndarray  # int64: index into World.properties
    source: np.ndarray  # object: str
    external_id: np.ndarray  # object: str, unique per customer
    recorded_at: np.ndarray  # datetime64[us], UTC

    def __len__(self) -> int:
        return len(self.customer_id)


@dataclass(frozen=True, slots=True)
class ConsentColumns:
    """``consents`` rows (history: a revocation is a later row with ``granted`` false)."""

    customer_id: np.ndarray  # int64
    purpose: np.ndarray  # object: str
    granted: np.ndarray  # bool
    source: np.ndarray  # object: str
    recorded_at: np.ndarray  # datetime64[us], UTC

    def __len__(self) -> int:
        return len(self.customer_id)


@dataclass(frozen=True, slots=True)
class Latents:
    """The hidden truth per customer (not stored): for validating models and the generator."""

    purchase_rate: np.ndarray  # float64, orders per year while alive
    churn_hazard: np.ndarray  # float64, per year, before any incident
    incident_at: np.ndarray  # datetime64[us], NaT without an incident before dropout/now
    dropout_at: np.ndarray  # datetime64[us]; may lie after ``now`` (still alive)
    churned: np.ndarray  # bool: dropout before ``now``
    premium: np.ndarray  # float64 in [0, 1]: propensity to pick the pricier product
    open_rate: np.ndarray  # float64: e-mail open propensity
    preferences: np.ndarray  # float64 (customers x categories)


@dataclass(frozen=True, slots=True)
class ChunkColumns:
    """Everything generated for one chunk of customers."""

    customers: CustomerColumns
    identities: IdentityColumns
    purchases: PurchaseColumns
    interactions: InteractionColumns
    consents: ConsentColumns
    latents: Latents


# --- helpers -----------------------------------------------------------------------------


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


def _epoch_seconds(now: datetime) -> float:
    return _utc(now).timestamp()


def _to_datetime64(seconds: np.ndarray, now_s: float) -> np.ndarray:
    """Epoch seconds -> datetime64[us], clipped to strictly before ``now``."""
    us = np.floor(seconds * 1e6).astype(np.int64)
    return np.minimum(us, round(now_s * 1e6) - 1).astype("datetime64[us]")


def _month_index(seconds: np.ndarray) -> np.ndarray:
    months = seconds.astype(np.int64).astype("datetime64[s]").astype("datetime64[M]")
    return months.astype(np.int64) % 12  # 1970-01 is month 0, a January


def _weekday(seconds: np.ndarray) -> np.ndarray:
    return (np.floor(seconds / DAY).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday


def _rows_of(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For per-group counts: the group of each expanded row and its position in the group."""
    group = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return group, np.arange(len(group)) - starts[group]


def _categorical(cum: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw from per-row categorical distributions given by cumulative probabilities."""
    j = (u[:, None] >= cum[rows]).sum(axis=1)
    return np.minimum(j, cum.shape[1] - 1)


def _engagement(t: np.ndarray, dropout: np.ndarray) -> np.ndarray:
    """1 until the ramp before dropout, falling to 0.25 at dropout, then decaying."""
    days = (dropout - t) / DAY
    ramp = 0.25 + 0.75 * np.clip(days / _RAMP_DAYS, 0.0, 1.0)
    after = 0.2 * np.exp(np.minimum(days, 0.0) / 60.0)
    return np.where(days >= 0, ramp, after)


@lru_cache(maxsize=8)
def _labels(pattern: str, size: int) -> np.ndarray:
    """``pattern.format(i)`` for ``i < size`` (cached: external ids repeat across customers)."""
    return _objects([pattern.format(i + 1) for i in range(size)])


def _label_vocab(pattern: str, needed: int) -> np.ndarray:
    size = 1024
    while size < needed:
        size *= 2
    return _labels(pattern, size)


@lru_cache(maxsize=4)
def _order_line_labels(orders: int) -> np.ndarray:
    """``o{order}-{line}`` for index ``order * 4 + line`` (lines 0-3)."""
    return _objects([f"o{i // 4 + 1}-{i % 4 + 1}" for i in range(orders * 4)])


# --- the generator -------------------------------------------------------------------------


def generate_chunk(
    world: World, first_customer_id: int, n: int, *, seed: int, chunk: int
) -> ChunkColumns:
    """Generate ``n`` customers with ids ``first_customer_id ..`` and all their rows.

    Deterministic: the same (world, first id, n, seed, chunk) always gives the same columns.
    Chunks draw from independent streams (``default_rng([seed, chunk])``).
    """
    if n <= 0:
        raise ValueError("n must be positive")
    if first_customer_id <= 0:
        raise ValueError("first_customer_id must be positive")
    rng = np.random.default_rng([seed, chunk])
    now_s = world.now_seconds
    ids = np.arange(first_customer_id, first_customer_id + n, dtype=np.int64)
    cat = world.catalogue

    # Latent profile per customer.
    growth = 0.9
    x = np.log1p(rng.random(n) * np.expm1(growth)) / growth
    signup = np.minimum(now_s - HISTORY_DAYS * DAY * (1.0 - x), now_s - 60.0)
    loyalty = rng.standard_normal(n)
    rate = np.minimum(rng.gamma(0.75, _MEAN_RATE / 0.75, n), 120.0)
    hazard = rng.gamma(2.0, 0.25, n) * np.exp(-0.35 * loyalty)
    dropout = signup + rng.exponential(1.0, n) / hazard * YEAR
    # A service incident (first one only) while alive makes leaving likelier from then on:
    # a competing risk with 3x the base hazard (so 4x in total) and fewer orders.
    incident = signup + rng.exponential(YEAR / _INCIDENT_RATE, n)
    had_incident = incident < np.minimum(dropout, now_s)
    after = incident + rng.exponential(1.0, n) / (3.0 * hazard) * YEAR
    dropout = np.where(had_incident, np.minimum(dropout, after), dropout)
    incident = np.where(had_incident, incident, np.inf)
    open_rate = np.clip(rng.beta(2.0, 10.0, n) * np.exp(0.3 * loyalty), 0.0, 0.9)
    click_rate = rng.beta(2.0, 10.0, n)
    alpha = 0.3 * len(cat.categories) * cat.category_weight
    prefs = rng.dirichlet(alpha, size=n)
    pref_cum = np.cumsum(prefs, axis=1)
    premium = rng.beta(2.0, 3.0, n)
    primary = rng.choice(len(PURCHASE_CHANNELS), size=n, p=_CHANNEL_P)

    customers, has_email, has_phone = _profiles(rng, ids, signup, now_s)
    consents, email_start, email_end, unsub_at = _consents(
        rng, ids, signup, dropout, has_email, has_phone, now_s
    )
    orders = _orders(rng, world, signup, dropout, incident, rate, pref_cum, primary)
    purchases = _purchase_lines(rng, world, ids, orders, premium)

    interactions = _interactions(
        rng,
        world,
        ids=ids,
        signup=signup,
        dropout=dropout,
        open_rate=open_rate,
        click_rate=click_rate,
        pref_cum=pref_cum,
        email_start=email_start,
        email_end=email_end,
        unsub_at=unsub_at,
        incident=incident,
        orders=orders,
        line_product=purchases.product,
        rate=rate,
    )
    identities = _identities(rng, ids, customers.email, has_email, signup, now_s)
    latents = Latents(
        purchase_rate=rate,
        churn_hazard=hazard,
        incident_at=np.where(
            had_incident,
            _to_datetime64(np.where(had_incident, incident, 0.0), now_s),
            np.datetime64("NaT", "us"),
        ),
        # Capped (year 2096) so that very long lifetimes stay representable.
        dropout_at=(np.minimum(dropout, 4e9) * 1e6).astype(np.int64).astype("datetime64[us]"),
        churned=dropout < now_s,
        premium=premium,
        open_rate=open_rate,
        preferences=prefs,
    )
    return ChunkColumns(customers, identities, purchases, interactions, consents, latents)


def _profiles(
    rng: np.random.Generator, ids: np.ndarray, signup: np.ndarray, now_s: float
) -> tuple[CustomerColumns, np.ndarray, np.ndarray]:
    n = len(ids)
    first = rng.integers(len(_FIRST_NAMES), size=n)
    last = rng.integers(len(_LAST_NAMES), size=n)
    has_email = rng.random(n) < 0.97
    has_phone = rng.random(n) < 0.70
    country = rng.choice(len(_COUNTRIES), size=n, p=_COUNTRY_P)
    domain = rng.integers(len(_EMAIL_DOMAINS), size=n)
    has_birth = rng.random(n) < 0.60
    birth_year = np.clip(rng.normal(1983.0, 13.0, n), 1940.0, 2006.999)
    changed = rng.random(n) < 0.45
    change_u = rng.random(n)

    email = np.full(n, None, dtype=object)
    sel = np.flatnonzero(has_email)
    email[sel] = [
        f"{_FIRST_SLUG[f]}.{_LAST_SLUG[la]}.{i}@{_EMAIL_DOMAINS[d]}"
        for f, la, i, d in zip(
            first[sel].tolist(),
            last[sel].tolist(),
            ids[sel].tolist(),
            domain[sel].tolist(),
            strict=True,
        )
    ]
    # Phones: an affine bijection of the id modulo 10**9, so distinct ids give distinct
    # numbers (across runs too) while still looking random.
    phone = np.full(n, None, dtype=object)
    sel = np.flatnonzero(has_phone)
    nsn = (ids[sel] * 387_420_489 + 123_456_789) % 1_000_000_000  # 3**18: coprime to 10
    phone[sel] = [
        f"+{_COUNTRIES[c][2]}{_COUNTRIES[c][3]}{s:09d}"
        for c, s in zip(country[sel].tolist(), nsn.tolist(), strict=True)
    ]
    birth_days = np.floor((birth_year - 1970.0) * 365.2425).astype(np.int64)
    birth = birth_days.astype("datetime64[D]")
    birth[~has_birth] = np.datetime64("NaT")

    updated = np.where(changed, signup + change_u * (now_s - signup), signup)
    created_at = _to_datetime64(signup, now_s)
    columns = CustomerColumns(
        id=ids,
        first_name=_FIRST[first],
        last_name=_LAST[last],
        email=email,
        phone=phone,
        country=_COUNTRY_CODES[country],
        birth_date=birth,
        created_at=created_at,
        updated_at=np.maximum(_to_datetime64(updated, now_s), created_at),
    )
    return columns, has_email, has_phone


def _consents(
    rng: np.random.Generator,
    ids: np.ndarray,
    signup: np.ndarray,
    dropout: np.ndarray,
    has_email: np.ndarray,
    has_phone: np.ndarray,
    now_s: float,
) -> tuple[ConsentColumns, np.ndarray, np.ndarray, np.ndarray]:
    """Consent history, and each customer's e-mail marketing window and unsubscribe time."""
    n, k = len(ids), len(CONSENT_PURPOSES)
    present = rng.random((n, k)) < _CONSENT_PRESENT
    present[:, 0] &= has_email  # e-mail marketing needs an address, SMS a phone
    present[:, 1] &= has_phone
    granted = present & (rng.random((n, k)) < _CONSENT_GRANTED)
    given_at = signup[:, None] + rng.uniform(1.0, 300.0, (n, k))

    # Revocations: rare at random, common for e-mail around a churner's dropout.
    revoke_at = signup[:, None] + rng.random((n, k)) * (now_s - signup)[:, None]
    revoked = granted & (rng.random((n, k)) < 0.03)
    churn_revoke = (rng.random(n) < 0.35) & (dropout < now_s)
    revoked[:, 0] = granted[:, 0] & (churn_revoke | (rng.random(n) < 0.04))
    churn_at = dropout + rng.uniform(-20.0, 60.0, n) * DAY
    revoke_at[:, 0] = np.where(churn_revoke, churn_at, revoke_at[:, 0])
    revoked &= (revoke_at > given_at + 60.0) & (revoke_at < now_s)

    rows_c, rows_p = np.nonzero(present)
    rev_c, rev_p = np.nonzero(revoked)
    customer = np.concatenate([rows_c, rev_c])
    purpose = np.concatenate([rows_p, rev_p])
    at = np.concatenate([given_at[rows_c, rows_p], revoke_at[rev_c, rev_p]])
    flag = np.concatenate([granted[rows_c, rows_p], np.zeros(len(rev_c), dtype=bool)])
    source = np.empty(len(customer), dtype=object)
    source[: len(rows_c)] = "signup_form"
    source[len(rows_c) :] = "preference_center"
    order = np.lexsort((at, customer))
    columns = ConsentColumns(
        customer_id=ids[customer[order]],
        purpose=_PURPOSE_OBJ[purpose[order]],
        granted=flag[order],
        source=source[order],
        recorded_at=_to_datetime64(at[order], now_s),
    )
    email_start = given_at[:, 0]
    email_end = np.where(revoked[:, 0], revoke_at[:, 0], now_s)
    email_end = np.where(granted[:, 0], email_end, email_start)  # no consent: empty window
    unsub_at = np.where(revoked[:, 0], revoke_at[:, 0], np.nan)
    return columns, email_start, email_end, unsub_at


@dataclass(frozen=True, slots=True)
class _Orders:
    customer: np.ndarray  # customer row in the chunk, ascending
    at: np.ndarray  # epoch seconds, ascending within a customer
    position: np.ndarray  # 0-based order number within the customer
    category: np.ndarray
    channel: np.ndarray  # index into PURCHASE_CHANNELS
    size: np.ndarray  # basket lines


def _orders(
    rng: np.random.Generator,
    world: World,
    signup: np.ndarray,
    dropout: np.ndarray,
    incident: np.ndarray,
    rate: np.ndarray,
    pref_cum: np.ndarray,
    primary: np.ndarray,
) -> _Orders:
    now_s = world.now_seconds
    cat = world.catalogue
    n = len(signup)
    end = np.minimum(dropout, now_s)
    span = np.maximum(end - signup, 0.0)
    # Thinning: candidates at the peak seasonal rate, kept with probability season / peak.
    candidates = rng.poisson(rate / YEAR * _SEASON_MAX * span)
    cust = np.repeat(np.arange(n), candidates)
    at = signup[cust] + rng.random(len(cust)) * span[cust]
    season = _MONTH[_month_index(at)] * _WEEKDAY[_weekday(at)]
    season *= np.where(at > incident[cust], _AFTER_INCIDENT, 1.0)
    keep = rng.random(len(cust)) * _SEASON_MAX < season
    cust, at = cust[keep], at[keep]
    # Diurnal profile: move to a typical hour of the same day, unless that leaves the window.
    m = len(cust)
    moved = np.floor(at / DAY) * DAY + (rng.choice(24, size=m, p=_HOUR_P) + rng.random(m)) * 3600
    at = np.where((moved >= signup[cust]) & (moved < end[cust]), moved, at)
    order = np.lexsort((at, cust))
    cust, at = cust[order], at[order]
    _, position = _rows_of(np.bincount(cust, minlength=n))

    # Categories: preferences, but often a complement of the previous order's category.
    category = _categorical(pref_cum, cust, rng.random(m))
    follow = (rng.random(m) < 0.35) & (position > 0)
    u_comp = rng.random(m)
    rows = np.flatnonzero(follow)
    rows = rows[np.argsort(position[rows], kind="stable")]
    if len(rows):
        # Sequential in the order position, vectorised across customers.
        bounds = np.flatnonzero(np.diff(position[rows])) + 1
        for group in np.split(rows, bounds):
            category[group] = cat.complement_of(category[group - 1], u_comp[group])

    channel = np.where(
        rng.random(m) < 0.8, primary[cust], rng.choice(len(PURCHASE_CHANNELS), m, p=_CHANNEL_P)
    )
    size = rng.choice(len(_BASKET_P), size=m, p=_BASKET_P) + 1
    return _Orders(cust, at, position, category, channel, size)


def _purchase_lines(
    rng: np.random.Generator,
    world: World,
    ids: np.ndarray,
    orders: _Orders,
    premium: np.ndarray,
) -> PurchaseColumns:
    """Basket lines of every order, grouped by order (first line first)."""
    now_s = world.now_seconds
    cat = world.catalogue
    order_of, line = _rows_of(orders.size)
    n_lines = len(order_of)
    cust = orders.customer[order_of]
    # Customers trade up as they stay: premium propensity drifts with the order number.
    trade_up = np.minimum(premium[cust] + 0.02 * orders.position[order_of], 0.95)

    mode = rng.random(n_lines)  # lines 2+: partner, same category or complement
    line_cat = orders.category[order_of].copy()
    comp = cat.complement_of(line_cat, rng.random(n_lines))
    line_cat = np.where((line > 0) & (mode >= 0.65), comp, line_cat)
    a = cat.sample_in_category(line_cat, rng.random(n_lines))
    b = cat.sample_in_category(line_cat, rng.random(n_lines))
    pricier = np.where(cat.price_cents[a] >= cat.price_cents[b], a, b)
    cheaper = a + b - pricier
    product = np.where(rng.random(n_lines) < trade_up, pricier, cheaper)
    first_line = np.flatnonzero(line == 0)
    order_product = product[first_line]  # lines are grouped by order, first line first
    partner_rows = (line > 0) & (mode < 0.35)
    product[partner_rows] = cat.partner[order_product[order_of[partner_rows]]]

    quantity = rng.choice(3, size=n_lines, p=_QUANTITY_P) + 1
    at = orders.at[order_of]
    month = _month_index(at)
    discount_p = np.where(month == 10, 0.35, np.where(month == 0, 0.25, 0.10))
    discounted = rng.random(n_lines) < discount_p
    percent = np.where(discounted, rng.integers(1, 7, n_lines) * 5, 0)
    unit = (cat.price_cents[product] * (100 - percent) + 50) // 100  # round half up, cents
    channel = orders.channel[order_of]
    # Store sales reach the CDM in batches, online ones within a couple of minutes.
    lag = np.where(channel == 1, rng.uniform(600, 6 * 3600, n_lines), rng.uniform(1, 120, n_lines))

    cids = ids[orders.customer].tolist()
    positions = orders.position.tolist()
    refs = _objects([f"SO{c}-{p + 1}" for c, p in zip(cids, positions, strict=True)])
    labels = _order_line_labels(int(orders.position.max(initial=0)) + 1)
    columns = PurchaseColumns(
        customer_id=ids[cust],
        product=product,
        order_ref=refs[order_of],
        quantity=quantity,
        unit_price_cents=unit,
        amount_cents=unit * quantity,
        channel=_PURCHASE_CHANNEL_OBJ[channel],
        purchased_at=_to_datetime64(at, now_s),
        external_id=labels[orders.position[order_of] * 4 + line],
        recorded_at=_to_datetime64(at + lag, now_s),
    )
    return columns


class _Events:
    """Interaction rows collected block by block (customer row, time, kind, channel, props)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(
        self, cust: np.ndarray, at: np.ndarray, kind: int, channel: np.ndarray | int,
        props: np.ndarray | int,
    ) -> None:  # fmt: skip
        m = len(cust)
        self.parts.append((
            cust, at, np.full(m, kind), np.broadcast_to(channel, (m,)),
            np.broadcast_to(props, (m,)),
        ))  # fmt: skip

    def columns(self) -> tuple[np.ndarray, ...]:
        return tuple(np.concatenate([p[i] for p in self.parts]) for i in range(5))


def _interactions(
    rng: np.random.Generator,
    world: World,
    *,
    ids: np.ndarray,
    signup: np.ndarray,
    dropout: np.ndarray,
    open_rate: np.ndarray,
    click_rate: np.ndarray,
    pref_cum: np.ndarray,
    email_start: np.ndarray,
    email_end: np.ndarray,
    unsub_at: np.ndarray,
    incident: np.ndarray,
    orders: _Orders,
    line_product: np.ndarray,
    rate: np.ndarray,
) -> InteractionColumns:
    now_s = world.now_seconds
    off = world.property_offsets
    n_cat = len(world.catalogue.categories)
    send = world.campaign_at
    n = len(ids)
    ev = _Events()

    # Campaign e-mails within the consent window, opened with propensity x engagement.
    first = np.searchsorted(send, email_start, side="left")
    sent = np.maximum(np.searchsorted(send, email_end, side="left") - first, 0)
    tries = rng.binomial(sent, open_rate)
    cust = np.repeat(np.arange(n), tries)
    camp = first[cust] + (rng.random(len(cust)) * sent[cust]).astype(np.int64)
    eng = _engagement(send[camp], dropout[cust])
    keep = rng.random(len(cust)) < eng
    cust, camp, eng = cust[keep], camp[keep], eng[keep]
    opened = send[camp] + rng.exponential(5 * 3600, len(cust))
    keep = opened < email_end[cust]
    cust, camp, eng, opened = cust[keep], camp[keep], eng[keep], opened[keep]
    ev.add(cust, opened, _OPEN, _EMAIL, off["campaign"] + camp)
    clicked = rng.random(len(cust)) < click_rate[cust] * eng
    link = _categorical(pref_cum, cust[clicked], rng.random(int(clicked.sum())))
    ev.add(
        cust[clicked],
        opened[clicked] + rng.exponential(120.0, len(link)),
        _CLICK,
        _EMAIL,
        off["click"] + camp[clicked] * n_cat + link,
    )

    # Before orders: a campaign click on the order's category, research and session views.
    oc, ot, m = orders.customer, orders.at, len(orders.customer)
    line_start = np.cumsum(orders.size) - orders.size
    order_product = line_product[line_start]
    click_at = ot - rng.uniform(0.05, 3.0, m) * DAY
    last_camp = np.searchsorted(send, click_at, side="right") - 1
    ok = (
        (rng.random(m) < 0.30) & (last_camp >= 0) & (click_at >= email_start[oc])
        & (click_at < email_end[oc])
    )  # fmt: skip
    ok[ok] &= send[last_camp[ok]] >= email_start[oc[ok]]
    sel = np.flatnonzero(ok)
    ev.add(
        oc[sel], click_at[sel], _CLICK, _EMAIL,
        off["click"] + last_camp[sel] * n_cat + orders.category[sel],
    )  # fmt: skip
    open_at = np.maximum(send[last_camp[sel]], click_at[sel] - rng.uniform(60, 1800, len(sel)))
    ev.add(oc[sel], open_at, _OPEN, _EMAIL, off["campaign"] + last_camp[sel])

    online = np.where(orders.channel == _P_APP, _APP, _WEB)
    sel = np.flatnonzero(rng.random(m) < 0.35)
    ev.add(
        oc[sel], ot[sel] - rng.uniform(0.3, 10.0, len(sel)) * DAY, _VIEW, online[sel],
        off["product"] + order_product[sel],
    )  # fmt: skip
    tracked = ((orders.channel == _P_WEB) | (orders.channel == _P_APP)) & (rng.random(m) < 0.65)
    sel = np.flatnonzero(tracked)
    group, line = _rows_of(orders.size[sel])
    sess = sel[group]
    # The session: a product page per basket line, then the checkout.
    ev.add(
        oc[sess], ot[sess] - rng.uniform(120, 2400, len(sess)), _VIEW, online[sess],
        off["product"] + line_product[line_start[sess] + line],
    )  # fmt: skip
    ev.add(oc[sel], ot[sel] - rng.uniform(5, 120, len(sel)), _VIEW, online[sel], off["checkout"])

    # Background browsing of preferred categories, thinned by engagement.
    browse_end = np.minimum(dropout + 90 * DAY, now_s)
    span = np.maximum(browse_end - signup, 0.0)
    visits = rng.poisson((1.0 + 0.2 * rate) / YEAR * span)
    cust = np.repeat(np.arange(n), visits)
    at = signup[cust] + rng.random(len(cust)) * span[cust]
    keep = rng.random(len(cust)) < _engagement(at, dropout[cust])
    cust, at = cust[keep], at[keep]
    page = _categorical(pref_cum, cust, rng.random(len(cust)))
    ev.add(cust, at, _VIEW, _WEB, off["category"] + page)

    # Support: the incident's ticket (and often a complaint); benign tickets after some
    # orders; before dropout, more tickets and complaints.
    topics = len(_TICKET_TOPICS)
    sel = np.flatnonzero(incident < now_s)
    ev.add(
        sel, incident[sel], _TICKET, _SUPPORT,
        off["ticket"] + rng.choice(topics, len(sel), p=_CHURN_TOPIC_P),
    )  # fmt: skip
    sel = sel[rng.random(len(sel)) < 0.5]
    ev.add(
        sel, incident[sel] + rng.uniform(0.1, 7.0, len(sel)) * DAY, _COMPLAINT, _SUPPORT,
        off["complaint"] + rng.choice(topics, len(sel), p=_CHURN_TOPIC_P),
    )  # fmt: skip
    sel = np.flatnonzero(rng.random(m) < 0.025)
    ev.add(
        oc[sel], ot[sel] + rng.uniform(1, 12, len(sel)) * DAY, _TICKET, _SUPPORT,
        off["ticket"] + rng.choice(topics, len(sel), p=_BENIGN_TOPIC_P),
    )  # fmt: skip
    sel = np.flatnonzero(rng.random(m) < 0.005)
    ev.add(
        oc[sel], ot[sel] + rng.uniform(2, 20, len(sel)) * DAY, _COMPLAINT, _SUPPORT,
        off["complaint"] + rng.choice(topics, len(sel), p=_CHURN_TOPIC_P),
    )  # fmt: skip
    churning = dropout < now_s + 90 * DAY
    for kind, share, lo, hi in (
        (_TICKET, 0.35, 3, 80), (_TICKET, 0.15, 0, 50), (_COMPLAINT, 0.20, 0, 40)
    ):  # fmt: skip
        sel = np.flatnonzero(churning & (rng.random(n) < share))
        ev.add(
            sel, dropout[sel] - rng.uniform(lo, hi, len(sel)) * DAY, kind, _SUPPORT,
            off["ticket" if kind == _TICKET else "complaint"]
            + rng.choice(topics, len(sel), p=_CHURN_TOPIC_P),
        )  # fmt: skip

    # Reviews of the order's first product; unhappy near dropout.
    sel = np.flatnonzero(rng.random(m) < 0.07)
    review_at = ot[sel] + rng.uniform(2, 21, len(sel)) * DAY
    unhappy = dropout[oc[sel]] - review_at < 90 * DAY
    rating = np.where(
        unhappy,
        rng.choice(5, len(sel), p=_RATING_UNHAPPY_P),
        rng.choice(5, len(sel), p=_RATING_HAPPY_P),
    )
    ev.add(oc[sel], review_at, _REVIEW, _SOCIAL, off["review"] + order_product[sel] * 5 + rating)

    sel = np.flatnonzero(~np.isnan(unsub_at))
    ev.add(sel, unsub_at[sel], _UNSUB, _EMAIL, off["unsubscribe"])

    cust, at, kind, channel, props = ev.columns()
    keep = (at >= signup[cust]) & (at < now_s)
    cust, at, kind, channel, props = (a[keep] for a in (cust, at, kind, channel, props))
    order = np.lexsort((at, cust))
    cust, at, kind, channel, props = (a[order] for a in (cust, at, kind, channel, props))
    _, seq = _rows_of(np.bincount(cust, minlength=n))
    labels = _label_vocab("i{}", int(seq.max(initial=0)) + 1)
    return InteractionColumns(
        customer_id=ids[cust],
        occurred_at=_to_datetime64(at, now_s),
        channel=_INTERACTION_CHANNEL_OBJ[channel],
        kind=_KIND_OBJ[kind],
        properties=props.astype(np.int64),
        source=_INTERACTION_SOURCE_OBJ[channel],
        external_id=labels[seq],
        recorded_at=_to_datetime64(at + rng.uniform(0.5, 30.0, len(at)), now_s),
    )


def _identities(
    rng: np.random.Generator,
    ids: np.ndarray,
    email: np.ndarray,
    has_email: np.ndarray,
    signup: np.ndarray,
    now_s: float,
) -> IdentityColumns:
    n = len(ids)
    has_crm = rng.random(n) < 0.85
    cookies = rng.choice(3, size=n, p=[0.55, 0.35, 0.10])
    crm_at = signup + rng.uniform(60, 2 * DAY, n)
    e_sel = np.flatnonzero(has_email)
    c_sel = np.flatnonzero(has_crm)
    k_cust, k_no = _rows_of(cookies)
    cookie_at = signup[k_cust] + rng.uniform(0, 30 * DAY, len(k_cust))
    token = rng.integers(0, 2**48, len(k_cust))
    customer = np.concatenate([e_sel, c_sel, k_cust])
    kind = np.empty(len(customer), dtype=object)
    source = np.empty(len(customer), dtype=object)
    a, b = len(e_sel), len(e_sel) + len(c_sel)
    kind[:a], kind[a:b], kind[b:] = "email", "external_id", "cookie"
    source[:a], source[a:b], source[b:] = "shop", "crm", "web"
    value = np.empty(len(customer), dtype=object)
    value[:a] = email[e_sel]
    value[a:b] = [f"CRM-{i:07d}" for i in ids[c_sel].tolist()]
    # The id inside the cookie keeps it unique across chunks and runs.
    value[b:] = [
        f"ck.{t:012x}.{i}.{k}"
        for t, i, k in zip(token.tolist(), ids[k_cust].tolist(), k_no.tolist(), strict=True)
    ]
    at = np.concatenate([signup[e_sel], crm_at[c_sel], cookie_at])
    order = np.argsort(customer, kind="stable")
    return IdentityColumns(
        customer_id=ids[customer[order]],
        kind=kind[order],
        source=source[order],
        value=value[order],
        created_at=_to_datetime64(at[order], now_s),
    )
