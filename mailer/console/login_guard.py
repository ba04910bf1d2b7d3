"""Console login: the same work for every address, a throttle per address with a
growing delay, a notice to the account when it is under attack, and sessions
that end on the server at logout.

Every address, known or not, goes through the same steps: one throttle row read
and written, one scrypt (against the account's hash or a fixed dummy hash). So
neither the time nor the answer tells an attacker which addresses have accounts.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash

from mailer.config import Settings
from mailer.console import audit, two_factor
from mailer.console.editors import dummy_hash
from mailer.jobs import TaskName, enqueue_on_commit
from mailer.mail.senders import Outcome, Sender
from mailer.models import Editor, EditorSession, LoginThrottle, utcnow
from mailer.models.base import DbSession
from mailer.readers import build_message

# Failures allowed before the delay starts; then 30 s, doubling per failure, at most 15 min.
FREE_FAILURES = 5
FIRST_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=15)
# Failures older than this are forgotten.
FAILURE_WINDOW = timedelta(hours=1)
# At most one notice per account in this time.
NOTICE_INTERVAL = timedelta(hours=1)
# A session unused this long ends (the cookie itself lives longer).
SESSION_IDLE = timedelta(days=7)


def address_key(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def delay_after(failures: int) -> timedelta:
    if failures < FREE_FAILURES:
        return timedelta(0)
    delay: timedelta = FIRST_DELAY * 2 ** (failures - FREE_FAILURES)
    return min(MAX_DELAY, delay)


@dataclass(frozen=True)
class LoginResult:
    editor: Editor | None
    retry_after: float = 0.0  # > 0: refused without looking at the password


def attempt_login(session: DbSession, email: str, password: str,
                  now: datetime | None = None) -> LoginResult:
    """Check a console login. Commits."""
    now = now or utcnow()
    key = address_key(email)
    throttle = session.scalar(select(LoginThrottle).where(LoginThrottle.key_hash == key))
    if throttle is not None and throttle.blocked_until and throttle.blocked_until > now:
        session.commit()
        return LoginResult(None, (throttle.blocked_until - now).total_seconds())
    editor = session.scalar(select(Editor).where(Editor.email == email.strip().lower()))
    known = editor is not None and editor.active
    stored = editor.password_hash if known and editor is not None else dummy_hash()
    good = check_password_hash(stored, password) and known
    if good:
        # With two-factor on, the failures count on until the second step succeeds:
        # knowing the password must not reset the count of guessed codes.
        if editor is not None and not editor.two_factor_enabled:
            session.execute(delete(LoginThrottle).where(LoginThrottle.key_hash == key))
        session.commit()
        return LoginResult(editor)
    _record_failure(session, key, throttle, now)
    return LoginResult(None)


def attempt_second_factor(session: DbSession, editor_id: int, code: str, *, ip: str = "",
                          now: datetime | None = None) -> LoginResult:
    """The second login step (a TOTP or recovery code) for an account whose password
    was right. Wrong codes count in the same per-address throttle as wrong passwords. Commits."""
    now = now or utcnow()
    editor = session.get(Editor, editor_id)
    if editor is None or not editor.active or not editor.two_factor_enabled:
        return LoginResult(None)
    key = address_key(editor.email)
    throttle = session.scalar(select(LoginThrottle).where(LoginThrottle.key_hash == key))
    if throttle is not None and throttle.blocked_until and throttle.blocked_until > now:
        session.commit()
        return LoginResult(None, (throttle.blocked_until - now).total_seconds())
    used = two_factor.check_code(session, editor, code, now)
    if not used:
        _record_failure(session, key, throttle, now)
        return LoginResult(None)
    session.execute(delete(LoginThrottle).where(LoginThrottle.key_hash == key))
    session.commit()
    if used == "recovery":
        audit.record(session, "two_factor.recovery_code_used", editor_id=editor.id,
                     actor=editor.email, ip=ip,
                     detail={"left": two_factor.recovery_codes_left(session, editor.id)})
    return LoginResult(editor)


def _record_failure(session: DbSession, key: str, throttle: LoginThrottle | None,
                    now: datetime) -> None:
    if throttle is None:
        throttle = LoginThrottle(key_hash=key, failures=0)
        session.add(throttle)
        try:
            session.flush()
        except IntegrityError:  # another request made the row a moment ago
            session.rollback()
            throttle = session.scalar(select(LoginThrottle).where(LoginThrottle.key_hash == key))
            if throttle is None:
                return
    stale = throttle.last_failure_at is not None and now - throttle.last_failure_at > FAILURE_WINDOW
    # Counted in SQL: concurrent failures each count.
    session.execute(update(LoginThrottle).where(LoginThrottle.id == throttle.id)
                    .values(failures=1 if stale else LoginThrottle.failures + 1,
                            last_failure_at=now)
                    .execution_options(synchronize_session=False))
    session.refresh(throttle)
    delay = delay_after(throttle.failures)
    if delay:
        throttle.blocked_until = now + delay
        if throttle.notified_at is None or now - throttle.notified_at > NOTICE_INTERVAL:
            # Queued for every address alike; the task mails only a real account.
            throttle.notified_at = now
            enqueue_on_commit(session, TaskName.SEND_LOGIN_NOTICE, throttle.id)
    session.commit()


def send_login_notice(session: DbSession, settings: Settings, sender: Sender,
                      throttle_id: int) -> Outcome | None:
    """Tell the account that its logins are being refused (None: no such account)."""
    throttle = session.get(LoginThrottle, throttle_id)
    if throttle is None:
        return None
    editor = next((e for e in session.scalars(select(Editor).where(Editor.active.is_(True)))
                   if address_key(e.email) == throttle.key_hash), None)
    if editor is None:
        return None
    values = {"name": "", "email": editor.email, "confirm_url": f"{settings.base_url}/console/login",
              "unsubscribe_url": "", "preferences_url": "", "greeting": "Hello,",
              "failures": str(throttle.failures)}
    data = build_message(settings, "", editor.email, "login-notice", values)
    return sender.send(settings.mail_from_address, editor.email, data)


# Sessions ------------------------------------------------------------------

def _session_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_session(session: DbSession, editor_id: int) -> str:
    """A new server-side session; the returned id goes into the (signed) cookie. Commits."""
    session_id = secrets.token_urlsafe(32)
    session.add(EditorSession(id_hash=_session_hash(session_id), editor_id=editor_id))
    session.commit()
    return session_id


def session_alive(session: DbSession, session_id: object, editor_id: int,
                  now: datetime | None = None) -> bool:
    if not isinstance(session_id, str) or not 20 <= len(session_id) <= 100:
        return False
    now = now or utcnow()
    row = session.get(EditorSession, _session_hash(session_id))
    if row is None or row.editor_id != editor_id:
        return False
    if now - row.last_seen_at > SESSION_IDLE:
        session.delete(row)
        session.commit()
        return False
    if now - row.last_seen_at > timedelta(minutes=5):  # not a write per request
        row.last_seen_at = now
        session.commit()
    return True


def close_session(session: DbSession, session_id: object) -> None:
    """Logout: the session ends here, whatever copies of the cookie exist. Commits."""
    if isinstance(session_id, str):
        session.execute(delete(EditorSession).where(
            EditorSession.id_hash == _session_hash(session_id)))
    session.commit()
