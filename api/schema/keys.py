"""API keys over GraphQL, for admins: list, create (shown once) and revoke."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import strawberry

from api.schema.audited import mutation
from api.schema.common import GraphQLInfo
from api.schema.errors import ValidationFailed
from domain.access import Role
from domain.api_keys import ApiKey, new_key
from domain.standardize import FieldError
from sql.api_keys import insert_key, list_keys, revoke_key

RoleEnum = strawberry.enum(Role, name="Role", description="What a caller may see and do.")


@strawberry.type(name="ApiKey", description="A key callers authenticate with (never its secret).")
class ApiKeyType:
    id: strawberry.ID
    name: str
    role: RoleEnum  # type: ignore[valid-type]
    prefix: str = strawberry.field(description="The key's public handle: `cdm_<prefix>_…`.")
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_domain(cls, k: ApiKey) -> ApiKeyType:
        return cls(
            id=strawberry.ID(str(k.id)), name=k.name, role=k.role, prefix=k.prefix,
            created_at=k.created_at, expires_at=k.expires_at, revoked_at=k.revoked_at,
        )  # fmt: skip


@strawberry.type(description="A new key. `secret` is shown this once and never stored.")
class ApiKeyCreated:
    secret: str
    key: ApiKeyType


CreateKeyResult = Annotated[ApiKeyCreated | ValidationFailed, strawberry.union("CreateKeyResult")]
RevokeKeyResult = Annotated[ApiKeyType | ValidationFailed, strawberry.union("RevokeKeyResult")]


@strawberry.type
class KeyQueries:
    @strawberry.field(description="Every API key, oldest first. Admins only.")
    async def api_keys(self, info: GraphQLInfo) -> list[ApiKeyType]:
        return [ApiKeyType.from_domain(k) for k in await list_keys(info.context.db.pool)]


@strawberry.type
class KeyMutations:
    @mutation(description="Create a key for a caller; its secret is in the answer only. Admins.")
    async def create_api_key(
        self, info: GraphQLInfo, name: str, role: RoleEnum,  # type: ignore[valid-type]
        expires_in_days: int | None = None,
    ) -> CreateKeyResult:  # fmt: skip
        name = name.strip()
        errors = []
        if not 1 <= len(name) <= 200:
            errors.append(FieldError("name", "length", "must be 1 to 200 characters"))
        if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
            errors.append(FieldError("expiresInDays", "range", "must be between 1 and 3650"))
        if errors:
            return ValidationFailed.of(errors)
        expires_at = (
            datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
        )
        secret, prefix, secret_hash = new_key()
        stored = await insert_key(
            info.context.writing().conn, name, Role(role), prefix, secret_hash, expires_at
        )
        return ApiKeyCreated(secret=secret, key=ApiKeyType.from_domain(stored))

    @mutation(description="Revoke a key by id or prefix: refused within seconds. Admins only.")
    async def revoke_api_key(self, info: GraphQLInfo, id_or_prefix: str) -> RevokeKeyResult:
        revoked = await revoke_key(info.context.writing().conn, id_or_prefix.strip())
        if revoked is None:
            message = f"no key with id or prefix {id_or_prefix[:40]!r}"
            return ValidationFailed.of([FieldError("idOrPrefix", "unknown_key", message)])
        return ApiKeyType.from_domain(revoked)
