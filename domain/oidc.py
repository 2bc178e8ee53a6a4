"""OpenID Connect roles: which role a verified token's claim gives its bearer. Pure: no I/O.

The identity provider says who someone is and what groups or roles they have there; CDM
decides what that means here through ``CDM_OIDC_ROLE_MAP`` (``crm-admins=admin,
marketing=analyst``), or, with no map, by the claim naming a CDM role outright.

When the claim is a list (a ``groups`` claim usually is), values the map does not know are
ignored, since a groups claim carries many groups unrelated to CDM, but values that map to
*different* roles refuse the token. The roles are not ordered by privilege (``app`` sees
personal data that ``data_scientist`` does not, ``data_scientist`` reloads models that
``app`` may not), so there is no "highest" role to pick, and silently picking one would give
someone access nobody granted them on purpose. An ambiguous token is a configuration problem
to fix at the provider or in the map, so the refusal names the roles it found.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from domain.access import Role

_ROLE_NAMES = ", ".join(role.value for role in Role)
# Three base64url segments; the signature may be empty (alg "none", refused with its reason).
_JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]*={0,2}$")


def looks_like_jwt(value: str) -> bool:
    """Whether a bearer value has a JWT's shape (so it is worth verifying as one)."""
    return _JWT_SHAPE.match(value) is not None


def parse_role_map(text: str) -> dict[str, Role]:
    """``value=role,value=role`` as a mapping; empty text is an empty map.

    Raises ValueError, naming the setting, for an entry without ``=``, an empty value, a
    role CDM does not have or a value mapped to two different roles: a typo here would
    otherwise show up only as refused (or, worse, accepted) tokens. A value may contain
    ``=`` (the last one separates the role) but not ``,``.
    """
    mapping: dict[str, Role] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue  # tolerate "a=admin," and doubled commas
        value, sep, role_name = entry.rpartition("=")
        value, role_name = value.strip(), role_name.strip()
        if not sep or not value:
            raise ValueError(
                f"CDM_OIDC_ROLE_MAP: {entry!r} is not `claim-value=role` "
                "(e.g. `crm-admins=admin,marketing=analyst`)"
            )
        try:
            role = Role(role_name)
        except ValueError:
            raise ValueError(
                f"CDM_OIDC_ROLE_MAP: {entry!r} maps to {role_name!r}, which is not a role; "
                f"the roles are {_ROLE_NAMES}"
            ) from None
        if mapping.get(value, role) is not role:
            raise ValueError(
                f"CDM_OIDC_ROLE_MAP: {value!r} is mapped to both {mapping[value].value} and "
                f"{role.value}"
            )
        mapping[value] = role
    return mapping


def role_from_claim(value: object, role_map: Mapping[str, Role], claim: str) -> Role | str:
    """The role a claim's value gives, or why it gives none (for a 401).

    ``value`` is the claim as found in the token (None when absent). With an empty
    ``role_map`` the claim's value must be a role's name. Tell the outcomes apart with
    ``isinstance(result, Role)``: a Role is a str as well.
    """
    if value is None:
        return f"the token has no `{claim}` claim, so it names no CDM role"
    if isinstance(value, str):
        values = [value]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        values = value
    else:
        return f"the token's `{claim}` claim must be a string or a list of strings"
    roles: dict[Role, str] = {}
    for item in values:
        role = role_map.get(item) if role_map else _role_named(item)
        if role is not None:
            roles.setdefault(role, item)
    if not roles:
        shown = ", ".join(repr(v) for v in values[:5]) + (", …" if len(values) > 5 else "")
        why = (
            "maps to no CDM role in CDM_OIDC_ROLE_MAP" if role_map
            else f"names no CDM role ({_ROLE_NAMES})"
        )  # fmt: skip
        return f"the token's `{claim}` claim ({shown or 'empty'}) {why}"
    if len(roles) > 1:
        found = ", ".join(f"{v!r} → {r.value}" for r, v in roles.items())
        return (
            f"the token's `{claim}` claim maps to several CDM roles ({found}); a token must "
            "map to exactly one"
        )
    (role,) = roles
    return role


def _role_named(name: str) -> Role | None:
    try:
        return Role(name)
    except ValueError:
        return None
