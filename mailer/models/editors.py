"""People who run the newsletter, and the API tokens they hand to automation."""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum, nonmember
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, utcnow


class Role(StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"
    ALL = nonmember(("admin", "editor", "viewer"))


class Editor(Base):
    __tablename__ = "editors"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300), default="")
    role: Mapped[str] = mapped_column(String(20), default=Role.EDITOR)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Raised to end every open session of the account (deactivation, reactivation).
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    # Two-factor (TOTP): the confirmed secret, one waiting for its first code, and the
    # last 30-second step accepted (a code works once: no replay).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_pending_secret: Mapped[str | None] = mapped_column(String(64))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)

    @property
    def two_factor_enabled(self) -> bool:
        return bool(self.totp_secret)

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """What the (signed) session cookie holds: the id and a fingerprint of the
        password hash and session version, so a new password, a deactivation or a
        reactivation ends every older session."""
        return f"{self.id}.{self.session_fingerprint()}"

    def session_fingerprint(self) -> str:
        material = f"{self.password_hash}:{self.session_version}"
        return hashlib.sha256(material.encode()).hexdigest()[:16]

    def can_change(self) -> bool:
        return self.role in (Role.ADMIN, Role.EDITOR)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("editors.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    # read, write or admin; what the token may do is also capped by its owner's
    # role at the time of use. Tokens from before scopes existed are "admin".
    scope: Mapped[str] = mapped_column(String(10), default="write", server_default="admin")
    prefix: Mapped[str] = mapped_column(String(12), default="")  # shown to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginThrottle(Base):
    """Failed console logins per address (known or not, so the throttle itself
    tells nobody which addresses have accounts); the address is kept only as a hash."""

    __tablename__ = "login_throttles"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    failures: Mapped[int] = mapped_column(default=0)
    last_failure_at: Mapped[datetime | None]
    blocked_until: Mapped[datetime | None]
    notified_at: Mapped[datetime | None]


class EditorSession(Base):
    """A console login, so logging out ends it on the server: a copied session
    cookie stops working. The cookie holds the id; only its hash is stored."""

    __tablename__ = "editor_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id", ondelete="CASCADE"),
                                           index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """What editors and API tokens did: logins, sends, settings, tokens, roles,
    exports. Append-only; admins read and export it."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("editors.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(320), default="")  # address or "API token mlr_…"
    action: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(String(300), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RecoveryCode(Base):
    """A one-time two-factor recovery code; only its hash is kept."""

    __tablename__ = "editor_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editors.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None]
