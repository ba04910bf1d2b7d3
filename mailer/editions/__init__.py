"""Editions of a digest: choosing articles, compiling once per selection, planning the
ledger, controlling the send, progress, previews, tracking and the due-digest scheduler.
"""

from mailer.editions.abtest import (
    SubjectTestSpec,
    check_subject_test,
    decide_subject_tests,
    subject_test_report,
)
from mailer.editions.compile import web_variant
from mailer.editions.control import (
    CURATE_ACTIONS,
    SendPlan,
    approve_edition,
    cancel_edition,
    curate_draft,
    fail_edition,
    pause_edition,
    plan_send,
    resume_edition,
    set_edition_subject,
    start_edition,
)
from mailer.editions.due import run_due
from mailer.editions.engagement import (
    ArticleClicks,
    Engagement,
    OtherLinks,
    edition_engagement,
    editions_engagement,
    with_engagement,
)
from mailer.editions.prepare import prepare_edition
from mailer.editions.previews import Preview, preview_digest, preview_edition, preview_page, test_send
from mailer.editions.progress import list_editions, progress, status_counts
from mailer.editions.tracking import (
    MACHINE_OPEN_KINDS,
    OPEN_HUMAN,
    OPEN_MACHINE,
    OpenClass,
    classify_open,
    record_open,
    resolve_click,
)

__all__ = [
    "CURATE_ACTIONS",
    "MACHINE_OPEN_KINDS",
    "OPEN_HUMAN",
    "OPEN_MACHINE",
    "ArticleClicks",
    "Engagement",
    "OpenClass",
    "OtherLinks",
    "Preview",
    "SendPlan",
    "SubjectTestSpec",
    "approve_edition",
    "cancel_edition",
    "check_subject_test",
    "classify_open",
    "curate_draft",
    "decide_subject_tests",
    "edition_engagement",
    "editions_engagement",
    "fail_edition",
    "list_editions",
    "pause_edition",
    "plan_send",
    "prepare_edition",
    "preview_digest",
    "preview_edition",
    "preview_page",
    "progress",
    "record_open",
    "resolve_click",
    "resume_edition",
    "run_due",
    "set_edition_subject",
    "start_edition",
    "status_counts",
    "subject_test_report",
    "test_send",
    "web_variant",
    "with_engagement",
]
