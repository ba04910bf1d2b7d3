"""Settings come from the environment (and a `.env` file); nothing else.

Every name is documented in the README's configuration table. Unset values fall
back to the embedded default: SQLite, a filesystem broker and an outbox folder,
all under the instance folder.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path

from dotenv import load_dotenv


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_float(name: str, default: float) -> float:
    raw = _env(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc


def _env_int(name: str, default: int) -> int:
    return int(_env_float(name, default))


@dataclass(frozen=True)
class Settings:
    instance_path: Path
    database_url: str
    broker_url: str
    smtp_url: str
    base_url: str
    secret_key: str
    mail_from: str
    reply_to: str
    api_token: str
    send_rate: float
    domain_rates: dict[str, float] = field(default_factory=dict)
    batch_size: int = 200
    send_lanes: int = 4
    retry_deadline_hours: float = 24.0
    claim_lease_seconds: int = 120
    dkim_selector: str = ""
    dkim_domain: str = ""
    dkim_private_key_path: str = ""
    unsubscribe_mailto: str = ""
    bounce_webhook_secret: str = ""
    # SNS topics whose signed SES notifications are accepted without the shared secret.
    sns_topic_arns: tuple[str, ...] = ()
    queue_name: str = "mailer"
    retry_base_seconds: float = 60.0
    ledger_sync_commit: bool = False
    tracking: bool = False  # MAILER_TRACKING=1: open pixel and click redirects in emails
    tick_seconds: float = 10.0
    # Per client IP (flask-limiter syntax); the web bench raises them.
    signup_rate_limit: str = "20 per minute;200 per hour"
    form_rate_limit: str = "60 per minute;600 per hour"
    # Every successful signup answer takes at least this long, whatever state the
    # address was in, so timing does not tell a new address from a known one.
    signup_min_seconds: float = 0.03
    # MAILER_ALLOW_PRIVATE_URLS=1: webhooks (and feeds) may call loopback/private addresses.
    allow_private_urls: bool = False

    @property
    def outbox_path(self) -> Path:
        return self.instance_path / "outbox"

    @property
    def mail_from_address(self) -> str:
        """The bare address of MAILER_FROM (which may be `Name <addr>`), for envelopes."""
        return parseaddr(self.mail_from)[1] or self.mail_from

    @property
    def uses_embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def redis_url(self) -> str | None:
        """Redis to share rate limits across processes, when the broker is Redis."""
        if self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None


def _secret_key(instance_path: Path) -> str:
    configured = _env("MAILER_SECRET_KEY")
    if configured:
        return configured
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting together must agree on one key.
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return key_file.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def _domain_rates(raw: str) -> dict[str, float]:
    """`gmail.com=20,yahoo.com=10` -> {"gmail.com": 20.0, "yahoo.com": 10.0}."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        domain, sep, value = part.partition("=")
        if not sep:
            raise SystemExit(f"MAILER_DOMAIN_RATES entry {part!r} must look like domain=rate")
        try:
            rates[domain.strip().lower()] = float(value)
        except ValueError as exc:
            raise SystemExit(f"MAILER_DOMAIN_RATES rate for {domain!r} is not a number") from exc
    return rates


def load_settings(**overrides: object) -> Settings:
    """Read settings; `overrides` (used by tests) win over the environment."""
    load_dotenv(Path.cwd() / ".env", override=False)
    instance_path = Path(
        str(overrides.pop("instance_path", None) or _env("MAILER_INSTANCE_PATH", "instance"))
    ).resolve()
    instance_path.mkdir(parents=True, exist_ok=True)
    (instance_path / "outbox").mkdir(exist_ok=True)
    values: dict[str, object] = dict(
        instance_path=instance_path,
        database_url=_env("MAILER_DATABASE_URL") or f"sqlite:///{instance_path / 'mailer.db'}",
        broker_url=_env("MAILER_BROKER_URL") or "filesystem://",
        smtp_url=_env("MAILER_SMTP_URL"),
        base_url=_env("MAILER_BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        secret_key="",
        mail_from=_env("MAILER_FROM", "newsletter@localhost"),
        reply_to=_env("MAILER_REPLY_TO"),
        api_token=_env("MAILER_API_TOKEN"),
        send_rate=_env_float("MAILER_SEND_RATE", 0.0),
        domain_rates=_domain_rates(_env("MAILER_DOMAIN_RATES")),
        batch_size=_env_int("MAILER_BATCH_SIZE", 200),
        send_lanes=_env_int("MAILER_SEND_LANES", 4),
        retry_deadline_hours=_env_float("MAILER_RETRY_DEADLINE_HOURS", 24.0),
        claim_lease_seconds=_env_int("MAILER_CLAIM_LEASE_SECONDS", 120),
        dkim_selector=_env("MAILER_DKIM_SELECTOR"),
        dkim_domain=_env("MAILER_DKIM_DOMAIN"),
        dkim_private_key_path=_env("MAILER_DKIM_PRIVATE_KEY"),
        unsubscribe_mailto=_env("MAILER_UNSUBSCRIBE_MAILTO"),
        bounce_webhook_secret=_env("MAILER_BOUNCE_WEBHOOK_SECRET"),
        sns_topic_arns=tuple(a.strip() for a in _env("MAILER_SNS_TOPIC_ARNS").split(",")
                             if a.strip()),
        queue_name=_env("MAILER_QUEUE", "mailer"),
        retry_base_seconds=_env_float("MAILER_RETRY_BASE_SECONDS", 60.0),
        ledger_sync_commit=_env("MAILER_LEDGER_SYNC_COMMIT", "0") in ("1", "true", "yes"),
        tracking=_env("MAILER_TRACKING", "0") in ("1", "true", "yes"),
        tick_seconds=_env_float("MAILER_TICK_SECONDS", 10.0),
        signup_rate_limit=_env("MAILER_SIGNUP_RATE_LIMIT", "20 per minute;200 per hour"),
        form_rate_limit=_env("MAILER_FORM_RATE_LIMIT", "60 per minute;600 per hour"),
        signup_min_seconds=max(0.0, _env_float("MAILER_SIGNUP_MIN_SECONDS", 0.03)),
        allow_private_urls=_env("MAILER_ALLOW_PRIVATE_URLS", "0") in ("1", "true", "yes"),
    )
    values.update(overrides)
    if not values["secret_key"]:
        values["secret_key"] = _secret_key(instance_path)
    return Settings(**values)  # type: ignore[arg-type]
