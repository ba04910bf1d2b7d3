"""Editor accounts."""

from __future__ import annotations

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from mailer.models import Editor, Role
from mailer.models.base import DbSession
from mailer.services.errors import Conflict, ValidationError
from mailer.services.validation import clean_email


def create_editor(session: DbSession, email: str, password: str, role: str = Role.EDITOR) -> Editor:
    address = clean_email(email).lower()
    if role not in Role.ALL:
        raise ValidationError(f"role must be one of {', '.join(Role.ALL)}.", {"role": "invalid"})
    if len(password) < 10:
        raise ValidationError("The password needs at least 10 characters.",
                              {"password": "too short"})
    if session.scalar(select(Editor).where(Editor.email == address)) is not None:
        raise Conflict(f"An editor {address} exists already.", {"email": "exists"})
    editor = Editor(email=address, role=role,
                    password_hash=generate_password_hash(password, method="scrypt"))
    session.add(editor)
    session.commit()
    return editor


def authenticate(session: DbSession, email: str, password: str) -> Editor | None:
    editor = session.scalar(select(Editor).where(Editor.email == email.strip().lower()))
    if editor is None or not editor.active:
        check_password_hash(generate_password_hash("x", method="scrypt"), password)  # even time
        return None
    return editor if check_password_hash(editor.password_hash, password) else None
