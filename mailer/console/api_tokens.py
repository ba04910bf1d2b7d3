"""API tokens: shown once, stored as SHA-256 hashes, each with a scope.

Scopes: `read` (GET), `write` (also changes), `admin` (also admin-only routes).
What a token may do is its scope capped by its owner's role at the moment of
use, so demoting an editor to viewer takes write rights from their tokens at
once. Tokens without an owner (made on the command line without --editor, or
MAILER_API_TOKEN) have their scope alone: only someone with shell access makes them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select

from mailer.common.errors import ValidationError
from mailer.models import ApiToken, Editor, Role, utcnow
from mailer.models.base import DbSession

SCOPES = ("read", "write", "admin")  # each includes the ones before it
ROLE_CAP: dict[str, str] = {Role.VIEWER: "read", Role.EDITOR: "write", Role.ADMIN: "admin"}
# MAILER_API_TOKEN: the operator's own token, as the JSON API always allowed.
CONFIGURED_SCOPE = "admin"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _rank(scope: str) -> int:
    return SCOPES.index(scope) if scope in SCOPES else -1


def scope_allows(granted: str | None, needed: str) -> bool:
    return granted is not None and _rank(granted) >= _rank(needed) >= 0


def capped(scope: str, role: str | None) -> str | None:
    """`scope` limited by `role` (None: no owner, no cap); None when nothing is left."""
    if role is None:
        return scope if scope in SCOPES else None
    cap = ROLE_CAP.get(role)
    if cap is None or scope not in SCOPES:
        return None
    return SCOPES[min(_rank(scope), _rank(cap))]


def check_scope(scope: object, role: str | None) -> str:
    """The scope asked for, if the owner's role allows it (ValidationError otherwise)."""
    if scope not in SCOPES:
        raise ValidationError(f"scope must be one of {', '.join(SCOPES)}.", {"scope": "invalid"})
    allowed = capped(str(scope), role)
    if allowed != scope:
        raise ValidationError(f"A {role} may create tokens up to the scope {ROLE_CAP.get(role or '')}.",
                              {"scope": "above your role"}, status=403)
    return str(scope)


def create_token(session: DbSession, name: str, editor_id: int | None = None,
                 scope: str = "write") -> str:
    role = None
    if editor_id is not None:
        owner = session.get(Editor, editor_id)
        if owner is None or not owner.active:
            raise ValidationError("No such active editor.", {"editor": "unknown"}, status=404)
        role = owner.role
    scope = check_scope(scope, role)
    token = "mlr_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name[:200], editor_id=editor_id, token_hash=_hash(token),
                         prefix=token[:10], scope=scope))
    session.commit()
    return token


def check_token(session: DbSession, presented: str, configured: str = "") -> str | None:
    """The scope the presented token has right now (None: not a usable token)."""
    if not presented or len(presented) > 200:
        return None
    if configured and hmac.compare_digest(presented.encode(), configured.encode()):
        return CONFIGURED_SCOPE
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(presented)))
    if row is None or row.revoked_at is not None:
        return None
    role = None
    if row.editor_id is not None:
        owner = session.get(Editor, row.editor_id)
        if owner is None or not owner.active:
            return None
        role = owner.role
    granted = capped(row.scope, role)
    if granted is None:
        return None
    row.last_used_at = utcnow()
    session.commit()
    return granted


def effective_scope(token: ApiToken, owner_role: str | None) -> str | None:
    """What a listed token may do now (for the tokens page)."""
    return capped(token.scope, owner_role)


def token_is_admin(session: DbSession, presented: str, configured: str = "") -> bool:
    """Whether a token may change admin-only settings: its scope is `admin`, as
    capped by its owner's current role."""
    return check_token(session, presented, configured) == "admin"
