"""Editor accounts: create, change role, deactivate and reactivate, set a password.

The rules that keep the console manageable live here, not in the views: an admin
never locks themself out, and there is always at least one active admin.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from mailer.common.errors import Conflict, NotFound, ValidationError
from mailer.common.validation import clean_email
from mailer.models import ApiToken, Editor, RecoveryCode, Role, utcnow
from mailer.models.base import DbSession

MIN_PASSWORD = 10
MAX_PASSWORD = 1000  # scrypt hashes whatever it gets; a megabyte "password" is an attack


def _hash_password(password: object) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationError(f"The password needs at least {MIN_PASSWORD} characters.",
                              {"password": "too short"})
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"The password may have at most {MAX_PASSWORD} characters.",
                              {"password": "too long"})
    return generate_password_hash(password, method="scrypt")


def _check_role(role: object) -> str:
    if role not in Role.ALL:
        raise ValidationError(f"role must be one of {', '.join(Role.ALL)}.", {"role": "invalid"})
    return str(role)


def create_editor(session: DbSession, email: str, password: str, role: str = Role.EDITOR) -> Editor:
    address = clean_email(email).lower()
    role = _check_role(role)
    password_hash = _hash_password(password)
    if session.scalar(select(Editor).where(Editor.email == address)) is not None:
        raise Conflict(f"An editor {address} exists already.", {"email": "exists"})
    editor = Editor(email=address, role=role, password_hash=password_hash)
    session.add(editor)
    try:
        session.commit()
    except IntegrityError as exc:  # the same address created a moment ago by someone else
        session.rollback()
        raise Conflict(f"An editor {address} exists already.", {"email": "exists"}) from exc
    return editor


@functools.cache
def dummy_hash() -> str:
    """Checked for unknown addresses, so they cost one scrypt like known ones."""
    return generate_password_hash(secrets.token_hex(16), method="scrypt")


def authenticate(session: DbSession, email: str, password: str) -> Editor | None:
    """The password check alone (one scrypt whatever the address); the console's
    login adds the throttle: see login_guard.attempt_login."""
    editor = session.scalar(select(Editor).where(Editor.email == email.strip().lower()))
    known = editor is not None and editor.active
    stored = editor.password_hash if known and editor is not None else dummy_hash()
    return editor if check_password_hash(stored, password) and known else None


def list_editors(session: DbSession) -> Sequence[Editor]:
    """Active accounts first, then by address."""
    return session.scalars(select(Editor).order_by(Editor.active.desc(), Editor.email)).all()


def _lock(session: DbSession, actor_id: int, editor_id: int) -> Editor:
    """Lock the active admins and the target, and check the actor is still an active admin.

    On PostgreSQL the row locks serialise two admins changing each other at the same
    moment (otherwise both could pass the last-admin check and leave none); SQLite has
    one writer at a time anyway. populate_existing: decide on the rows as committed now,
    not on objects loaded earlier in the request.
    """
    admins = session.scalars(
        select(Editor).where(Editor.role == Role.ADMIN, Editor.active.is_(True))
        .order_by(Editor.id).with_for_update().execution_options(populate_existing=True)
    ).all()
    if actor_id not in {a.id for a in admins}:
        session.rollback()
        raise ValidationError("Only an active admin may manage accounts.", status=403)
    target = session.get(Editor, editor_id, with_for_update=True, populate_existing=True)
    if target is None:
        session.rollback()
        raise NotFound("No such editor.")
    return target


def _commit_keeping_an_admin(session: DbSession) -> None:
    """Counted after the change is written, inside the same transaction: a check done
    before writing could race another admin's change on SQLite."""
    session.flush()
    left = session.scalar(select(func.count()).select_from(Editor).where(
        Editor.role == Role.ADMIN, Editor.active.is_(True)))
    if not left:
        session.rollback()
        raise Conflict("This is the last active admin: make someone else admin first.",
                       {"role": "last admin"})
    session.commit()


def set_role(session: DbSession, actor_id: int, editor_id: int, role: str) -> Editor:
    role = _check_role(role)
    target = _lock(session, actor_id, editor_id)
    if target.id == actor_id and role != Role.ADMIN:
        session.rollback()
        raise Conflict("You cannot take the admin role from yourself; ask another admin.",
                       {"role": "own account"})
    target.role = role
    _commit_keeping_an_admin(session)
    return target


def set_active(session: DbSession, actor_id: int, editor_id: int, active: bool) -> Editor:
    """Deactivation also revokes the account's API tokens: a leaver's automation stops
    with their login. Reactivating does not bring the tokens back."""
    target = _lock(session, actor_id, editor_id)
    if target.id == actor_id and not active:
        session.rollback()
        raise Conflict("You cannot deactivate your own account; ask another admin.",
                       {"active": "own account"})
    target.active = active
    target.session_version += 1  # sessions from before never come back
    if not active:
        session.execute(update(ApiToken)
                        .where(ApiToken.editor_id == target.id, ApiToken.revoked_at.is_(None))
                        .values(revoked_at=utcnow()))
    _commit_keeping_an_admin(session)
    return target


def set_password(session: DbSession, actor_id: int, editor_id: int, password: str) -> Editor:
    password_hash = _hash_password(password)  # before locking: scrypt takes a while
    target = _lock(session, actor_id, editor_id)
    target.password_hash = password_hash
    session.commit()
    return target


def change_own_password(session: DbSession, editor_id: int, current: str, new: str) -> Editor:
    """Any role may change its own password, knowing the current one (a session
    left open on a shared screen is not enough to take the account over)."""
    editor = session.get(Editor, editor_id)
    if editor is None or not editor.active:
        raise NotFound("No such editor.")
    if not current or not check_password_hash(editor.password_hash, current):
        raise ValidationError("The current password is not right.", {"current_password": "wrong"})
    if current == new:
        raise ValidationError("The new password is the same as the current one.",
                              {"new_password": "unchanged"})
    editor.password_hash = _hash_password(new)
    session.commit()
    return editor


def password_matches(editor: Editor, password: str) -> bool:
    return bool(password) and check_password_hash(editor.password_hash, password[:MAX_PASSWORD])


def reset_two_factor(session: DbSession, actor_id: int, editor_id: int) -> Editor:
    """An admin clears another account's second factor (a lost phone with no recovery
    code left); the account's open sessions end and it sets two-factor up again."""
    target = _lock(session, actor_id, editor_id)
    if target.id == actor_id:
        session.rollback()
        raise Conflict("Turn off your own two-factor login on your account page.",
                       {"two_factor": "own account"})
    target.totp_secret = None
    target.totp_pending_secret = None
    target.totp_last_step = None
    target.session_version += 1
    session.execute(delete(RecoveryCode).where(RecoveryCode.editor_id == target.id))
    session.commit()
    return target
