"""What the editors' console needs beyond the other domains: editor accounts, API tokens,
statistics and settings checks (SMTP, DKIM, bounce mailbox, DNS records).
"""

from mailer.console import (
    audit,
)
from mailer.console.api_tokens import (
    SCOPES,
    check_token,
    create_token,
    effective_scope,
    scope_allows,
    token_is_admin,
)
from mailer.console.dns_checks import (
    DnsCheck,
    DnsReport,
    DnsStatus,
    run_dns_checks,
)
from mailer.console.editors import (
    authenticate,
    change_own_password,
    create_editor,
    list_editors,
    reset_two_factor,
    set_active,
    set_password,
    set_role,
)
from mailer.console.login_guard import (
    attempt_login,
    attempt_second_factor,
    close_session,
    open_session,
    send_login_notice,
    session_alive,
)
from mailer.console.publication import (
    publication_json,
    update_publication,
)
from mailer.console.quotas import (
    spend_test_sends,
)
from mailer.console.settings_checks import (
    CheckResult,
    check_bounces,
    check_dkim,
    check_smtp,
)
from mailer.console.stats import (
    FINAL_EDITION_STATES,
    EditionStats,
    GrowthDay,
    activity_series,
    article_stats,
    clicks_per_article,
    delivery_counts,
    edition_stats,
    link_stats,
    net_growth,
    reader_counts,
    reader_growth,
    recent_editions,
    unsubscribe_reasons,
)
from mailer.console.two_factor import (
    confirm_enrolment,
    provisioning_uri,
    recovery_codes_left,
    set_two_factor_required,
    start_enrolment,
    two_factor_required,
)
from mailer.console.two_factor import (
    disable as disable_two_factor,
)

__all__ = [
    "FINAL_EDITION_STATES",
    "SCOPES",
    "CheckResult",
    "DnsCheck",
    "DnsReport",
    "DnsStatus",
    "EditionStats",
    "GrowthDay",
    "activity_series",
    "article_stats",
    "attempt_login",
    "attempt_second_factor",
    "audit",
    "authenticate",
    "change_own_password",
    "check_bounces",
    "check_dkim",
    "check_smtp",
    "check_token",
    "clicks_per_article",
    "close_session",
    "confirm_enrolment",
    "create_editor",
    "create_token",
    "delivery_counts",
    "disable_two_factor",
    "edition_stats",
    "effective_scope",
    "link_stats",
    "list_editors",
    "net_growth",
    "open_session",
    "provisioning_uri",
    "publication_json",
    "reader_counts",
    "reader_growth",
    "recent_editions",
    "recovery_codes_left",
    "reset_two_factor",
    "run_dns_checks",
    "scope_allows",
    "send_login_notice",
    "session_alive",
    "set_active",
    "set_password",
    "set_role",
    "set_two_factor_required",
    "spend_test_sends",
    "start_enrolment",
    "token_is_admin",
    "two_factor_required",
    "unsubscribe_reasons",
    "update_publication",
]
