"""The public archive: sent editions as web pages, and an Atom feed of them.

It is a growth page: each edition page carries its own title, description and
Open Graph tags (so a shared link shows a proper card) and a subscribe box. The
edition itself (the compiled email) is framed from `/archive/<id>/email`, which
keeps the strict archive CSP (no scripts, nothing of ours in it).
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from flask import Blueprint, Response, abort, render_template, request
from sqlalchemy import select

from mailer.editions import web_variant
from mailer.extensions import db
from mailer.mail import FillTemplate
from mailer.models import Article, Edition, EditionStatus, Topic, utcnow
from mailer.runtime import runtime

archive = Blueprint("archive", __name__)

PUBLIC_STATES = (EditionStatus.DONE, EditionStatus.SENDING)
PAGE_SIZE = 50
ATOM = "http://www.w3.org/2005/Atom"


def _public_editions(limit: int, offset: int = 0) -> list[Edition]:
    return list(db.session.scalars(
        select(Edition)
        .where(Edition.status.in_(PUBLIC_STATES), Edition.test_only.is_(False), Edition.planned > 0)
        .order_by(Edition.created_at.desc(), Edition.id.desc())
        .limit(limit).offset(offset)
    ))


# Our own page (stylesheet, the copy script) frames the edition from the same origin.
PAGE_CSP = ("default-src 'self'; img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'")


def _topics() -> list[Topic]:
    return list(db.session.scalars(select(Topic).order_by(Topic.name)))


def _page(html: str) -> Response:
    return Response(html, mimetype="text/html",
                    headers={"Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"})


@archive.get("/archive")
def index() -> Response:
    page = request.args.get("page", "1")
    number = int(page) if page.isdigit() and 0 < int(page) < 10_000 else 1
    editions = _public_editions(PAGE_SIZE + 1, (number - 1) * PAGE_SIZE)
    return _page(render_template("archive.html", editions=editions[:PAGE_SIZE], page=number,
                                 more=len(editions) > PAGE_SIZE, topics=_topics(),
                                 base_url=runtime().settings.base_url))


def _public_edition(edition_id: int) -> Edition:
    row = db.session.get(Edition, edition_id)
    if row is None or row.test_only or row.status not in PUBLIC_STATES:
        abort(404)
    return row


@archive.get("/archive/<int:edition_id>")
def edition(edition_id: int) -> Response:
    """The edition's own page: meta tags for sharing, the edition, a subscribe box."""
    row = _public_edition(edition_id)
    ids = list(row.article_ids or [])
    stories = {a.id: a for a in db.session.scalars(select(Article).where(Article.id.in_(ids)))} \
        if ids else {}
    ordered = [stories[i] for i in ids if i in stories]
    title = row.subject or row.digest.name
    description = "; ".join(a.title for a in ordered)[:300] or f"An edition of {row.digest.name}."
    image = next((a.image_url for a in ordered if a.image_url), "")
    base = runtime().settings.base_url
    return _page(render_template(
        "archive_edition.html", edition=row, title=title, description=description, image=image,
        url=f"{base}/archive/{row.id}", stories=ordered, topics=_topics(),
        when=(row.started_at or row.created_at)))


@archive.get("/archive/<int:edition_id>/email")
def edition_email(edition_id: int) -> Response:
    row = _public_edition(edition_id)
    variant = web_variant(db.session, row)
    if variant is None:
        abort(404)
    base = runtime().settings.base_url
    # The web copy belongs to no reader: no greeting, no "you subscribed as".
    html = FillTemplate(variant.html).fill({
        "name": "", "email": "", "greeting": "", "subscribed_note": "",
        "unsubscribe_url": f"{base}/subscribe", "preferences_url": f"{base}/subscribe",
    })
    # Links inside the framed email open in the whole window, not in the frame.
    html = html.replace("<head>", '<head><base target="_top">', 1)
    return Response(html, mimetype="text/html", headers={
        "X-Frame-Options": "SAMEORIGIN",
        "Content-Security-Policy": "default-src 'none'; img-src https: http: data:; "
                                   "style-src 'unsafe-inline'; frame-ancestors 'self'"})


def _stamp(edition: Edition) -> str:
    when = edition.started_at or edition.created_at
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@archive.get("/archive.atom")
def atom() -> Response:
    base = runtime().settings.base_url
    editions = _public_editions(PAGE_SIZE)
    feed = ET.Element("feed", xmlns=ATOM)
    ET.SubElement(feed, "id").text = f"{base}/archive"
    ET.SubElement(feed, "title").text = "Past editions"
    ET.SubElement(feed, "updated").text = (
        _stamp(editions[0]) if editions else utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
    ET.SubElement(feed, "link", rel="self", href=f"{base}/archive.atom")
    ET.SubElement(feed, "link", rel="alternate", type="text/html", href=f"{base}/archive")
    ids = {a for e in editions for a in (e.article_ids or [])}
    titles = dict(db.session.execute(select(Article.id, Article.title).where(Article.id.in_(ids))).all()) \
        if ids else {}
    for row in editions:
        entry = ET.SubElement(feed, "entry")
        url = f"{base}/archive/{row.id}"
        ET.SubElement(entry, "id").text = url
        ET.SubElement(entry, "title").text = row.subject or row.digest.name
        ET.SubElement(entry, "updated").text = _stamp(row)
        ET.SubElement(entry, "link", rel="alternate", type="text/html", href=url)
        ET.SubElement(ET.SubElement(entry, "author"), "name").text = row.digest.name
        listed = [titles[a] for a in (row.article_ids or []) if a in titles]
        ET.SubElement(entry, "summary").text = "; ".join(listed) or row.digest.name
    body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8")
    return Response(body, mimetype="application/atom+xml")
