"""Email bytes: templates compiled with MJML, MIME skeletons filled per reader, DKIM, and the
senders that hand messages to SMTP relays or the outbox folder.

This package knows nothing of the database, Flask or Celery.
"""

from mailer.mail.messages import DkimSigner, domain_of
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
    "DkimSigner",
    "FillTemplate",
    "RelayLimit",
    "Sender",
    "TemplateError",
    "digest_layouts",
    "domain_of",
    "make_sender",
    "parse_relays",
    "template_names",
]
