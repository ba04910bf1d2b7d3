"""Security of the console and the tracking endpoints, route by route.

Routes are enumerated from app.url_map, so a new console route is covered the
moment it exists."""

from __future__ import annotations

import random
import string
from urllib.parse import quote

import pytest
from sqlalchemy import select, text
from werkzeug.routing import Rule

from mailer.common import tokens
from mailer.models import Base, EditionLink, Role, Topic
from tests.console.world import build_world

# Pages a viewer may not open (they only serve changes); the login page sends
# a logged-in editor on.
VIEWER_GET = {"console.login": 302, "console.login_code": 302, "console.digest_new": 403, "console.audit_log": 403,
              "console.audit_export": 403, "console.automation_new": 403, "console.segment_new": 403,
              "console.editors": 403}
# Sent with every POST: enough for any form to change something if it were let through
# (an account's role, state and password included).
FORM = {"name": "x", "title": "changed", "addresses": "a@example.org", "role": "admin",
        "password": "taken over at last", "email": "intruder@example.org"}


def console_rules(app) -> list[Rule]:  # type: ignore[no-untyped-def]
    return [r for r in app.url_map.iter_rules() if r.rule.startswith("/console")]


def url_for_rule(rule: Rule, params: dict[str, object]) -> str:
    path = rule.rule
    for arg in rule.arguments:
        path = path.replace(f"<int:{arg}>", str(params[arg])).replace(f"<{arg}>", str(params[arg]))
    return path


def state_changing(rule: Rule) -> bool:
    return bool(rule.methods and rule.methods - {"GET", "HEAD", "OPTIONS"})


def snapshot(session, outbox) -> dict:  # type: ignore[no-untyped-def]
    """Every row of every table (the data set is small) and the outbox files."""
    session.expire_all()
    state = {}
    for table in Base.metadata.sorted_tables:
        if table.name == "edition_figures":  # a cache of counts that reading may fill
            continue
        columns = [c for c in table.c if c.name != "last_login_at"]  # set by each login
        rows = session.execute(select(*columns)).all()
        state[table.name] = sorted(repr(tuple(r)) for r in rows)
    state["outbox"] = sorted(p.name for p in outbox.iterdir())
    return state


@pytest.fixture
def world(session, rt, sender, editors):  # type: ignore[no-untyped-def]
    world = build_world(session, rt)
    world.editor_id = editors["editor"].id
    return world


def test_every_console_route_is_covered(app):
    rules = console_rules(app)
    assert len(rules) >= 30
    assert sum(state_changing(r) for r in rules) >= 14


def test_anonymous_users_are_sent_to_login_on_every_route(app, anonymous, world):
    token = anonymous.csrf()  # from the login page: a valid token, no login
    for rule in console_rules(app):
        if rule.endpoint == "console.login":
            continue
        url = url_for_rule(rule, world.params())
        if "GET" in rule.methods:
            r = anonymous.get(url)
        else:
            r = anonymous.client.post(url, data={"csrf_token": token})
        assert r.status_code == 302, (rule.rule, r.status_code)
        assert r.headers["Location"].startswith("/console/login"), rule.rule


def test_viewer_reads_every_page_and_gets_403_on_every_state_change(app, viewer, world, session, rt):
    before = snapshot(session, rt.settings.outbox_path)
    checked = 0
    for rule in console_rules(app):
        url = url_for_rule(rule, world.params())
        if "GET" in rule.methods:
            r = viewer.get(url)
            expected = VIEWER_GET.get(rule.endpoint, 200)
            assert r.status_code == expected, (rule.rule, r.status_code)
        elif rule.endpoint == "console.account_password":
            # Self-service, open to viewers, but only with the current password.
            r = viewer.post(url, FORM)
            assert r.status_code == 400, (rule.rule, r.status_code)
        elif rule.endpoint in ("console.two_factor_confirm", "console.two_factor_disable"):
            # Self-service too, but only with a right code (nothing set up here).
            r = viewer.post(url, FORM)
            assert r.status_code == 400, (rule.rule, r.status_code)
        elif rule.endpoint not in ("console.login", "console.logout", "console.login_code",
                                   "console.two_factor_start"):
            r = viewer.post(url, FORM)
            assert r.status_code == 403, (rule.rule, r.status_code)
            checked += 1
    assert checked >= 14
    assert snapshot(session, rt.settings.outbox_path) == before


