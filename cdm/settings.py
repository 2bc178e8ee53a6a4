"""Settings, read once from ``CDM_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.oidc import parse_role_map
from domain.predictions import RiskBands
from domain.survivorship import Policy, Rule


class LogLevel(StrEnum):
    """Log levels accepted by ``CDM_LOG_LEVEL``."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Mode(StrEnum):
    """How the server presents itself: `production` hides what helps developers explore."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


DATA_DIR_NAME = ".cdm"


def find_data_dir(start: Path) -> Path | None:
    """The nearest ``.cdm`` directory in ``start`` or a folder above it, if any."""
    for folder in (start, *start.parents):
        candidate = folder / DATA_DIR_NAME
        if candidate.is_dir():
            return candidate
    return None


class Settings(BaseSettings):
    """Everything CDM can be configured with. Frozen: build a new one to change a value."""

    model_config = SettingsConfigDict(
        env_prefix="CDM_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: CDM runs its own embedded PostgreSQL in the data dir.",
    )
    data_dir: Path = Field(
        default=Path(DATA_DIR_NAME),
        description="Where the embedded database and local state live. Unset: the nearest "
        f"`{DATA_DIR_NAME}` directory in the current directory or above it (as git finds its "
        f"repository), else `{DATA_DIR_NAME}` in the current directory.",
    )
    host: str = Field(default="127.0.0.1", description="Address `cdm serve` binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `cdm serve` listens on.")
    workers: int = Field(default=1, ge=1, le=64, description="Server worker processes.")
    log_level: LogLevel = Field(default=LogLevel.INFO, description="Log verbosity.")
    pool_min_size: int = Field(default=2, ge=0, description="Connections kept open per worker.")
    pool_max_size: int = Field(default=10, ge=1, description="Most connections per worker.")
    statement_timeout_ms: int = Field(
        default=15_000, ge=100, description="Longest an API query may run in the database (ms)."
    )
    max_page_size: int = Field(
        default=100, ge=1, le=10_000, description="Largest `first` a list field accepts."
    )
    mode: Mode = Field(
        default=Mode.DEVELOPMENT,
        description="`production` turns off GraphiQL, introspection and field suggestions.",
    )
    graphiql: bool | None = Field(
        default=None,
        description="Serve the GraphiQL IDE on GET /graphql (default: on outside production).",
    )
    pool_acquire_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Longest a request waits for a free connection (503 after)."
    )
    shutdown_grace_seconds: float = Field(
        default=20.0, ge=0, description="How long SIGTERM lets in-flight requests finish."
    )
    rate_limit_per_second: float = Field(
        default=1000.0, ge=0, description="Requests per second each API key may make (0: no limit)."
    )
    rate_limit_burst: int = Field(
        default=2000, ge=1, description="Requests a key may make at once before the rate applies."
    )
    query_max_cost: int = Field(
        default=50_000, ge=1,
        description="Largest estimated cost of one query: each field costs one, times the page "
        "sizes (`first`) and id lists it is nested in.",
    )  # fmt: skip
    audit_flush_seconds: float = Field(
        default=1.0, gt=0, description="How often personal-data reads are written to the audit log."
    )
    audit_refusals_burst: int = Field(
        default=20, ge=1,
        description="Refused requests (401, 403) of one caller audited one by one at once.",
    )  # fmt: skip
    audit_refusals_per_minute: float = Field(
        default=12.0, gt=0,
        description="Refused requests per minute and caller audited one by one after the burst; "
        "the rest are counted in one summary entry a minute.",
    )  # fmt: skip
    oidc_issuer: str | None = Field(
        default=None,
        description="Also accept JWTs from this OpenID Connect issuer (its JWKS is discovered).",
    )
    oidc_audience: str | None = Field(
        default=None, description="The `aud` a JWT must carry (required with CDM_OIDC_ISSUER)."
    )
    oidc_jwks_url: str | None = Field(
        default=None, description="The issuer's JWKS URL, when it should not be discovered."
    )
    oidc_role_claim: str = Field(
        default="cdm_role", description="The JWT claim that names the caller's role."
    )
    oidc_role_map: str = Field(
        default="",
        description="Claim values to roles, e.g. `crm-admins=admin,marketing=analyst` (default: "
        "the claim must be a role's name).",
    )
    query_max_depth: int = Field(
        default=12, ge=1, description="Deepest selection a query may nest."
    )
    query_max_fields: int = Field(
        default=500, ge=1, description="Most fields a query may select (fragments expanded)."
    )
    query_max_aliases: int = Field(default=50, ge=0, description="Most aliases in one query.")
    query_max_tokens: int = Field(
        default=5_000, ge=10, description="Most lexical tokens a query document may have."
    )
    max_body_bytes: int = Field(
        default=1_000_000, ge=1_000, description="Largest request body accepted (413 above)."
    )
    survivorship_rule: Rule = Field(
        default=Rule.MOST_RECENT,
        description="Which value a profile field keeps when sources disagree: most_recent, "
        "most_trusted (see CDM_SOURCE_TRUST) or non_empty.",
    )
    source_trust: str = Field(
        default="",
        description="Sources from most to least trusted, comma-separated (e.g. crm,shop,web).",
    )
    compiled_queries: bool = Field(
        default=True,
        description="Run queries through the compiled fast path (graphql-core when off).",
    )
    sql_reads: bool = Field(
        default=True,
        description="Answer the queries the SQL compiler covers with one statement that builds "
        "the JSON in PostgreSQL (the compiled Python path or graphql-core when off).",
    )
    verify_sql_reads: bool = Field(
        default=False,
        description="Development and tests: also answer every SQL-compiled query through "
        "graphql-core on the same snapshot and fail the request when they differ.",
    )
    expose_statement_count: bool = Field(
        default=False, description="Send each response's SQL statement count (X-SQL-Statements)."
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "mlflow_tracking_uri", "CDM_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"
        ),
        description="MLflow tracking server for training runs and models (MLFLOW_TRACKING_URI "
        "works too). Unset: a local store, mlflow.db in the data dir.",
    )

    churn_band_medium: float = Field(
        default=0.4, gt=0, lt=1, description="Churn probability from which risk is `medium`."
    )
    churn_band_high: float = Field(
        default=0.7, gt=0, lt=1, description="Churn probability from which risk is `high`."
    )
    model_refresh_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How often the server checks the registry for new champion models (0: never; "
        "the reloadModels mutation still works).",
    )
    model_load_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        description="Longest start-up waits for the registry before serving cached models.",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "must be a postgresql:// URL, e.g. postgresql://user:pass@host:5432/db"
            )
        return value

    @field_validator("oidc_role_map")
    @classmethod
    def _role_map(cls, value: str) -> str:
        parse_role_map(value)  # refuses unknown roles and malformed entries, saying which
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Resolved once so every process (server workers, CLI) agrees on the same directory.
        return value.expanduser().resolve()

    @property
    def tracking_uri(self) -> str:
        """Where training runs and registered models live."""
        from ml.registry import default_tracking_uri  # late: settings need no ML module

        return self.mlflow_tracking_uri or default_tracking_uri(self.data_dir)

    @property
    def data_dir_known(self) -> bool:
        """Whether the data directory exists or was asked for (CDM_DATA_DIR, an option): not
        the default in a directory where nothing was ever made."""
        return "data_dir" in self.model_fields_set or self.data_dir.is_dir()

    @model_validator(mode="after")
    def _bands_in_order(self) -> Settings:
        if self.churn_band_medium >= self.churn_band_high:
            raise ValueError("CDM_CHURN_BAND_MEDIUM must be below CDM_CHURN_BAND_HIGH")
        if self.oidc_issuer and not self.oidc_audience:
            raise ValueError("CDM_OIDC_AUDIENCE must be set with CDM_OIDC_ISSUER")
        return self

    @property
    def production(self) -> bool:
        """Whether developer conveniences are off."""
        return self.mode == Mode.PRODUCTION

    @property
    def serve_graphiql(self) -> bool:
        """Whether GET /graphql serves the IDE."""
        return self.graphiql if self.graphiql is not None else not self.production

    @property
    def risk_bands(self) -> RiskBands:
        """Churn risk bands (validated: medium below high)."""
        return RiskBands(self.churn_band_medium, self.churn_band_high)

    @property
    def survivorship(self) -> Policy:
        """The survivorship policy these settings describe."""
        trust = tuple(s.strip() for s in self.source_trust.split(",") if s.strip())
        return Policy(self.survivorship_rule, trust)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword overrides win (used by the CLI options).
    Without CDM_DATA_DIR, the data directory is the nearest ``.cdm`` in the current directory
    or above it, so every command run inside a project finds the same one."""
    given = {k: v for k, v in overrides.items() if v is not None}
    settings = Settings(**given)
    if "data_dir" not in settings.model_fields_set:
        found = find_data_dir(Path.cwd())
        if found is not None:
            settings = Settings(**given, data_dir=found)
    return settings
