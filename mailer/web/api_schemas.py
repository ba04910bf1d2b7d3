"""The shapes of the JSON API: one pydantic model per request body, query string
and response. `mailer/web/api.py` validates requests and serialises responses
with them, and `mailer/web/openapi.py` builds the OpenAPI document from them,
so what is documented is what is checked.

Request bodies are strict (a string where a number is expected is an error, not
a conversion) and ignore unknown keys. They check types, lengths and ranges;
the domain services keep their own checks (unknown topics, schedules, addresses),
which also guard the CLI and console.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mailer.content import MAX_ID


def _valid_unicode(value: str) -> str:
    # JSON may carry lone surrogates ("\ud800"); no database can store them.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains an invalid character (a lone UTF-16 surrogate)") from None
    return value


def text(max_length: int, min_length: int = 0, **schema: str) -> Any:
    """A string field of at most `max_length` characters, valid Unicode."""
    extra: dict[str, Any] = dict(schema)
    return Field(max_length=max_length, min_length=min_length, json_schema_extra=extra or None)


Text = Annotated[str, AfterValidator(_valid_unicode)]
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
Slugs = Annotated[list[Slug], Field(max_length=200)]
Url = Annotated[Text, Field(max_length=2000, json_schema_extra={"format": "uri"})]
Email = Annotated[Text, Field(min_length=1, max_length=320, json_schema_extra={"format": "email"})]
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
EditionState = Literal["draft", "compiling", "sending", "paused", "cancelled", "done", "failed"]
DeliveryState = Literal["waiting", "pending", "claimed", "sending", "retry", "sent", "failed",
                        "unknown", "skipped", "cancelled", "bounced", "held"]
Page = Annotated[int, Field(ge=1, le=10_000)]


class Body(BaseModel):
    """A JSON request body: strict types, unknown keys ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Query(BaseModel):
    """Query-string parameters: values arrive as text, so numbers are converted."""

    model_config = ConfigDict(extra="ignore")


class Out(BaseModel):
    """A response body."""


# --- errors -----------------------------------------------------------------

class Error(Out):
    """Every 4xx/5xx answer: a sentence for people and, per field, what is wrong."""

    error: str
    fields: dict[str, str] = Field(default_factory=dict)


class ImportRowError(Out):
    line: int
    error: str


class ImportReport(Out):
    rows: int
    created: int
    existing: int
    duplicates: int
    suppressed: int
    errors: list[ImportRowError]


class ImportFailed(Error):
    """A CSV with bad rows: nothing imported; `fields` names the lines."""

    report: ImportReport | None = None


# --- articles and topics ----------------------------------------------------

class ArticleIn(Body):
    url: Url
    title: Annotated[Text, text(500, 1)]
    author: Annotated[Text, text(200)] | None = None
    published_at: Annotated[Text, text(64, format="date-time")] | None = None
    summary: Annotated[Text, text(20_000)] | None = None
    body_html: Annotated[Text, text(1_000_000)] | None = None
    image_url: Url | None = None
    topics: Slugs | None = None


class ArticlesQuery(Query):
    limit: Annotated[int, Field(ge=1, le=500)] = 50


class ArticleOut(Out):
    id: int
    url: str
    title: str
    author: str
    summary: str
    body_html: str
    image_url: str
    published_at: Timestamp
    topics: list[str]


class ArticleList(Out):
    articles: list[ArticleOut]


class TopicIn(Body):
    slug: Slug
    name: Annotated[Text, text(200, 1)]


class TopicOut(Out):
    id: int
    slug: str
    name: str


class TopicList(Out):
    topics: list[TopicOut]


# --- readers ----------------------------------------------------------------

class SubscriberIn(Body):
    email: Email
    name: Annotated[Text, text(200)] | None = None
    topics: Slugs | None = None
    frequency: Literal["immediate", "daily", "weekly", "paused"] | None = None
    confirmed: bool = Field(False, description="true only for imports with consent on record: "
                                               "no confirmation email is sent")
    timezone: Annotated[Text, text(64)] | None = Field(
        None, description='an IANA time zone name, e.g. "Europe/Berlin"')
    attributes: Annotated[dict[str, str | int | float | bool], Field(max_length=50)] | None = Field(
        None, description="the publisher's own values about the reader: strings (up to 500 "
                          "characters), numbers, booleans; audiences can select on them")


class SubscriberOut(Out):
    id: int | None
    created: bool
    confirmation_sent: bool


class ImportQuery(Query):
    consent: bool = Field(False, description="true when every reader's consent is on record")


