"""Editor accounts: the rules that keep at least one admin able to manage the console."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailer.common.errors import ValidationError
from mailer.console import editors
from mailer.console.api_tokens import check_token, create_token
from mailer.models import ApiToken, Editor, Role

PASSWORD = "correct horse battery"


@pytest.fixture
def team(session) -> dict[str, Editor]:  # type: ignore[no-untyped-def]
    return {name: editors.create_editor(session, f"{name}@news.example.org", PASSWORD, role)
            for name, role in [("ada", Role.ADMIN), ("bob", Role.ADMIN), ("eve", Role.EDITOR),
                               ("vic", Role.VIEWER)]}


def state(session) -> list[tuple[str, str, bool, str]]:  # type: ignore[no-untyped-def]
    session.expire_all()
    return [(e.email, e.role, e.active, e.password_hash)
            for e in session.scalars(select(Editor).order_by(Editor.id))]


def active_admins(session) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(Editor)
                          .where(Editor.role == Role.ADMIN, Editor.active.is_(True)))


def test_create_editor_checks_its_input(session):
    editor = editors.create_editor(session, "  Ada@News.Example.ORG ", PASSWORD, Role.VIEWER)
    assert (editor.email, editor.role, editor.active) == ("ada@news.example.org", "viewer", True)
    for email, password, role, status in [
        ("ADA@news.example.org", PASSWORD, Role.EDITOR, 409),
        ("not an address", PASSWORD, Role.EDITOR, 400),
        ("bob@news.example.org", "short", Role.EDITOR, 400),
        ("bob@news.example.org", "x" * 1001, Role.EDITOR, 400),
        ("bob@news.example.org", PASSWORD, "owner", 400),
    ]:
        with pytest.raises(ValidationError) as err:
            editors.create_editor(session, email, password, role)
        assert err.value.status == status, (email, role)
    assert [e.email for e in editors.list_editors(session)] == ["ada@news.example.org"]


def test_admin_changes_roles_of_others(session, team):
    ada, bob, eve = team["ada"].id, team["bob"].id, team["eve"].id
    assert editors.set_role(session, ada, eve, Role.ADMIN).role == Role.ADMIN
    assert editors.set_role(session, ada, bob, Role.VIEWER).role == Role.VIEWER
    with pytest.raises(ValidationError) as err:
        editors.set_role(session, ada, eve, "superuser")
    assert err.value.status == 400
    with pytest.raises(ValidationError) as err:
        editors.set_role(session, ada, 999_999, Role.EDITOR)
    assert err.value.status == 404


def test_admin_can_neither_demote_nor_deactivate_themself(session, team):
    ada = team["ada"].id
    before = state(session)
    for change in (lambda: editors.set_role(session, ada, ada, Role.EDITOR),
                   lambda: editors.set_role(session, ada, ada, Role.VIEWER),
                   lambda: editors.set_active(session, ada, ada, False)):
        with pytest.raises(ValidationError) as err:
            change()
        assert err.value.status == 409 and "ask another admin" in err.value.message
    assert state(session) == before
    # Harmless changes to one's own account are fine.
    editors.set_role(session, ada, ada, Role.ADMIN)
    editors.set_password(session, ada, ada, "a brand new password")
    assert editors.authenticate(session, "ada@news.example.org", "a brand new password")


def test_only_an_active_admin_may_manage_accounts(session, team):
    ada, bob, eve, vic = (team[n].id for n in ("ada", "bob", "eve", "vic"))
    before = state(session)
    for actor in (eve, vic, 999_999):
        for change in (lambda: editors.set_role(session, actor, vic, Role.ADMIN),
                       lambda: editors.set_active(session, actor, ada, False),
                       lambda: editors.set_password(session, actor, ada, "taken over by me")):
            with pytest.raises(ValidationError) as err:
                change()
            assert err.value.status == 403
    assert state(session) == before
    editors.set_active(session, ada, bob, False)
    with pytest.raises(ValidationError) as err:  # a deactivated admin has no say either
        editors.set_active(session, bob, ada, False)
    assert err.value.status == 403


def test_the_last_active_admin_stays_admin(session, team):
    ada, bob = team["ada"].id, team["bob"].id
    editors.set_role(session, ada, bob, Role.EDITOR)
    assert active_admins(session) == 1
    # Bob lost the admin role, so he cannot turn on Ada; Ada cannot turn on herself.
    with pytest.raises(ValidationError):
        editors.set_role(session, bob, ada, Role.EDITOR)
    with pytest.raises(ValidationError):
        editors.set_active(session, ada, ada, False)
    assert active_admins(session) == 1


def test_two_admins_demoting_each_other_at_once_leave_one_admin(session, team):
    """Each sees two admins before writing; the locks (PostgreSQL) or the count after
    the write (SQLite) make the second change fail instead of leaving no admin."""
    engine = session.get_bind()
    ada, bob = team["ada"].id, team["bob"].id
    for _ in range(5):
        barrier = threading.Barrier(2)
        outcomes: list[object] = []

        def demote(actor: int, target: int) -> None:
            with Session(engine) as own:
                barrier.wait()
                try:
                    editors.set_role(own, actor, target, Role.EDITOR)
                    outcomes.append("done")
                except ValidationError as exc:
                    outcomes.append(exc.status)

        threads = [threading.Thread(target=demote, args=pair) for pair in ((ada, bob), (bob, ada))]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert sorted(map(str, outcomes)) in (["403", "done"], ["409", "done"]), outcomes
        assert active_admins(session) == 1
        for editor in session.scalars(select(Editor).where(Editor.id.in_((ada, bob)))):
            editor.role = Role.ADMIN
        session.commit()


def test_deactivated_editor_cannot_log_in_and_loses_api_tokens(session, team):
    ada, eve = team["ada"].id, team["eve"].id
    token = create_token(session, "eve's automation", editor_id=eve)
    other = create_token(session, "ada's automation", editor_id=ada)
    editors.set_active(session, ada, eve, False)
    assert editors.authenticate(session, "eve@news.example.org", PASSWORD) is None
    assert not check_token(session, token) and check_token(session, other)
    editors.set_active(session, ada, eve, True)
    assert editors.authenticate(session, "eve@news.example.org", PASSWORD) is not None
    assert not check_token(session, token)  # revoked for good: make a new one
    assert session.scalar(select(func.count()).select_from(ApiToken)
                          .where(ApiToken.revoked_at.is_(None))) == 1


def test_set_password(session, team):
    ada, eve = team["ada"].id, team["eve"].id
    before = state(session)
    with pytest.raises(ValidationError) as err:
        editors.set_password(session, ada, eve, "too short")
    assert err.value.status == 400 and state(session) == before
    editors.set_password(session, ada, eve, "a much longer secret")
    assert editors.authenticate(session, "eve@news.example.org", PASSWORD) is None
    assert editors.authenticate(session, "eve@news.example.org", "a much longer secret") is not None


def test_list_shows_active_accounts_first(session, team):
    editors.set_active(session, team["ada"].id, team["bob"].id, False)
    assert [e.email.split("@")[0] for e in editors.list_editors(session)] == [
        "ada", "eve", "vic", "bob"]
