"""Two-factor login for console editors: TOTP (RFC 6238) with one-time recovery codes.

An account turns it on in two steps: a new secret is kept as pending until the
editor proves their app has it by entering a current code; only then does it
become the account's secret, and ten recovery codes are made (shown once, kept
only as hashes). A TOTP code is accepted once per 30-second step and never for
a step at or before the last one accepted, so an overheard code cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
from sqlalchemy import delete, func, select, update

from mailer.common.errors import NotFound, ValidationError
from mailer.console.editors import password_matches
from mailer.models import PUBLICATION_ROW_ID, Editor, PublicationSettings, RecoveryCode, utcnow
from mailer.models.base import DbSession

RECOVERY_CODES = 10
STEP_SECONDS = 30
# Steps either side of now still accepted: clocks drift.
DRIFT_STEPS = 1
ISSUER = "Digest mailer console"
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread


def _hash_code(code: str) -> str:
    return hashlib.sha256(normalise_recovery(code).encode()).hexdigest()


def normalise_recovery(code: str) -> str:
    return "".join(c for c in code.lower() if c.isalnum())


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))  # ~49 bits
    return f"{raw[:5]}-{raw[5:]}"


def _editor(session: DbSession, editor_id: int) -> Editor:
    editor = session.get(Editor, editor_id)
    if editor is None or not editor.active:
        raise NotFound("No such editor.")
    return editor


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def start_enrolment(session: DbSession, editor_id: int) -> str:
    """A fresh pending secret for the account (replacing any earlier one). Commits."""
    editor = _editor(session, editor_id)
    if editor.two_factor_enabled:
        raise ValidationError("Two-factor login is already on for this account.",
                              {"code": "already enabled"})
    editor.totp_pending_secret = pyotp.random_base32()
    session.commit()
    return editor.totp_pending_secret


def _matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code this is (within the allowed drift), or None."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def _claim_step(session: DbSession, editor_id: int, step: int) -> bool:
    """Record the step as used; False when it (or a later one) was used already.
    One conditional UPDATE, so two requests racing with the same code cannot both win."""
    result = session.execute(
        update(Editor).where(Editor.id == editor_id,
                             (Editor.totp_last_step.is_(None)) | (Editor.totp_last_step < step))
        .values(totp_last_step=step).execution_options(synchronize_session=False))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def confirm_enrolment(session: DbSession, editor_id: int, code: str,
                      now: datetime | None = None) -> list[str]:
    """Turn two-factor on with the pending secret, given a current code from it.
    Returns the recovery codes (the only time they exist in clear). Commits."""
    editor = _editor(session, editor_id)
    pending = editor.totp_pending_secret
    if editor.two_factor_enabled or not pending:
        raise ValidationError("Start the set-up again: there is no secret waiting for a code.",
                              {"code": "no pending secret"})
    step = _matching_step(pending, code, now or utcnow())
    if step is None:
        raise ValidationError("That code is not right: enter the 6 digits your app shows now.",
                              {"code": "wrong"})
    editor.totp_secret = pending
    editor.totp_pending_secret = None
    editor.totp_last_step = step
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    session.execute(delete(RecoveryCode).where(RecoveryCode.editor_id == editor.id))
    session.add_all(RecoveryCode(editor_id=editor.id, code_hash=_hash_code(c)) for c in codes)
    session.commit()
    return codes


def check_code(session: DbSession, editor: Editor, code: str, now: datetime | None = None) -> str:
    """The second login step: '' when refused, 'totp' or 'recovery' by what was used.
    A used code (TOTP step or recovery code) never works again. Commits."""
    secret = editor.totp_secret
    if not secret:
        return ""
    code = code.strip()[:64]
    step = _matching_step(secret, code, now or utcnow())
    if step is not None:
        ok = _claim_step(session, editor.id, step)
        session.commit()
        return "totp" if ok else ""
    normalised = normalise_recovery(code)
    if len(normalised) != 10:
        return ""
    result = session.execute(
        update(RecoveryCode).where(RecoveryCode.editor_id == editor.id,
                                   RecoveryCode.code_hash == _hash_code(normalised),
                                   RecoveryCode.used_at.is_(None))
        .values(used_at=now or utcnow()).execution_options(synchronize_session=False))
    session.commit()
    return "recovery" if result.rowcount else ""  # type: ignore[attr-defined]


def recovery_codes_left(session: DbSession, editor_id: int) -> int:
    return session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.editor_id == editor_id, RecoveryCode.used_at.is_(None))) or 0


def disable(session: DbSession, editor_id: int, password: str, code: str,
            now: datetime | None = None) -> Editor:
    """Turn two-factor off, given the password and a current code (or a recovery code). Commits."""
    editor = _editor(session, editor_id)
    if not editor.two_factor_enabled:
        raise ValidationError("Two-factor login is not on for this account.", {"code": "not enabled"})
    if not password_matches(editor, password):
        raise ValidationError("The password is not right.", {"password": "wrong"})
    if not check_code(session, editor, code, now):
        raise ValidationError("That code is not right (or was used already).", {"code": "wrong"})
    editor.totp_secret = None
    editor.totp_pending_secret = None
    editor.totp_last_step = None
    session.execute(delete(RecoveryCode).where(RecoveryCode.editor_id == editor.id))
    session.commit()
    return editor


def two_factor_required(session: DbSession) -> bool:
    row = session.get(PublicationSettings, PUBLICATION_ROW_ID)
    return bool(row and row.require_two_factor)


def set_two_factor_required(session: DbSession, required: bool, *, updated_by: str = "") -> None:
    """The admins' switch: every account must use two-factor login. Commits."""
    row = session.get(PublicationSettings, PUBLICATION_ROW_ID)
    if row is None:
        row = PublicationSettings(id=PUBLICATION_ROW_ID)
        session.add(row)
    row.require_two_factor = required
    row.updated_by = updated_by[:320]
    session.commit()
