"""Settings come from the environment (and a `.env` file); nothing else.

Every name is documented in the README's configuration table. Unset values fall
back to the embedded default: SQLite, a filesystem broker and an outbox folder,
all under the instance folder.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from datetime import date
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


def _networks(raw: str) -> tuple[str, ...]:
    """Comma-separated CIDRs, each checked now: a typo stops the start, not an open."""
    out = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as exc:
            raise SystemExit(f"MAILER_MACHINE_OPEN_NETWORKS: {item!r} is not a network") from exc
    return tuple(out)


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
    batch_size: int = 500
    send_lanes: int = 4
    # SMTP connections per lane: that many messages travel at once, their
    # `sending` marks written in one statement (MAILER_LANE_CONNECTIONS).
    lane_connections: int = 8
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
    # An open this soon after the message was sent is a machine's (prefetch on delivery).
    machine_open_seconds: float = 10.0
    # Networks whose opens are machine opens, beside the built-in list (CIDRs).
    machine_open_networks: tuple[str, ...] = ()
    # Inactive-reader policy, off at 0: months without a human open or click.
    inactive_months: int = 0
    inactive_grace_days: int = 14  # after the re-engagement email, before the pause
    inactive_min_digests: int = 3  # tracked digests received in those months, at least
    tick_seconds: float = 10.0
    # Per client IP (flask-limiter syntax); the web bench raises them.
    signup_rate_limit: str = "20 per minute;200 per hour"
    form_rate_limit: str = "60 per minute;600 per hour"
    # Every successful signup answer takes at least this long, whatever state the
    # address was in, so timing does not tell a new address from a known one.
    signup_min_seconds: float = 0.03
    # Signup proof of work (common/challenge.py): "auto" asks for it once the client's
    # address has used half of a signup rate-limit window; "always"; "off".
    signup_challenge: str = "auto"
    # Largest answer of a challenge: the browser tries half of it on average (bench/pow.py).
    signup_challenge_difficulty: int = 25_000
    # Defaults of the publication settings (console and API can change them).
    publication_name: str = ""
    postal_address: str = ""
    website_url: str = ""
    logo_url: str = ""
    accent_color: str = ""
    # Deliverability (docs/deliverability.md).
    dkim_ed25519_private_key_path: str = ""
    dkim_ed25519_selector: str = ""  # blank: "<MAILER_DKIM_SELECTOR>-ed25519"
    return_path: str = ""  # MAILER_RETURN_PATH: VERP envelope sender of bulk mail
    helo: str = ""
    feedback_id: str = ""
    list_id_domain: str = ""
    bounce_mailbox: str = ""
    soft_bounce_limit: int = 3  # soft bounces in a row that suppress an address
    bounce_poll_seconds: float = 60.0
    # MAILER_DNS_RESOLVER: (address, port) the console's DNS checks ask; None: the
    # system resolver (/etc/resolv.conf).
    dns_resolver: tuple[str, int] | None = None
    # MAILER_ALLOW_PRIVATE_URLS=1: feeds and webhooks may reach loopback, private
    # and link-local addresses (tests, intranets); see common/urlsafety.py.
    allow_private_urls: bool = False
    # Test sends (addresses mailed) per editor per hour, across all requests.
    test_send_hourly_cap: int = 100
    # Delivery engine (docs/delivery.md, "Faults"): an edition pauses itself when more
    # than this share of its recent attempts failed permanently ...
    breaker_failure_rate: float = 0.2
    breaker_window: int = 500  # ... over this many recent attempts (per worker process)
    breaker_min_attempts: int = 100  # ... once at least this many were seen
    # ... or when no relay has been reachable for this long.
    relay_down_pause_seconds: float = 300.0
    # A lane whose database session is gone (its advisory lock is free) and that
    # has not touched its rows for this long is dead: its rows are released.
    dead_lane_grace_seconds: float = 2.0
    # Warm-up ramp for a new sending domain (MAILER_WARMUP="200,2,50000"): at most
    # `first` messages on day 0, times `factor` each day after, up to `ceiling`.
    warmup: tuple[int, float, int] | None = None
    warmup_start: date | None = None  # day 0 (MAILER_WARMUP_START); unset: first day used

    @property
    def outbox_path(self) -> Path:
        return self.instance_path / "outbox"

    @property
    def mail_from_address(self) -> str:
        """The bare address of MAILER_FROM (which may be `Name <addr>`), for envelopes."""
        return parseaddr(self.mail_from)[1] or self.mail_from

    @property
    def from_domain(self) -> str:
        return self.mail_from_address.rpartition("@")[2] or "localhost"

    @property
    def helo_name(self) -> str:
        return self.helo or self.from_domain

    @property
    def feedback_sender(self) -> str:
        return self.feedback_id or self.from_domain

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


def _challenge_mode(raw: str) -> str:
    mode = (raw or "auto").lower()
    if mode not in ("auto", "always", "off"):
        raise SystemExit(f"MAILER_SIGNUP_CHALLENGE must be auto, always or off, got {raw!r}")
    return mode


def _challenge_difficulty(raw: int) -> int:
    if not 1_000 <= raw <= 100_000_000:
        raise SystemExit("MAILER_SIGNUP_CHALLENGE_DIFFICULTY must be between 1000 and 100000000")
    return raw


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


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def missing_instance(cwd: Path | None = None) -> str | None:
    """Why a command line run here would start a new, empty instance by accident:
    no MAILER_INSTANCE_PATH or MAILER_DATABASE_URL, no `instance/` folder, and not
    the project folder (where a fresh clone creates its instance). None if fine."""
    cwd = (cwd or Path.cwd()).resolve()
    load_dotenv(cwd / ".env", override=False)
    if _env("MAILER_INSTANCE_PATH") or _env("MAILER_DATABASE_URL"):
        return None
    if (cwd / "instance").is_dir() or cwd == PROJECT_ROOT:
        return None
    return (f"No mailer instance here: expected the folder {cwd / 'instance'} (the SQLite "
            f"database, outbox and secret key). Run the command from the project folder "
            f"({PROJECT_ROOT}), or set MAILER_INSTANCE_PATH or MAILER_DATABASE_URL.")
def _warmup(raw: str) -> tuple[int, float, int] | None:
    if not raw.strip():
        return None
    try:
        first, factor, ceiling = (part.strip() for part in raw.split(","))
        plan = (int(first), float(factor), int(ceiling))
    except ValueError as exc:
        raise SystemExit("MAILER_WARMUP must be 'first,factor,ceiling', e.g. 200,2,50000") from exc
    if plan[0] < 1 or plan[1] < 1 or plan[2] < plan[0]:
        raise SystemExit("MAILER_WARMUP: first >= 1, factor >= 1 and ceiling >= first")
    return plan


def _dns_resolver(raw: str) -> tuple[str, int] | None:
    """`127.0.0.1:5353`, `[::1]:53` or a bare address (port 53)."""
    if not raw:
        return None
    host, port = raw, "53"
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise SystemExit(f"MAILER_DNS_RESOLVER: expected [address]:port, got {raw!r}")
            port = rest[1:]
    elif raw.count(":") == 1:
        host, port = raw.split(":")
    try:
        address = str(ipaddress.ip_address(host.strip()))
        number = int(port)
    except ValueError as exc:
        raise SystemExit(f"MAILER_DNS_RESOLVER must be an IP address with an optional port "
                         f"(127.0.0.1:53, [::1]:53), got {raw!r}") from exc
    if not 0 < number < 65536:
        raise SystemExit(f"MAILER_DNS_RESOLVER: port {number} is out of range")
    return address, number


def _day(raw: str, name: str) -> date | None:
    if not raw.strip():
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise SystemExit(f"{name} must be a date like 2026-12-01, got {raw!r}") from exc


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
        batch_size=_env_int("MAILER_BATCH_SIZE", 500),
        send_lanes=_env_int("MAILER_SEND_LANES", 4),
        lane_connections=max(1, min(_env_int("MAILER_LANE_CONNECTIONS", 8), 64)),
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
        machine_open_seconds=max(0.0, _env_float("MAILER_MACHINE_OPEN_SECONDS", 10.0)),
        machine_open_networks=_networks(_env("MAILER_MACHINE_OPEN_NETWORKS")),
        inactive_months=max(0, _env_int("MAILER_INACTIVE_MONTHS", 0)),
        inactive_grace_days=max(1, _env_int("MAILER_INACTIVE_GRACE_DAYS", 14)),
        inactive_min_digests=max(1, _env_int("MAILER_INACTIVE_MIN_DIGESTS", 3)),
        tick_seconds=_env_float("MAILER_TICK_SECONDS", 10.0),
        signup_rate_limit=_env("MAILER_SIGNUP_RATE_LIMIT", "20 per minute;200 per hour"),
        form_rate_limit=_env("MAILER_FORM_RATE_LIMIT", "60 per minute;600 per hour"),
        signup_min_seconds=max(0.0, _env_float("MAILER_SIGNUP_MIN_SECONDS", 0.03)),
        signup_challenge=_challenge_mode(_env("MAILER_SIGNUP_CHALLENGE")),
        signup_challenge_difficulty=_challenge_difficulty(
            _env_int("MAILER_SIGNUP_CHALLENGE_DIFFICULTY", 25_000)),
        publication_name=_env("MAILER_PUBLICATION_NAME"),
        postal_address=_env("MAILER_POSTAL_ADDRESS").replace("\\n", "\n"),
        website_url=_env("MAILER_WEBSITE_URL"),
        logo_url=_env("MAILER_LOGO_URL"),
        accent_color=_env("MAILER_ACCENT_COLOR"),
        dkim_ed25519_private_key_path=_env("MAILER_DKIM_ED25519_PRIVATE_KEY"),
        dkim_ed25519_selector=_env("MAILER_DKIM_ED25519_SELECTOR"),
        return_path=_env("MAILER_RETURN_PATH"),
        helo=_env("MAILER_HELO"),
        feedback_id=_env("MAILER_FEEDBACK_ID"),
        list_id_domain=_env("MAILER_LIST_ID_DOMAIN"),
        bounce_mailbox=_env("MAILER_BOUNCE_MAILBOX"),
        soft_bounce_limit=_env_int("MAILER_SOFT_BOUNCE_LIMIT", 3),
        bounce_poll_seconds=_env_float("MAILER_BOUNCE_POLL_SECONDS", 60.0),
        dns_resolver=_dns_resolver(_env("MAILER_DNS_RESOLVER")),
        allow_private_urls=_env("MAILER_ALLOW_PRIVATE_URLS", "0") in ("1", "true", "yes"),
        test_send_hourly_cap=_env_int("MAILER_TEST_SEND_HOURLY_CAP", 100),
        breaker_failure_rate=_env_float("MAILER_BREAKER_FAILURE_RATE", 0.2),
        breaker_window=_env_int("MAILER_BREAKER_WINDOW", 500),
        breaker_min_attempts=_env_int("MAILER_BREAKER_MIN_ATTEMPTS", 100),
        relay_down_pause_seconds=_env_float("MAILER_RELAY_DOWN_PAUSE_SECONDS", 300.0),
        dead_lane_grace_seconds=_env_float("MAILER_DEAD_LANE_GRACE_SECONDS", 2.0),
        warmup=_warmup(_env("MAILER_WARMUP")),
        warmup_start=_day(_env("MAILER_WARMUP_START"), "MAILER_WARMUP_START"),
    )
    values.update(overrides)
    if not values["secret_key"]:
        values["secret_key"] = _secret_key(instance_path)
    return Settings(**values)  # type: ignore[arg-type]
