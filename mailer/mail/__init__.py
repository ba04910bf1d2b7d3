"""Email bytes: templates compiled with MJML, MIME skeletons filled per reader, DKIM, and the
senders that hand messages to SMTP relays or the outbox folder.

This package knows nothing of the database, Flask or Celery.
"""

from mailer.mail.dkim import DkimKeyError, DkimSigner
from mailer.mail.messages import delivery_of_token, domain_of
from mailer.mail.outgoing import dkim_signer, envelope_sender
from mailer.mail.rendering import (
    CompiledEmail,
    FillTemplate,
    TemplateError,
    digest_layouts,
    template_names,
)
from mailer.mail.senders import RelayLimit, Sender, make_sender, parse_relays

__all__ = [
    "CompiledEmail",
    "DkimKeyError",
    "DkimSigner",
    "FillTemplate",
    "RelayLimit",
    "Sender",
    "TemplateError",
    "delivery_of_token",
    "digest_layouts",
    "dkim_signer",
    "domain_of",
    "envelope_sender",
    "make_sender",
    "parse_relays",
    "template_names",
]