# --- digests and templates --------------------------------------------------

class DigestFields(Body):
    topics: Slugs | None = None
    subject: Annotated[Text, text(300)] | None = None
    schedule: Annotated[Text, text(200)] | None = Field(
        None, description='"daily 07:00", "mondays 08:00 Europe/Berlin", "weekdays 06:30", a cron '
                          'expression (optionally followed by a zone), "daily 07:00 reader-local" '
                          '(07:00 in each reader\'s own time zone), or "" for none')
    timezone: Annotated[Text, text(64)] | None = Field(
        None, description="IANA zone of the schedule; for a reader-local schedule, the zone of "
                          "readers who gave none")
    max_articles: Annotated[int, Field(ge=1, le=50)] | None = None
    approval: Literal["auto", "draft"] | None = None
    template: Annotated[Text, text(64)] | None = Field(
        None, description="a digest layout listed by GET /templates")
    intro: Annotated[Text, text(2000)] | None = Field(None, description="shown above the stories")
    quiet_hours: Annotated[Text, text(20)] | None = Field(
        None, description='"22:00-07:00" in the digest\'s time zone: sending pauses then; "" for none')
    section_order: Slugs | None = Field(
        None, description="topic slugs whose sections come first, in this order")


class DigestIn(DigestFields):
    name: Annotated[Text, text(200, 1)]


class DigestUpdate(DigestFields):
    name: Annotated[Text, text(200, 1)] | None = None


class DigestOut(Out):
    id: int
    name: str
    topics: list[str]
    schedule: str
    timezone: str
    max_articles: int
    approval: str
    template: str
    next_run_at: Timestamp | None
    subject: str = ""
    intro: str = ""
    section_order: list[str] = Field(default_factory=list)
    archived_at: Timestamp | None = None
    quiet_hours: str = ""
    reader_local: bool = Field(False, description="the schedule sends at its time in each "
                                                  "reader's own time zone")


class DigestListQuery(Query):
    archived: bool = Field(False, description="list archived digests instead of active ones")


class DigestList(Out):
    digests: list[DigestOut]


class TemplateOut(Out):
    name: str
    default: bool


class TemplateList(Out):
    templates: list[TemplateOut]


class PreviewQuery(Query):
    format: Literal["json", "html", "text", "page"] = "json"
    width: Literal["desktop", "mobile"] = "desktop"


class PreviewOut(Out):
    digest_id: int
    edition_id: int | None
    subject: str
    html: str
    text: str
    size_bytes: int
    truncated: int = Field(description="article cards left out to stay under the clip limit")
    article_ids: list[int]
    note: str
    clip_limit_bytes: int
    widths: dict[str, int]
    clipped: bool
    warning: str | None = Field(None, description="present only when cards were left out")


class SendTestIn(Body):
    addresses: Annotated[list[Email], Field(min_length=1, max_length=10)]


class SendTestOut(Out):
    results: dict[str, str] = Field(description="address -> sent, or why not")


# --- feeds ------------------------------------------------------------------

class FeedIn(Body):
    url: Url
    topic: Annotated[Text, text(64)] | None = Field(None, description="topic slug for every item")
    category_map: Annotated[dict[Annotated[Text, text(200)], Annotated[Text, text(64)]],
                            Field(max_length=500)] | None = Field(
        None, description="feed category -> topic slug")
    poll_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] | None = None


class FeedOut(Out):
    id: int
    url: str
    title: str
    category_map: dict[str, str]
    topic: str
    poll_minutes: int
    last_status: str
    last_error: str
    last_imported: int
    last_fetched_at: Timestamp | None
    next_poll_at: Timestamp | None


class FeedPolled(FeedOut):
    imported_now: int


class FeedList(Out):
    feeds: list[FeedOut]


# --- editions and deliveries ------------------------------------------------

class EditionIn(Body):
    digest: Annotated[int, Field(ge=1, le=MAX_ID)] | Annotated[Text, text(200, 1)] = Field(
        description="digest name or id")
    segment_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = Field(
        None, description="an audience that narrows this edition only (the digest's own "
                          "audience, if any, applies too)")
    subjects: Annotated[list[Annotated[Text, text(150, 1)]], Field(min_length=2, max_length=4)] \
        | None = Field(None, description="an A/B subject test: 2 to 4 subjects, tried on a sample "
                                         "first; needs MAILER_TRACKING=1")
    sample_percent: Annotated[int, Field(ge=5, le=50)] = Field(
        20, description="share of the readers who get the test subjects first")
    wait_minutes: Annotated[int, Field(ge=10, le=1440)] = Field(
        60, description="how long the sample is measured before the winner goes to the rest")
    metric: Literal["clicks", "opens"] = Field(
        "clicks", description="clicks per message sent, or human opens per message sent "
                              "(machine opens excluded)")


