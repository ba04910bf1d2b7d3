"""Publication settings through the API, the console and what readers see:
pages, the archive and every email (masthead, footer with the postal address, lang)."""

from __future__ import annotations

import email
import re
from email import policy

from sqlalchemy import update

from mailer import delivery, editions
from mailer.console import create_editor, create_token, update_publication
from mailer.models import Edition, Role
from tests.console.conftest import csrf_from, login, new_client
from tests.support import factories

BRAND = {"name": "Harbour Herald", "postal_address": "1 Quay Street\nPortsmouth PO1 2AB",
         "website_url": "https://herald.example.org", "logo_url": "",
         "accent_color": "#0b3d91", "language": "de", "from_name": "The Herald",
         "footer_text": "Independent local news since 1872."}


def test_api_get_and_put(api, client, session):
    r = api.get("/api/v1/publication")
    assert r.status_code == 200 and r.get_json()["name"] == "Test News"
    r = client.put("/api/v1/publication", json=BRAND, headers=api.headers)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["language"] == "de" and r.get_json()["accent_color"] == "#0b3d91"
    assert api.get("/api/v1/publication").get_json()["name"] == "Harbour Herald"


def test_api_errors_name_the_field_and_need_an_admin(api, client, session):
    r = client.put("/api/v1/publication", json={"accent_color": "blue", "website_url": "ftp://x"},
                   headers=api.headers)
    assert r.status_code == 422
    assert set(r.get_json()["fields"]) == {"accent_color", "website_url"}
    r = client.put("/api/v1/publication", data="[1]", content_type="application/json",
                   headers=api.headers)
    assert r.status_code == 400 and "body" in r.get_json()["fields"]
    assert client.get("/api/v1/publication").status_code == 401
    editor = create_editor(session, "ed@news.example.org", "correct horse battery", Role.EDITOR)
    token = create_token(session, "ed", editor.id)
    r = client.put("/api/v1/publication", json={"name": "X"},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and "Authorization" in r.get_json()["fields"]
    assert client.get("/api/v1/publication",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_reader_pages_show_the_publication(client, session, rt):
    update_publication(session, rt.settings, BRAND)
    html = client.get("/subscribe").get_data(as_text=True)
    assert '<html lang="de">' in html
    assert "Harbour Herald" in html and "The Newsletter" not in html
    assert 'href="https://herald.example.org"' in html
    assert "1 Quay Street, Portsmouth PO1 2AB" in html
    assert "--brand: #0b3d91" in html
    assert "Harbour Herald" in client.get("/archive").get_data(as_text=True)


def test_console_admin_edits_with_csrf_and_sees_errors_beside_fields(app, session, dispatch):
    for role in (Role.ADMIN, Role.EDITOR):
        create_editor(session, f"{role}@news.example.org", "correct horse battery", role)
    admin = new_client(app)
    login(admin, "admin@news.example.org", "correct horse battery")
    page = admin.get("/console/settings").get_data(as_text=True)
    assert 'id="publication"' in page and 'value="Test News"' in page
    token = csrf_from(page)
    form = {**BRAND, "accent_color": "navy", "csrf_token": token}
    r = admin.post("/console/settings/publication", data=form)
    assert r.status_code == 422
    body = r.get_data(as_text=True)
    assert 'id="pub-accent_color-error"' in body and 'value="navy"' in body
    assert 'value="Harbour Herald"' in body  # what was typed stays
    r = admin.post("/console/settings/publication", data={**BRAND, "csrf_token": token})
    assert r.status_code == 302
    assert 'value="Harbour Herald"' in admin.get("/console/settings").get_data(as_text=True)
    assert admin.post("/console/settings/publication", data=BRAND).status_code == 400  # no CSRF
    editor = new_client(app)
    login(editor, "editor@news.example.org", "correct horse battery")
    r = editor.post("/console/settings/publication",
                    data={**BRAND, "name": "Hijack", "csrf_token": csrf_from(
                        editor.get("/console/settings").get_data(as_text=True))})
    assert r.status_code == 403


def _send_one(session, rt, sender):
    t = factories.topic(session)
    factories.reader(session, "alex@example.org", topics=[t], name="Alex")
    a = factories.article(session, topics=[t], title="Ferry timetable changes")
    a.author = "Jane Reporter"
    session.commit()
    d = factories.digest(session, "Morning", topics=[t], intro="Good morning from the harbour.")
    edition = editions.start_edition(session, d.name)
    editions.prepare_edition(session, rt.settings, edition.id)
    delivery.run_lane(session, edition.id, settings=rt.settings, sender=sender, tokens=rt.tokens,
                      skeletons=delivery.SkeletonCache(rt.settings, None))
    return edition, email.message_from_bytes(sender.messages[-1][2], policy=policy.default)


def test_digest_email_carries_the_brand_and_the_web_copy_is_not_personal(
        session, rt, sender, client, dispatch):
    update_publication(session, rt.settings, BRAND)
    edition, msg = _send_one(session, rt, sender)
    assert msg["From"] == "The Herald <news@mailer.test>"
    assert len(msg["Subject"]) <= 60 and "Ferry timetable changes" in msg["Subject"]
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert '<html lang="de"' in html and 'lang="und"' not in html
    assert "Harbour Herald" in html and "1 Quay Street, Portsmouth PO1 2AB" in html
    assert "Independent local news since 1872." in html
    assert 'name="color-scheme"' in html and "prefers-color-scheme: dark" in html
    assert "Good morning from the harbour." in html and "Hello Alex," in html
    assert "subscribed as alex@example.org" in html and "1 Quay Street" in text
    # bylines stand apart from the link: "Read" alone, never "Read the article by ..."
    assert "Jane Reporter" in html and "Read the article by" not in html
    # every link carries its colour inline (clients that drop <head> CSS keep it)
    body = html[html.index("<body"):]
    assert all("color:" in tag for tag in re.findall(r"<a [^>]*>", body))
    assert "min-height:44px" in body

    session.execute(update(Edition).where(Edition.id == edition.id).values(status="done"))
    session.commit()
    web = client.get(f"/archive/{edition.id}").get_data(as_text=True)
    assert "Harbour Herald" in web and "Ferry timetable changes" in web
    assert "Hello" not in web and "subscribed as" not in web and "%%" not in web


def test_confirmation_email_is_branded(session, rt, sender, client, dispatch):
    from mailer.readers import load_publication
    from mailer.readers.confirmations import build_message

    update_publication(session, rt.settings, BRAND)
    raw = build_message(rt.settings, "Ann", "ann@example.org", "confirm",
                        {"name": "Ann", "email": "ann@example.org", "confirm_url": "https://x/c",
                         "greeting": "Hello Ann,", "unsubscribe_url": "", "preferences_url": ""},
                        load_publication(session, rt.settings))
    msg = email.message_from_bytes(raw, policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    assert msg["From"] == "The Herald <news@mailer.test>"
    assert '<html lang="de"' in html and "Harbour Herald" in html and "Portsmouth PO1 2AB" in html
    assert "receive Harbour Herald at ann@example.org" in html
