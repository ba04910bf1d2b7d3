"""Readers: double opt-in signup, confirmations, preferences, address change,
unsubscribe, data export and erasure, CSV import and export.
"""

from mailer.readers.address_change import (
    confirm_change,
    request_change,
)
from mailer.readers.confirmations import (
    build_message,
    confirmations_due,
    reader_links_due,
    send_due_confirmations,
    send_email_change,
    send_reader_link,
)
from mailer.readers.import_export import (
    export_readers,
    import_readers,
)
from mailer.readers.links import (
    nonce_lookup,
    reader_for_token,
    reader_link_token,
)
from mailer.readers.privacy import (
    erase_reader,
    export_reader,
)
from mailer.readers.publication import (
    Publication,
    load_publication,
    publication_defaults,
)
from mailer.readers.retention import (
    KEEP_CHOICES,
    PAUSE_DAYS,
    keep_reader,
    resume_due_readers,
)
from mailer.readers.subscriptions import (
    MAX_REASON_TEXT,
    UNSUBSCRIBE_REASONS,
    browser_timezone,
    confirm,
    request_link,
    subscribe,
    timezone_choices,
    unsubscribe_by_link,
    update_preferences,
)

__all__ = [
    "KEEP_CHOICES",
    "MAX_REASON_TEXT",
    "PAUSE_DAYS",
    "UNSUBSCRIBE_REASONS",
    "Publication",
    "browser_timezone",
    "build_message",
    "confirm",
    "confirm_change",
    "confirmations_due",
    "erase_reader",
    "export_reader",
    "export_readers",
    "import_readers",
    "keep_reader",
    "load_publication",
    "nonce_lookup",
    "publication_defaults",
    "reader_for_token",
    "reader_link_token",
    "reader_links_due",
    "request_change",
    "request_link",
    "resume_due_readers",
    "send_due_confirmations",
    "send_email_change",
    "send_reader_link",
    "subscribe",
    "timezone_choices",
    "unsubscribe_by_link",
    "update_preferences",
]
