"""The outbox of the embedded default: messages written as .eml files, shown escaped."""

from __future__ import annotations

import email
import re
from email import policy
from email.message import EmailMessage
from pathlib import Path

from flask import abort, render_template

from mailer.runtime import runtime
from mailer.web.console.auth import viewer_required
from mailer.web.console.blueprint import console

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.eml")
LIST_LIMIT = 200
SHOW_LIMIT = 2_000_000


def _summary(path: Path) -> dict[str, str]:
    with path.open("rb") as handle:
        head = handle.read(16_384)
    head = head.split(b"\r\n\r\n", 1)[0]
    try:
        msg = email.message_from_bytes(head, policy=policy.default)
        return {"name": path.name, "to": str(msg.get("To", "")),
                "subject": str(msg.get("Subject", "")), "date": str(msg.get("Date", ""))}
    except Exception:  # a broken file must not break the list
        return {"name": path.name, "to": "?", "subject": "(unreadable)", "date": ""}


@console.get("/outbox")
@viewer_required
def outbox() -> str:
    folder = runtime().settings.outbox_path
    files = sorted((p for p in folder.glob("*.eml") if p.is_file()),
                   key=lambda p: p.stat().st_mtime, reverse=True) if folder.exists() else []
    return render_template("console/outbox.html", messages=[_summary(p) for p in files[:LIST_LIMIT]],
                           total=len(files), smtp=bool(runtime().settings.smtp_url))


@console.get("/outbox/<name>")
@viewer_required
def outbox_message(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        abort(404, "No such message.")
    folder = runtime().settings.outbox_path.resolve()
    path = (folder / name).resolve()
    if path.parent != folder or not path.is_file():
        abort(404, "No such message.")
    raw = path.read_bytes()[:SHOW_LIMIT]
    headers: list[tuple[str, str]] = []
    text = html = ""
    try:
        msg = email.message_from_bytes(raw, policy=policy.default)
        headers = [(k, str(v)) for k, v in msg.items()]
        if isinstance(msg, EmailMessage):
            part = msg.get_body(("plain",))
            text = part.get_content() if part is not None else ""
            part = msg.get_body(("html",))
            html = part.get_content() if part is not None else ""
    except Exception:  # shown raw below; never a 500 for a broken file
        headers = [("(unreadable)", "the message does not parse; its raw text is below")]
    # Everything is rendered as escaped text: nothing in a message runs here.
    return render_template("console/outbox_message.html", name=name, headers=headers,
                           text=text, html=html, raw=raw.decode("utf-8", errors="replace"))
