"""What every outgoing message shares, read from the settings: the DKIM signer,
the envelope sender (VERP for bulk mail), `Feedback-ID` and `List-Id` values."""

from __future__ import annotations

from mailer.config import Settings
from mailer.mail.dkim import DkimSigner, load_signer
from mailer.mail.messages import list_id, verp_address


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The one signer of this process for these settings (None: DKIM is off)."""
    return load_signer(settings.dkim_selector, settings.dkim_domain or settings.from_domain,
                       settings.dkim_private_key_path, settings.dkim_ed25519_private_key_path,
                       settings.dkim_ed25519_selector)


def envelope_sender(settings: Settings, delivery_id: int | None = None) -> str:
    """MAIL FROM: `MAILER_RETURN_PATH` with the delivery's VERP token, else From."""
    if settings.return_path and "@" in settings.return_path:
        if delivery_id is not None:
            return verp_address(settings.return_path, settings.secret_key, delivery_id)
        return settings.return_path
    return settings.mail_from_address


def feedback_id(settings: Settings, *parts: object) -> str:
    """Gmail's `Feedback-ID`: `a:b:c:SenderId`, campaign parts first."""
    fields = [str(p).replace(":", "-") for p in parts if str(p)]
    return ":".join([*fields, settings.feedback_sender])


def digest_list_id(settings: Settings, name: str, digest_id: int) -> str:
    """`"Morning Brief" <morning-brief-d3.example.org>`: the id keeps two digests
    apart even when their names make the same slug."""
    slug = "-".join(name.lower().split())[:40]
    return list_id(name, f"{slug}-d{digest_id}" if slug else f"d{digest_id}",
                   settings.list_id_domain or settings.from_domain)