class SubjectFiguresOut(Out):
    index: int
    subject: str
    sample: int = Field(description="readers of the sample given this subject")
    sent: int
    opens: int = Field(description="readers who opened (machine opens excluded)")
    clicks: int = Field(description="readers who clicked")
    open_rate: float
    click_rate: float
    winner: bool


class SubjectTestOut(Out):
    subjects: list[SubjectFiguresOut] = Field(
        description="live during the wait; as they were when the winner was chosen after it")
    sample_percent: int
    wait_minutes: int
    metric: Literal["clicks", "opens"]
    decide_at: Timestamp | None = Field(description="when the winner is chosen")
    winner: int | None = Field(description="index of the winning subject")
    winner_subject: str | None
    decided_at: Timestamp | None
    held: int = Field(description="readers still waiting for the winner")


class ZoneProgress(Out):
    timezone: str = Field(description="IANA zone; readers without one count under the digest's")
    send_at: Timestamp
    planned: int
    sent: int
    waiting: int
    remaining: int


class ArticleClicksOut(Out):
    article_id: int
    title: str
    clicks: int = Field(description="distinct readers who clicked a link to this article")
    click_total: int = Field(description="every counted click, repeats included")
    click_rate: float = Field(description="clicks / messages sent, in percent")


class OtherLinksOut(Out):
    links: int = Field(description="tracked links that are no article (masthead, site, ads)")
    clicks: int
    click_total: int
    click_rate: float


class EditionOut(Out):
    id: int
    digest: str
    digest_id: int
    status: EditionState
    subject: str
    planned: int
    sent: int
    failed: int
    unknown: int
    skipped: int
    cancelled: int
    retrying: int
    remaining: int
    rate: float = Field(description="messages per second over the last minute")
    eta_seconds: int | None
    error: str
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    paused_reason: str = Field("", description="why the edition paused itself (circuit breaker, "
                                               "quiet hours, warm-up), empty otherwise")
    relay_unreachable_since: Timestamp | None = None
    relay_status: str = Field("", description='e.g. "relay unreachable since 2026-11-29 10:00 UTC"')
    resume_at: Timestamp | None = Field(None, description="when a paused edition resumes by itself")
    held: int = Field(0, description="rows waiting for an A/B test's winner")
    segment_id: int | None = Field(None, description="the audience this edition was narrowed to")
    subject_test: SubjectTestOut | None = Field(
        None, description="the A/B subject test; only in single-edition answers of an edition "
                          "that has one")
    waiting: int = Field(0, description="rows waiting for their reader's local hour")
    local_send: str = Field("", description='reader-local editions: the wall-clock date and time '
                                            'each reader gets it at in their zone, e.g. '
                                            '"2026-03-08T07:00"')
    next_zone_at: Timestamp | None = Field(None, description="reader-local editions: when the "
                                                             "next zone's readers become due")
    zones: list[ZoneProgress] = Field(
        default_factory=list, description="reader-local editions (GET /editions/<id> only): "
                                          "progress per reader time zone, in send order")
    # Engagement (people and machines apart); null while tracking is off.
    tracked: bool | None = Field(None, description="sent with tracked links and an open pixel")
    opens_human: int | None = Field(None, description="distinct readers who opened it (people)")
    opens_machine: int | None = Field(
        None, description="distinct readers with a machine open (Apple Mail Privacy Protection, "
                          "opens on delivery, scanners): shown, never in rates")
    open_rate: float | None = Field(None, description="opens_human / sent, in percent")
    clicks: int | None = Field(None, description="distinct readers who clicked")
    click_total: int | None = Field(None, description="every counted click")
    click_rate: float | None = Field(None, description="clicks / sent, in percent")
    articles: list[ArticleClicksOut] | None = Field(
        None, description="every article of the edition, most clicked first")
    other_links: OtherLinksOut | None = None


class EditionsQuery(Query):
    page: Page = 1


class EditionList(Out):
    editions: list[EditionOut]
    page: int
    next_page: int | None


class DeliveriesQuery(Query):
    status: DeliveryState | None = None
    page: Page = 1