def test_editor_gets_403_on_every_admin_route(app, editor, world, session, rt):
    before = snapshot(session, rt.settings.outbox_path)
    admin_only = [r for r in console_rules(app)
                  if getattr(app.view_functions[r.endpoint], "required_roles", None) == (Role.ADMIN,)]
    assert {r.endpoint for r in admin_only} >= {
        "console.editors", "console.editor_create", "console.editor_role",
        "console.editor_deactivate", "console.editor_reactivate", "console.editor_password"}
    for rule in admin_only:
        url = url_for_rule(rule, world.params())
        r = editor.get(url) if "GET" in rule.methods else editor.post(url, FORM)
        assert r.status_code == 403, (rule.rule, r.status_code)
    assert snapshot(session, rt.settings.outbox_path) == before


def test_every_state_changing_route_refuses_a_request_without_csrf(app, admin, world, session, rt):
    before = snapshot(session, rt.settings.outbox_path)
    for rule in console_rules(app):
        if not state_changing(rule):
            continue
        url = url_for_rule(rule, world.params())
        r = admin.post(url, FORM, csrf=False)
        assert r.status_code == 400, (rule.rule, r.status_code)
        r = admin.client.post(url, data={**FORM, "csrf_token": "forged-token"})
        assert r.status_code == 400, (rule.rule, r.status_code)
    assert snapshot(session, rt.settings.outbox_path) == before


def _arbitrary_targets(world, secret: str, other_link: int) -> list[str]:  # type: ignore[no-untyped-def]
    rnd = random.Random(6)
    e, reader = world.edition_id, world.reader_id
    good = tokens.track_value(secret, e, reader, world.reader_nonce)
    hostile = ["https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)",
               "http:evil.example", "%2F%2Fevil.example", "https:%2F%2Fevil.example", "..%2F..%2Fevil",
               "\x00", "évil", " ", "."]
    targets: list[str] = []
    for n in range(1000):
        kind = n % 10
        if kind == 0:
            targets.append(quote(rnd.choice(hostile), safe=""))
        elif kind == 1:  # right shape, random ids and macs
            targets.append(f"{rnd.randint(0, 10**6)}.{rnd.randint(0, 10**6)}.{rnd.randint(0, 10**6)}."
                           + "".join(rnd.choices("0123456789abcdef", k=16)))
        elif kind == 2:  # a real reader token on a link of another edition
            targets.append(f"{e}.{other_link}.{good}")
        elif kind == 3:  # this edition with a random link id
            targets.append(f"{e}.{rnd.randint(0, 10**9)}.{good}")
        elif kind == 4:  # an own link with a URL tacked on
            link = rnd.choice(world.link_ids)
            targets.append(f"{e}.{link}.{good}?url=https://evil.example&next=//evil.example")
        elif kind == 5:  # an own link with a forged mac
            link = rnd.choice(world.link_ids)
            targets.append(f"{e}.{link}.{reader}." + "".join(rnd.choices("0123456789abcdef", k=16)))
        elif kind == 6:  # an own link, valid
            targets.append(f"{e}.{rnd.choice(world.link_ids)}.{good}")
        elif kind == 7:
            targets.append(quote("https://evil.example/" + "".join(rnd.choices(string.printable, k=20)),
                                 safe=""))
        elif kind == 8:
            targets.append("".join(rnd.choices(string.ascii_letters + string.digits + ".-_~", k=rnd.randint(1, 90))))
        else:  # the other edition's link claimed for ours and vice versa
            targets.append(f"{other_link}.{e}.{good}")
    return targets


def test_click_endpoint_never_redirects_outside_the_editions_links(app, client, world, session, rt):
    # A second edition with its own links, which must not be reachable through ours.
    other = EditionLink(edition_id=world.edition_id, url="https://news.example.org/placeholder")
    session.add(other)
    session.commit()
    session.execute(text("DELETE FROM edition_links WHERE id = :i"), {"i": other.id})
    from tests.console.world import send_edition
    from tests.support import factories

    # a story the world's readers are owed (an edition that reaches nobody is not created)
    local = session.scalar(select(Topic).where(Topic.slug == world.topic_slug))
    factories.article(session, topics=[local], title="Elsewhere")
    second = factories.digest(session, "Evening")
    second_edition = send_edition(session, rt, second.id, tracking=True)
    other_links = list(session.scalars(select(EditionLink).where(EditionLink.edition_id == second_edition)))
    assert other_links and world.link_ids
    own = {link.url for link in session.scalars(select(EditionLink).where(EditionLink.edition_id == world.edition_id))}
    targets = _arbitrary_targets(world, rt.settings.secret_key, other_links[0].id)
    assert len(targets) == 1000
    redirects = outside = 0
    for target in targets:
        r = client.get(f"/t/c/{target}", headers={"User-Agent": "Mozilla/5.0"})
        assert r.status_code in (302, 404), (target, r.status_code)
        if 300 <= r.status_code < 400:
            redirects += 1
            if r.headers["Location"] not in own:
                outside += 1
    assert outside == 0
    assert redirects >= 200  # the valid and mangled-but-own links still work
