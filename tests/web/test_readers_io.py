"""CSV import (all or nothing, dedupe, consent, per-row errors) and export, via
the service, the API and the CLI."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from mailer.models import Reader, ReaderStatus
from mailer.readers import import_export as readers_io
from tests.support import factories

GOOD = (
    "email,name,topics,frequency\n"
    "ann@example.org,Ann,local;sport,daily\n"
    "ANN@example.org,Ann again,,\n"
    "bob@example.org,\"Bob, Jr.\",local,\n"
    "known@example.org,,,\n"
)


def count(session) -> int:
    return session.scalar(select(func.count(Reader.id)))


def test_import_with_consent_dedupes_and_skips_known(session, dispatch):
    factories.topic(session, "local")
    factories.topic(session, "sport")
    factories.reader(session, "Known@example.org")
    report = readers_io.import_readers(session, GOOD.encode(), consent=True)
    assert report.as_dict() == {"rows": 4, "created": 2, "existing": 1, "duplicates": 1,
                                "suppressed": 0, "errors": []}
    ann = session.scalar(select(Reader).where(Reader.email_key == "ann@example.org"))
    assert ann.status == ReaderStatus.CONFIRMED and ann.frequency == "daily"
    assert sorted(t.slug for t in ann.topics) == ["local", "sport"]
    assert ann.consent_source == "import" and ann.consent_at is not None
    assert dispatch.names() == []  # consent on record: no confirmation emails


def test_import_without_consent_asks_each_reader_to_confirm(session, dispatch):
    report = readers_io.import_readers(session, "email\na@example.org\nb@example.org\n", consent=False)
    assert report.created == 2
    assert {r.status for r in session.scalars(select(Reader))} == {ReaderStatus.PENDING}
    assert dispatch.names() == ["mailer.send_confirmations"]


def test_a_broken_row_imports_nothing_and_names_the_line(session, dispatch):
    factories.topic(session, "local")
    data = ("email,name,topics,frequency\n"
            "ok@example.org,,local,\n"
            "not-an-address,,,\n"
            "ok2@example.org,,nope,\n"
            "ok3@example.org,,,hourly\n"
            "ok4@example.org,,,,extra\n")
    report = readers_io.import_readers(session, data, consent=True)
    assert [line for line, _ in report.errors] == [3, 4, 5, 6]
    assert "nope" in report.errors[1][1] and "frequency" in report.errors[2][1]
    assert count(session) == 0


def test_files_that_are_not_csv_are_refused(session, dispatch):
    import pytest

    from mailer.common.errors import ValidationError

    for data in (b"\xff\xfe\x00bad", b"name\nAnn\n", b"email,shoe_size\na@example.org,9\n", b""):
        with pytest.raises(ValidationError):
            readers_io.import_readers(session, data, consent=True)
    assert count(session) == 0


def test_api_import_and_export(api, session, client, dispatch):
    factories.topic(session, "local")
    r = api.post("/api/v1/subscribers/import?consent=true", data="email,name,topics\n"
                 "not an address,x,local\nc@example.org,Cy,\n",
                 content_type="text/csv")
    assert r.status_code == 400 and "line 2" in r.json["fields"]
    assert count(session) == 0
    r = api.post("/api/v1/subscribers/import?consent=true",
                 data="email,name,topics\nd@example.org,=HYPERLINK(\"x\"),local\nc@example.org,Cy,\n",
                 content_type="text/csv")
    assert r.status_code == 200 and r.json["created"] == 2
    assert api.post("/api/v1/subscribers/import", json={"email": "x"}).status_code == 415
    assert api.post("/api/v1/subscribers/import?consent=maybe", data="email\n",
                    content_type="text/csv").status_code == 400
    assert client.get("/api/v1/subscribers/export").status_code == 401

    r = api.get("/api/v1/subscribers/export")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [row["email"] for row in rows] == ["d@example.org", "c@example.org"]
    assert rows[0]["name"].startswith("'=")  # no formula injection into spreadsheets
    assert rows[0]["topics"] == "local" and rows[0]["status"] == "confirmed"


def test_cli_import_and_export(app, session, tmp_path, dispatch):
    runner = app.test_cli_runner()
    good = tmp_path / "readers.csv"
    good.write_text("email,name\nE@example.org,Eve\nf@example.org,\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"email\ng@example.org\n\xff\n")
    result = runner.invoke(args=["import-readers", str(bad), "--consent"])
    assert result.exit_code != 0 and "UTF-8" in result.output
    result = runner.invoke(args=["import-readers", str(good), "--consent"])
    assert result.exit_code == 0, result.output
    assert "created 2" in result.output
    result = runner.invoke(args=["import-readers", str(good), "--consent"])
    assert "already known 2" in result.output
    out = tmp_path / "out.csv"
    result = runner.invoke(args=["export-readers", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[1].startswith("E@example.org,Eve,")
    result = runner.invoke(args=["export-readers"])
    assert "f@example.org" in result.output