class DeliveryOut(Out):
    id: int
    reader_id: int
    email: str | None = Field(description="null when the reader was erased")
    status: DeliveryState
    smtp_code: int | None
    error: str
    attempts: int
    created_at: Timestamp
    sent_at: Timestamp | None
    next_attempt_at: Timestamp | None
    claimed_at: Timestamp | None


class DeliveryList(Out):
    edition_id: int
    deliveries: list[DeliveryOut]
    page: int
    next_page: int | None


class RetryIn(Body):
    statuses: Annotated[list[Literal["failed", "unknown"]], Field(min_length=1, max_length=2)] = Field(
        description='which rows to send again: "failed", "unknown" or both. "unknown" rows may '
                    "have reached the reader already; choose them deliberately")


class RetryOut(Out):
    requeued: int
    skipped: int = Field(description="rows of readers now unsubscribed or suppressed")


# --- publication ----------------------------------------------------------------

class PublicationOut(Out):
    """The publication's identity as readers see it (saved values over environment defaults)."""

    name: str
    logo_url: str
    accent_color: str
    website_url: str
    postal_address: str
    language: str
    from_name: str
    footer_text: str


class PublicationIn(Body):
    """Fields left out keep their value; null goes back to the environment default."""

    name: Annotated[Text, text(200, 1)] | None = None
    logo_url: Annotated[Text, text(2000, format="uri")] | None = None
    accent_color: Annotated[Text, text(7)] | None = Field(None, description="#rrggbb or empty")
    website_url: Annotated[Text, text(2000, format="uri")] | None = None
    postal_address: Annotated[Text, text(500)] | None = None
    language: Annotated[Text, text(35)] | None = Field(None, description="a BCP 47 tag: en, de-CH")
    from_name: Annotated[Text, text(200)] | None = None
    footer_text: Annotated[Text, text(1000)] | None = None


# --- automations ----------------------------------------------------------------

class AutomationStepIn(Body):
    delay_minutes: Annotated[int, Field(ge=0, le=525_600)] = Field(
        description="minutes after the trigger (0: right after it)")
    subject: Annotated[Text, text(300, 1)]
    body_text: Annotated[Text, text(20_000, 1)]
    body_mjml: Annotated[Text, text(100_000)] | None = Field(
        None, description="MJML of the HTML part; the default layout when left out")


class AutomationIn(Body):
    name: Annotated[Text, text(200, 1)]
    trigger: Annotated[Text, text(64)] = Field("reader.confirmed", description='"reader.confirmed"')
    topics: Slugs | None = Field(None, description="only readers of these topics (none: everyone)")
    enabled: bool | None = None
    steps: Annotated[list[AutomationStepIn], Field(min_length=1, max_length=20)]


class AutomationStepOut(Out):
    id: int
    position: int
    delay_minutes: int
    subject: str
    body_text: str
    body_mjml: str | None
    version: int
    sent: int
    failed: int
    pending: int
    skipped: int


class AutomationOut(Out):
    id: int
    name: str
    trigger: str
    enabled: bool
    topics: list[str]
    steps: list[AutomationStepOut]
    created_at: Timestamp


class AutomationList(Out):
    automations: list[AutomationOut]


# --- breaking-news alerts ---------------------------------------------------------

class AlertIn(Body):
    article: int | Annotated[Text, text(2000, 1)] = Field(description="an article id or URL")


class AlertOut(Out):
    id: int
    status: EditionState
    planned: int
    subject: str


# --- audiences (segments) ---------------------------------------------------------

Rules = Annotated[list[dict[str, Any]], Field(
    max_length=50, description="rules {field, op, value} or nested groups {match, rules}")]


class SegmentIn(Body):
    name: Annotated[Text, text(200, 1)]
    match: Literal["all", "any"] = "all"
    rules: Rules


class SegmentCountIn(Body):
    match: Literal["all", "any"] = "all"
    rules: Rules


class SegmentOut(Out):
    id: int
    name: str
    match: str
    rules: list[dict[str, Any]]
    count: int | None = None


class SegmentList(Out):
    segments: list[SegmentOut]


class SegmentCount(Out):
    count: int


# --- outgoing webhooks ------------------------------------------------------------

class WebhookIn(Body):
    url: Url
    events: Annotated[list[Annotated[Text, text(64)]], Field(min_length=1, max_length=20)]


class WebhookOut(Out):
    id: int
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: Timestamp


class WebhookCreated(WebhookOut):
    secret: str = Field(description='"whsec_" and the base64 signing key; shown only once')


class WebhookList(Out):
    webhooks: list[WebhookOut]
