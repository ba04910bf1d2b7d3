"""Reader links that never expire (unsubscribe, preferences, tracking): made from
and checked against the reader's `token_nonce`, which is erased with the reader."""

from __future__ import annotations

from sqlalchemy import select

from mailer.common.tokens import NonceFor, TokenError, Tokens
from mailer.models import Reader
from mailer.models.base import DbSession


def nonce_lookup(session: DbSession) -> NonceFor:
    """`nonce_for(reader_id)`: the reader's current nonce, None when there is none."""

    def nonce_for(reader_id: int) -> str | None:
        if reader_id > 2**63 - 1:
            return None
        return session.scalar(select(Reader.token_nonce).where(Reader.id == reader_id))

    return nonce_for


def reader_link_token(tokens: Tokens, purpose: str, reader: Reader) -> str:
    return tokens.reader_token(purpose, reader.id, reader.token_nonce)


def reader_for_token(session: DbSession, tokens: Tokens, purpose: str, token: str) -> Reader:
    """The reader a link was made for, while that reader exists (TokenError otherwise)."""
    reader_id = tokens.reader_id(purpose, token, nonce_lookup(session))
    reader = session.get(Reader, reader_id)
    if reader is None:  # erased between the two reads
        raise TokenError("This link is no longer valid.")
    return reader
