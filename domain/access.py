"""Who may see and do what: roles, the personal data they see masked or not at all.

One table decides, for a role and a schema coordinate (``"Customer.email"``,
``"Mutation.mergeCustomers"``), whether the field is answered, answered masked, or refused.
The API applies it to a whole operation before running it (refusals) and to the response
(masks), so no resolver carries its own rule. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # everything, including keys and erasure
    ANALYST = "analyst"  # reads everything, personal data masked
    APP = "app"  # the frontend: reads and writes customer data, personal data included
    PERSONALIZATION = "personalization"  # scores and recommendations by id, no personal data
    DATA_SCIENTIST = "data_scientist"  # reads, models and features; personal data masked


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes a request: a name for the records and the role that decides what they see."""

    name: str
    role: Role
    via: str = "key"  # how they proved it: an API key ("key") or an OpenID Connect token ("oidc")

    @property
    def actor(self) -> str:
        """How audit entries and merge history name them, e.g. ``key:crm-frontend``."""
        return f"{self.via}:{self.name}"


class Access(StrEnum):
    ALLOW = "allow"
    MASK = "mask"
    DENY = "deny"


class MaskKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    NAME = "name"
    DATE = "date"
    TEXT = "text"  # free text or any identifying value
    DOCUMENT = "document"  # free-form JSON


# Every field that shows personal data, and how it is masked. A test fails when a schema
# field that looks personal is missing here (see tests/unit/test_access.py).
PERSONAL_FIELDS: dict[str, MaskKind] = {
    "Customer.firstName": MaskKind.NAME,
    "Customer.lastName": MaskKind.NAME,
    "Customer.fullName": MaskKind.NAME,
    "Customer.email": MaskKind.EMAIL,
    "Customer.phone": MaskKind.PHONE,
    "Customer.birthDate": MaskKind.DATE,
    "Identity.value": MaskKind.TEXT,
    "Interaction.properties": MaskKind.DOCUMENT,
    "MatchEvidence.aValue": MaskKind.TEXT,
    "MatchEvidence.bValue": MaskKind.TEXT,
    "MergeFieldDecision.value": MaskKind.TEXT,
    "MergeFieldValue.value": MaskKind.TEXT,
}

# What the personalization role may touch: scores by id, the products recommended, nothing
# about the person.
_PERSONALIZATION_TYPES = frozenset(
    {
        "ChurnRisk", "ModelProvenance", "ScoreFactor", "FeatureValue", "NextPurchase",
        "Recommendation", "Product", "ModelStatus", "StoredScores", "Metric", "BuyAgain",
    }
)  # fmt: skip
_PERSONALIZATION_FIELDS = frozenset(
    {
        "Query.scores", "Query.models", "Customer.id", "Customer.churnRisk",
        "Customer.nextPurchase", "Customer.recommendations", "Customer.buyAgain",
        "Customer.storedScores", "Customer.scoresWithheld",
    }
)  # fmt: skip

# Fields for admins alone: the audit log, data-subject rights and API keys.
ADMIN_ONLY = frozenset(
    {
        "Query.auditLog", "Query.exportCustomerData", "Mutation.eraseCustomer", "Query.apiKeys",
        "Mutation.createApiKey", "Mutation.revokeApiKey",
    }
)  # fmt: skip

# Mutations each role may call (admin: all).
_SEGMENTATION = frozenset({"createSegment", "deleteSegment", "refreshRfm"})
_MUTATIONS: dict[Role, frozenset[str]] = {
    Role.ANALYST: _SEGMENTATION,
    Role.PERSONALIZATION: frozenset(),
    Role.DATA_SCIENTIST: frozenset({"reloadModels"}) | _SEGMENTATION,
    Role.APP: frozenset(
        {
            "upsertCustomer",
            "recordPurchases",
            "recordInteractions",
            "setConsent",
            "upsertProducts",
            "mergeCustomers",
            "unmergeCustomers",
        }
    )
    | _SEGMENTATION,
}


def access(role: Role, coordinate: str) -> Access:
    """What ``role`` gets for the schema field ``coordinate`` (``Type.field``)."""
    type_name, _, field = coordinate.partition(".")
    if field.startswith("__") or type_name.startswith("__"):
        return Access.ALLOW  # introspection and __typename
    if role is Role.ADMIN:
        return Access.ALLOW
    if coordinate in ADMIN_ONLY:
        return Access.DENY
    if type_name == "Mutation":
        return Access.ALLOW if field in _MUTATIONS[role] else Access.DENY
    if role is Role.PERSONALIZATION:
        allowed = coordinate in _PERSONALIZATION_FIELDS or type_name in _PERSONALIZATION_TYPES
        return Access.ALLOW if allowed else Access.DENY
    if coordinate in PERSONAL_FIELDS and role in (Role.ANALYST, Role.DATA_SCIENTIST):
        return Access.MASK
    return Access.ALLOW


_EMAIL = re.compile(r"^([^@]?)[^@]*@(.+)$")


def mask(kind: MaskKind, value: object) -> object:
    """``value`` with the person taken out, keeping just enough to read a list by."""
    if value is None:
        return None
    if isinstance(value, list):
        return [mask(kind, v) for v in value]
    if kind is MaskKind.DOCUMENT:
        return {}
    if kind is MaskKind.DATE:
        return None
    text = str(value)
    if kind is MaskKind.TEXT:  # whatever it is: e-mail, phone or name, masked as such
        kind = (
            MaskKind.EMAIL if "@" in text
            else MaskKind.PHONE if sum(c.isdigit() for c in text) >= 6
            else MaskKind.NAME
        )  # fmt: skip
    if kind is MaskKind.EMAIL:
        found = _EMAIL.match(text)
        return f"{found.group(1)}***@{found.group(2)}" if found else "***"
    if kind is MaskKind.PHONE:
        digits = [c for c in text if c.isdigit()]
        return "***" + "".join(digits[-2:])
    return f"{text[0]}***" if text else ""
