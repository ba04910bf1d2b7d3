"""Erased readers' ids are never handed on, and their links die with them (issue 15)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import select, text

from mailer import create_app
from mailer.common.tokens import Purpose, TokenError, parse_open, track_value
from mailer.extensions import db
from mailer.models import Reader
from mailer.readers import erase_reader, nonce_lookup, reader_for_token, reader_link_token
from tests.support import factories


def _app(tmp_path: Path):
    return create_app(testing=True, ratelimit=False, instance_path=tmp_path / "instance",
                      database_url=f"sqlite:///{tmp_path / 'ids.db'}", broker_url="memory://",
                      smtp_url="", secret_key="test-secret", base_url="http://mailer.test",
                      mail_from="news@mailer.test")


def test_erased_reader_id_is_not_reused_and_old_links_fail(app, session, rt):
    first = factories.reader(session)
    last = factories.reader(session)
    prefs = reader_link_token(rt.tokens, Purpose.PREFERENCES, last)
    unsub = reader_link_token(rt.tokens, Purpose.UNSUBSCRIBE, last)
    erased_id = last.id
    erase_reader(session, erased_id)
    newcomer = factories.reader(session)
    assert newcomer.id > erased_id > first.id
    for purpose, token in ((Purpose.PREFERENCES, prefs), (Purpose.UNSUBSCRIBE, unsub)):
        with pytest.raises(TokenError):
            reader_for_token(session, rt.tokens, purpose, token)


def test_links_of_erased_reader_fail_even_if_the_id_comes_back(app, session, rt, client):
    """Whatever the database does with ids (a restore, a reset sequence), a link
    carries the nonce of the row it was made for."""
    reader = factories.reader(session, name="First Owner")
    prefs = reader_link_token(rt.tokens, Purpose.PREFERENCES, reader)
    unsub = reader_link_token(rt.tokens, Purpose.UNSUBSCRIBE, reader)
    reader_id = reader.id
    erase_reader(session, reader_id)
    session.add(Reader(id=reader_id, email="someone.else@example.org",
                       email_key="someone.else@example.org", status="confirmed"))
    session.commit()
    for url in (f"/preferences/{prefs}", f"/preferences/{prefs}/data.json",
                f"/unsubscribe/{unsub}"):
        answer = client.get(url)
        assert 400 <= answer.status_code < 500, url
        assert "someone.else" not in answer.get_data(as_text=True)
    assert client.post(f"/unsubscribe/{unsub}",
                       data={"List-Unsubscribe": "One-Click"}).status_code >= 400
    assert session.scalar(select(Reader.status).where(Reader.id == reader_id)) == "confirmed"


def test_tracking_links_of_erased_reader_are_not_counted(app, session, rt):
    reader = factories.reader(session)
    secret = rt.settings.secret_key
    token = f"5.{track_value(secret, 5, reader.id, reader.token_nonce)}"
    assert parse_open(secret, token, nonce_lookup(session)).signed
    erase_reader(session, reader.id)
    assert not parse_open(secret, token, nonce_lookup(session)).signed


def test_migration_keeps_children_and_never_reuses_ids(tmp_path):
    app = _app(tmp_path)
    with app.app_context():
        upgrade(revision="0008")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO topics (id, slug, name, created_at) "
                              "VALUES (1, 't', 'T', '2026-01-01')"))
            for n in (1, 2, 3):
                conn.execute(text(
                    "INSERT INTO readers (id, email, email_key, name, status, frequency, "
                    "confirm_nonce, consent_source, consent_ip, created_at) VALUES "
                    f"({n}, 'r{n}@x.org', 'r{n}@x.org', '', 'confirmed', 'immediate', '', '', '',"
                    " '2026-01-01')"))
                conn.execute(text(f"INSERT INTO reader_topics VALUES ({n}, 1)"))
                conn.execute(text("INSERT INTO reader_events (reader_id, kind, detail, note, "
                                  f"created_at) VALUES ({n}, 'subscribed', '{{}}', '', '2026-01-01')"))
            # Reader 3 was erased before the upgrade.
            conn.execute(text("DELETE FROM reader_topics WHERE reader_id = 3"))
            conn.execute(text("UPDATE reader_events SET reader_id = NULL WHERE reader_id = 3"))
            conn.execute(text("DELETE FROM readers WHERE id = 3"))
        upgrade()
        with db.engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM reader_topics")).scalar() == 2
            assert conn.execute(text(
                "SELECT count(*) FROM reader_events WHERE reader_id IS NOT NULL")).scalar() == 2
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("SELECT token_nonce FROM readers WHERE id = 1")).scalar() == ""
        new = Reader(email="n@x.org", email_key="n@x.org", status="confirmed")
        db.session.add(new)
        db.session.commit()
        assert new.id == 3  # nothing outside `readers` remembers id 3 (no ledger row)
        erase_reader(db.session, new.id)
        again = Reader(email="m@x.org", email_key="m@x.org", status="confirmed")
        db.session.add(again)
        db.session.commit()
        assert again.id > new.id
        assert len(again.token_nonce) == 16
        downgrade(revision="0008")
        upgrade()
        db.session.remove()
