"""API tokens: shown once, stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select

from mailer.models import ApiToken, Editor, Role, utcnow
from mailer.models.base import DbSession


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: DbSession, name: str, editor_id: int | None = None) -> str:
    token = "mlr_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name[:200], editor_id=editor_id, token_hash=_hash(token),
                         prefix=token[:10]))
    session.commit()
    return token


def check_token(session: DbSession, presented: str, configured: str = "") -> bool:
    if not presented or len(presented) > 200:
        return False
    if configured and hmac.compare_digest(presented.encode(), configured.encode()):
        return True
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(presented)))
    if row is None or row.revoked_at is not None:
        return False
    row.last_used_at = utcnow()
    session.commit()
    return True


def token_is_admin(session: DbSession, presented: str, configured: str = "") -> bool:
    """Whether a valid token may change admin-only settings: MAILER_API_TOKEN and
    operator tokens (created without an editor) may; an editor's token only when
    that editor is an active admin."""
    if not check_token(session, presented, configured):
        return False
    if configured and hmac.compare_digest(presented.encode(), configured.encode()):
        return True
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(presented)))
    if row is None or row.editor_id is None:
        return row is not None
    editor = session.get(Editor, row.editor_id)
    return editor is not None and editor.active and editor.role == Role.ADMIN
