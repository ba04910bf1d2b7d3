"""Readers: double opt-in signup, confirmations, preferences, address change,
unsubscribe, data export and erasure, CSV import and export.
"""

from mailer.readers.address_change import confirm_change, request_change
from mailer.readers.confirmations import (
    build_message,
    confirmations_due,
    send_due_confirmations,
    send_email_change,
)
from mailer.readers.import_export import export_readers, import_readers
from mailer.readers.links import nonce_lookup, reader_for_token, reader_link_token
from mailer.readers.privacy import erase_reader, export_reader
from mailer.readers.subscriptions import confirm, subscribe, unsubscribe_by_link, update_preferences

__all__ = [
    "build_message",
    "confirm",
    "confirm_change",
    "confirmations_due",
    "erase_reader",
    "export_reader",
    "export_readers",
    "import_readers",
    "nonce_lookup",
    "reader_for_token",
    "reader_link_token",
    "request_change",
    "send_due_confirmations",
    "send_email_change",
    "subscribe",
    "unsubscribe_by_link",
    "update_preferences",
]
