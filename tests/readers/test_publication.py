"""Publication settings: environment defaults, validation per field, one row."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer.common import ValidationError
from mailer.console import update_publication
from mailer.models import PublicationSettings
from mailer.readers import load_publication, publication_defaults


def test_defaults_come_from_the_environment(session, rt, settings_override):
    pub = load_publication(session, rt.settings)
    assert pub.name == "Test News"  # the display name of MAILER_FROM
    assert pub.from_name == "Test News" and pub.language == "en"
    settings_override(mail_from="news@mailer.test", publication_name="")
    assert publication_defaults(rt.settings).name == "mailer.test"  # host of the base URL
    settings_override(publication_name="Harbour Herald", postal_address="1 Quay St\nPortsmouth",
                      accent_color="#123456", website_url="https://herald.example.org")
    pub = load_publication(session, rt.settings)
    assert (pub.name, pub.address_lines, pub.accent) == (
        "Harbour Herald", ["1 Quay St", "Portsmouth"], "#123456")


def test_saved_values_win_and_null_goes_back_to_the_default(session, rt, settings_override):
    settings_override(publication_name="From Env")
    pub = update_publication(session, rt.settings, {"name": "Harbour Herald", "language": "de-CH",
                                                    "accent_color": "#AABBCC"})
    assert (pub.name, pub.language, pub.accent_color) == ("Harbour Herald", "de-CH", "#aabbcc")
    pub = update_publication(session, rt.settings, {"name": None})
    assert pub.name == "From Env" and pub.language == "de-CH"
    assert session.scalar(select(func.count()).select_from(PublicationSettings)) == 1


@pytest.mark.parametrize(("field", "value"), [
    ("accent_color", "red"), ("accent_color", "#12345"), ("accent_color", 7),
    ("website_url", "javascript:alert(1)"), ("logo_url", "ftp://x.org/logo.png"),
    ("language", "english please"), ("language", ""), ("name", ""), ("name", "x" * 201),
    ("from_name", "Evil <evil@x.org>"), ("postal_address", "x" * 501), ("colour", "#000000"),
])
def test_bad_values_are_refused_by_field_and_nothing_is_saved(session, rt, field, value):
    with pytest.raises(ValidationError) as caught:
        update_publication(session, rt.settings, {"footer_text": "kept?", field: value})
    assert field in caught.value.fields
    assert session.scalar(select(func.count()).select_from(PublicationSettings)) == 0


def test_from_header_keeps_the_address(session, rt):
    pub = update_publication(session, rt.settings, {"from_name": "Harbour Herald, Morning"})
    assert pub.from_header("Old <news@mailer.test>") == '"Harbour Herald, Morning" <news@mailer.test>'


def test_pale_accent_is_not_used_for_text(session, rt):
    pub = update_publication(session, rt.settings, {"accent_color": "#ffee00"})
    assert pub.accent == "#ffee00" and pub.ink_accent == "#9b1c1c"
    pub = update_publication(session, rt.settings, {"accent_color": "#0b3d91"})
    assert pub.ink_accent == "#0b3d91"


def test_a_command_outside_the_project_names_the_missing_instance(tmp_path, monkeypatch):
    from mailer.config import PROJECT_ROOT, missing_instance

    for name in ("MAILER_INSTANCE_PATH", "MAILER_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    message = missing_instance(tmp_path)
    assert message and str(tmp_path / "instance") in message and str(PROJECT_ROOT) in message
    assert not (tmp_path / "instance").exists()
    assert missing_instance(PROJECT_ROOT) is None
    (tmp_path / "instance").mkdir()
    assert missing_instance(tmp_path) is None
    monkeypatch.setenv("MAILER_DATABASE_URL", "sqlite:///x.db")
    assert missing_instance(tmp_path / "instance") is None
