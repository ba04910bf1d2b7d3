"""The preference centre's change of address says nothing about other people's
addresses (issue 15): the answer and the page after it are the same whether the
new address is free, already a reader, or suppressed."""

from __future__ import annotations

import re

from mailer.common.tokens import Purpose
from mailer.readers import reader_link_token
from mailer.readers.subscriptions import suppress
from tests.support import factories
from tests.web.conftest import csrf_from


def _change(client, rt, reader, new: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    url = f"/preferences/{reader_link_token(rt.tokens, Purpose.PREFERENCES, reader)}"
    page = client.get(url).get_data(as_text=True)
    answer = client.post(url, data={"csrf_token": csrf_from(page), "action": "change-email",
                                    "new_email": new})
    after = client.get(url)
    text = answer.get_data(as_text=True) + after.get_data(as_text=True)
    text = re.sub(re.escape(new), "NEW", text, flags=re.IGNORECASE).replace(reader.email, "OLD")
    text = re.sub(r'name="csrf_token" value="[^"]+"', "", text)
    text = re.sub(r"/(preferences|unsubscribe)/[A-Za-z0-9_.\-]+", "/LINK", text)
    return answer.status_code, text


def test_change_of_address_answers_the_same_for_every_address(client, session, rt, dispatch):
    factories.reader(session, "taken@example.org")
    suppress(session, "gone@example.org", "erased")
    session.commit()
    answers = {}
    for n, new in enumerate(("free@example.org", "taken@example.org", "Taken@Example.org",
                             "gone@example.org")):
        reader = factories.reader(session, f"asker{n}@example.org")
        answers[new] = _change(client, rt, reader, new)
    first = answers["free@example.org"]
    assert first[0] == 200
    for new, answer in answers.items():
        assert answer == first, new


def test_erasing_a_reader_does_not_suppress_the_address_they_typed(session):
    from mailer.readers import erase_reader, request_change
    from mailer.readers.subscriptions import is_suppressed

    victim = factories.reader(session, "victim@example.org")
    asker = factories.reader(session, "asker@example.org")
    request_change(session, asker.id, "victim@example.org")
    erase_reader(session, asker.id)
    assert not is_suppressed(session, victim.email)
    assert is_suppressed(session, "asker@example.org")
