"""What the editors' console needs beyond the other domains: editor accounts, API tokens,
statistics and settings checks.
"""

from mailer.console.api_tokens import check_token, create_token
from mailer.console.editors import (
    authenticate,
    change_own_password,
    create_editor,
    list_editors,
    set_active,
    set_password,
    set_role,
)
from mailer.console.settings_checks import CheckResult, check_bounces, check_dkim, check_smtp
from mailer.console.stats import (
    FINAL_EDITION_STATES,
    EditionStats,
    activity_series,
    article_stats,
    delivery_counts,
    edition_stats,
    link_stats,
    reader_counts,
    reader_growth,
    recent_editions,
)

__all__ = [
    "FINAL_EDITION_STATES",
    "CheckResult",
    "EditionStats",
    "activity_series",
    "article_stats",
    "authenticate",
    "change_own_password",
    "check_bounces",
    "check_dkim",
    "check_smtp",
    "check_token",
    "create_editor",
    "create_token",
    "delivery_counts",
    "edition_stats",
    "link_stats",
    "list_editors",
    "reader_counts",
    "reader_growth",
    "recent_editions",
    "set_active",
    "set_password",
    "set_role",
]
