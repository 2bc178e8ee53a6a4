"""GraphQL views of model scores: churn risk, next purchase, recommendations, and the batch
`scores` query for machine clients. Every score says which model version made it, from which
MLflow run, as of when; on request, the feature values it was computed from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from api.schema.audited import mutation
from api.schema.commerce import ProductType
from api.schema.common import GraphQLInfo, selects
from domain import predictions
from domain.access import Role
from domain.consent import prediction_withheld
from domain.errors import UserError
from domain.ids import parse_id
from domain.times import check_time

if TYPE_CHECKING:
    from api.schema.customers import CustomerType

MAX_BATCH = 1000


@strawberry.type(name="ModelProvenance", description="Which model made a score, and when.")
class ProvenanceType:
    model: str = strawberry.field(description="Registered model name in MLflow.")
    version: int
    run_id: str = strawberry.field(description="The MLflow run that trained this version.")
    as_of: datetime = strawberry.field(description="The features were computed as of this time.")

    @classmethod
    def from_domain(cls, p: predictions.Provenance) -> ProvenanceType:
        return cls(model=p.model, version=p.version, run_id=p.run_id, as_of=p.as_of)


@strawberry.type(name="FeatureValue", description="One model input, as the score saw it.")
class FeatureValueType:
    name: str
    value: float | None = strawberry.field(description="Null where undefined (e.g. no order).")


@strawberry.type(name="ScoreFactor", description="One feature's share in a customer's score.")
class FactorType:
    feature: str
    description: str
    value: float | None
    contribution: float = strawberry.field(
        description="Effect on the model's raw score (log-odds): positive raises the risk. "
        "The contributions of all features plus the model's base value add up to the raw score."
    )


RiskBandEnum = strawberry.enum(predictions.RiskBand, name="RiskBand")
ReasonEnum = strawberry.enum(predictions.RecommendationReason, name="RecommendationReason")


def _features(values: dict[str, float | None]) -> list[FeatureValueType]:
    return [FeatureValueType(name=k, value=v) for k, v in values.items()]


@strawberry.type(
    name="ChurnRisk",
    description="The risk that the customer orders nothing within the model's horizon.",
)
class ChurnRiskType:
    probability: float = strawberry.field(
        description="Probability of no order within horizonDays, calibrated on held-out data."
    )
    band: RiskBandEnum  # type: ignore[valid-type]
    percentile: float | None = strawberry.field(
        description="Share of customers (0-100) with a lower risk, from the model's evaluation."
    )
    provenance: ProvenanceType
    risk: strawberry.Private[predictions.ChurnRisk]

    @strawberry.field(description="The strongest factors behind the score, strongest first.")
    def factors(self, first: int = 3) -> list[FactorType]:
        explanation = self.risk.explanation
        if explanation is None:
            return []
        return [
            FactorType(feature=f.feature, description=f.description, value=f.value,
                       contribution=f.contribution)
            for f in explanation.factors(self.risk.inputs, first)
        ]  # fmt: skip

    @strawberry.field(
        description="The model's raw score before any feature (log-odds): base value plus every "
        "factor's contribution is the raw score, whose logistic is the model's uncalibrated "
        "probability; the calibrated probability is a monotone map of it."
    )
    def base_value(self) -> float | None:
        return self.risk.explanation.base_value if self.risk.explanation else None

    @strawberry.field(description="Days ahead the model looks: the horizon it was trained on.")
    def horizon_days(self) -> float:
        return self.risk.horizon_days

    @strawberry.field(description="Every feature value the score was computed from (to replay it).")
    def features(self) -> list[FeatureValueType]:
        return _features(self.risk.inputs.as_dict())

    @classmethod
    def from_domain(cls, c: predictions.ChurnRisk) -> ChurnRiskType:
        return cls(
            probability=c.probability, band=c.band, percentile=c.percentile,
            provenance=ProvenanceType.from_domain(c.provenance), risk=c,
        )  # fmt: skip


@strawberry.type(name="NextPurchase", description="When and how often the customer will order.")
class NextPurchaseType:
    probability_30d: float = strawberry.field(description="Probability of an order within 30 days.")
    percentile: float | None
    expected_purchases: float = strawberry.field(description="Expected orders within the horizon.")
    expected_days: float = strawberry.field(
        description="Expected days to the next order, capped at the horizon."
    )
    expected_at: datetime = strawberry.field(description="Expected date of the next order.")
    horizon_days: float
    provenance: ProvenanceType
    inputs: strawberry.Private[predictions.FeatureVector]

    @strawberry.field(description="Every feature value the score was computed from.")
    def features(self) -> list[FeatureValueType]:
        return _features(self.inputs.as_dict())

    @classmethod
    def from_domain(cls, n: predictions.NextPurchase) -> NextPurchaseType:
        return cls(
            probability_30d=n.probability_30d, percentile=n.percentile,
            expected_purchases=n.expected_purchases, expected_days=n.expected_days,
            expected_at=n.expected_at, horizon_days=n.horizon_days,
            provenance=ProvenanceType.from_domain(n.provenance), inputs=n.inputs,
        )  # fmt: skip


@strawberry.type(name="Recommendation", description="A product the customer is likely to buy next.")
class RecommendationType:
    product: ProductType
    score: float = strawberry.field(description="The ranker's score (higher is better).")
    reason: ReasonEnum  # type: ignore[valid-type]
    explanation: str = strawberry.field(description='E.g. "often bought with Kettle".')
    because_of: ProductType | None = strawberry.field(
        description="The product it is often bought with (bought_together only)."
    )
    provenance: ProvenanceType

    @classmethod
    def from_domain(
        cls, r: predictions.Recommendation, provenance: ProvenanceType
    ) -> RecommendationType:
        return cls(
            product=ProductType.from_domain(r.product), score=r.score, reason=r.reason,
            explanation=r.explanation, provenance=provenance,
            because_of=ProductType.from_domain(r.because_of) if r.because_of else None,
        )  # fmt: skip


@strawberry.type(
    name="BuyAgain",
    description="A product the customer bought before and will likely buy in their next order, "
    "timed by its repurchase cycle.",
)
class BuyAgainType:
    product: ProductType
    score: float = strawberry.field(
        description="Recent orders of it (older ones count less) times how often anyone re-buys "
        "it, lowered when long overdue; higher is likelier, comparable within one customer."
    )
    orders: int = strawberry.field(description="The customer's orders containing it.")
    days_since_last: float = strawberry.field(description="Days since it was last ordered.")
    cycle_days: float = strawberry.field(
        description="Expected days between two orders of it: the customer's own rhythm, shrunk "
        "towards the product's usual one."
    )
    days_until_due: float = strawberry.field(
        description="cycleDays minus daysSinceLast: negative when overdue."
    )
    due_at: datetime = strawberry.field(description="When it is due: last order plus the cycle.")

    @classmethod
    def from_domain(cls, item: predictions.BuyAgainItem, product: ProductType) -> BuyAgainType:
        return cls(
            product=product, score=item.score, orders=item.orders,
            days_since_last=item.days_since_last, cycle_days=item.cycle_days,
            days_until_due=item.days_until_due, due_at=item.due_at,
        )  # fmt: skip


AsOf = Annotated[
    datetime | None,
    strawberry.argument(
        description="Score as of this time (with a zone; default now), from data before it: "
        "to backtest a model trained --as-of the same time."
    ),
]


def _scores(info: GraphQLInfo, as_of: datetime | None):  # noqa: ANN202 (ScoreLoaders)
    if as_of is not None:
        check_time(as_of, "asOf")
        if as_of > datetime.now(UTC):
            raise UserError("asOf must not be in the future", field="asOf")
    return info.context.scores(as_of)


async def scores_withheld(root: CustomerType, info: GraphQLInfo) -> str | None:
    """Why this caller gets no predictions for this customer (an objection to profiling, or
    a machine client without consent; see ``domain.consent``), or None."""
    caller = info.context.caller
    consents = await info.context.loaders.consents_by_customer.load(root.pk)
    return prediction_withheld(
        {c.purpose: c.granted for c in consents},
        machine_client=caller is not None and caller.role is Role.PERSONALIZATION,
    )


async def churn_risk(
    root: CustomerType, info: GraphQLInfo, as_of: AsOf = None
) -> ChurnRiskType | None:
    if await scores_withheld(root, info):
        return None
    loaders = _scores(info, as_of)
    explain = selects(info, ("factors",), ("baseValue",))
    found = await (loaders.churn_explained if explain else loaders.churn).load(root.pk)
    return ChurnRiskType.from_domain(found) if found else None


async def next_purchase(
    root: CustomerType, info: GraphQLInfo, as_of: AsOf = None
) -> NextPurchaseType | None:
    if await scores_withheld(root, info):
        return None
    found = await _scores(info, as_of).next_purchase.load(root.pk)
    return NextPurchaseType.from_domain(found) if found else None


async def recommendations(
    root: CustomerType,
    info: GraphQLInfo,
    first: int = 5,
    category: str | None = None,
    as_of: AsOf = None,
) -> list[RecommendationType]:
    if not 1 <= first <= 20:
        raise UserError("first must be between 1 and 20", field="first")
    if await scores_withheld(root, info):
        return []
    found = await _scores(info, as_of).recommendations.load(root.pk)
    if found is None:
        return []
    provenance = ProvenanceType.from_domain(found.provenance)
    return [RecommendationType.from_domain(r, provenance) for r in found.top(first, category)]


async def buy_again(
    root: CustomerType, info: GraphQLInfo, first: int = 10, as_of: AsOf = None
) -> list[BuyAgainType]:
    if not 1 <= first <= 20:
        raise UserError("first must be between 1 and 20", field="first")
    if await scores_withheld(root, info):
        return []
    found = await _scores(info, as_of).buy_again.load(root.pk)
    if not found:
        return []
    products = await info.context.loaders.product_by_id.load_many([i.product_id for i in found])
    return [
        BuyAgainType.from_domain(item, ProductType.from_domain(product))
        for item, product in zip(found, products, strict=True)
        if product is not None  # removed from the catalogue since
    ][:first]


@strawberry.type(name="StoredScores", description="Scores materialised by `cdm score --all`.")
class StoredScoresType:
    as_of: datetime = strawberry.field(description="The scores were computed as of this time.")
    scored_at: datetime = strawberry.field(description="When the scoring run stored them.")
    churn_probability: float | None
    churn_model_version: int | None
    purchase_30d_probability: float | None
    expected_purchases: float | None
    expected_days_to_next: float | None
    next_purchase_model_version: int | None
    upsell_model_version: int | None
    product_ids: strawberry.Private[tuple[int, ...]]

    @strawberry.field(description="The stored top recommendations, best first.")
    async def recommended_products(self, info: GraphQLInfo) -> list[ProductType]:
        found = await info.context.loaders.product_by_id.load_many(list(self.product_ids))
        return [ProductType.from_domain(p) for p in found if p is not None]

    @classmethod
    def from_domain(cls, s: predictions.StoredScores) -> StoredScoresType:
        return cls(
            as_of=s.as_of, scored_at=s.scored_at, churn_probability=s.churn_probability,
            churn_model_version=s.churn_model_version,
            purchase_30d_probability=s.purchase_30d_probability,
            expected_purchases=s.expected_purchases, expected_days_to_next=s.expected_days_to_next,
            next_purchase_model_version=s.next_purchase_model_version,
            upsell_model_version=s.upsell_model_version, product_ids=s.recommended_product_ids,
        )  # fmt: skip


async def stored_scores(root: CustomerType, info: GraphQLInfo) -> StoredScoresType | None:
    if await scores_withheld(root, info):
        return None
    found = await info.context.loaders.stored_scores_by_customer.load(root.pk)
    return StoredScoresType.from_domain(found) if found else None


@strawberry.type(name="StoredScoresSummary", description="How fresh the stored scores are.")
class StoredScoresSummaryType:
    customers: int
    as_of: datetime | None
    scored_at: datetime | None
    churn_model_version: int | None
    next_purchase_model_version: int | None
    upsell_model_version: int | None


@strawberry.type(name="Metric", description="One evaluation metric of a model version.")
class MetricType:
    name: str
    value: float


@strawberry.type(name="ModelStatus", description="A model the server scores with, and its state.")
class ModelStatusType:
    task: str
    state: str = strawberry.field(description="ok, missing (never trained) or degraded.")
    version: int | None
    reason: str
    primary_metric: str | None = strawberry.field(
        default=None, description="The metric the promotion gate compares (e.g. `auc`)."
    )
    metrics: list[MetricType] = strawberry.field(
        default_factory=list, description="The served version's evaluation on held-out data."
    )


def model_statuses(info: GraphQLInfo) -> list[ModelStatusType]:
    scorer = info.context.scorer
    if scorer is None:
        return []
    found = []
    for task, s in scorer.store.status.items():
        served = scorer.store.models.get(task)
        tags = served.tags if served is not None and served.version == s.version else {}
        metrics = [
            MetricType(name=key.removeprefix("metric."), value=float(value))
            for key, value in sorted(tags.items()) if key.startswith("metric.")
        ]  # fmt: skip
        found.append(ModelStatusType(
            task=task, state=s.state, version=s.version, reason=s.reason,
            primary_metric=tags.get("primary_metric"), metrics=metrics,
        ))  # fmt: skip
    return found


@strawberry.type
class PredictionQueries:
    @strawberry.field(
        description="Customers by id or external id, up to 1,000, for machine clients: select "
        "churnRisk, nextPurchase and recommendations on them. Scoring the whole batch costs one "
        "feature query and one prediction call per model. Unknown ids are left out."
    )
    async def scores(
        self,
        info: GraphQLInfo,
        customer_ids: list[strawberry.ID] | None = None,
        external_ids: list[str] | None = None,
        source: str | None = None,
    ) -> list[Annotated[CustomerType, strawberry.lazy("api.schema.customers")]]:
        from api.schema.customers import CustomerType

        if (customer_ids is None) == (external_ids is None):
            raise UserError("give exactly one of `customerIds` and `externalIds`")
        asked = len(customer_ids or external_ids or [])
        if asked > MAX_BATCH:
            raise UserError(f"at most {MAX_BATCH} customers per call (got {asked})")
        if customer_ids is not None:
            pks = [parse_id(i) for i in customer_ids]
        else:
            pks = await info.context.customers.ids_by_external_ids(external_ids or [], source)
        found = await info.context.loaders.customer_by_id.load_many(pks)
        return [CustomerType.from_domain(c) for c in found if c is not None]

    @strawberry.field(
        description="The stored scores' freshness: customers scored, as of when, by which models."
    )
    async def stored_scores_summary(self, info: GraphQLInfo) -> StoredScoresSummaryType:
        s = await info.context.customers.stored_scores_summary()
        return StoredScoresSummaryType(
            customers=s.customers, as_of=s.as_of, scored_at=s.scored_at,
            churn_model_version=s.churn_model_version,
            next_purchase_model_version=s.next_purchase_model_version,
            upsell_model_version=s.upsell_model_version,
        )  # fmt: skip

    @strawberry.field(description="The models the server scores with, and their state.")
    def models(self, info: GraphQLInfo) -> list[ModelStatusType]:
        return model_statuses(info)


@strawberry.type
class PredictionMutations:
    @mutation(
        description="Check the registry for new champion models now and load them (the server "
        "also checks every CDM_MODEL_REFRESH_SECONDS)."
    )
    async def reload_models(self, info: GraphQLInfo) -> list[ModelStatusType]:
        scorer = info.context.scorer
        if scorer is not None:
            await scorer.store.refresh(force=True)
        return model_statuses(info)
