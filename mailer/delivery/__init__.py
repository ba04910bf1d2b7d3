"""Delivery: the ledger, send lanes, the sweeper, send-rate limits, bounces and SNS.
"""

from mailer.delivery.bounce_mail import PollReport, check_bounce_mailbox, poll_bounce_mailbox
from mailer.delivery.bounces import (
    apply_events,
    confirm_sns_subscription,
    parse_generic,
    parse_json,
    parse_ses,
)
from mailer.delivery.lane import SkeletonCache, run_lane
from mailer.delivery.ledger import RETRY_EDITION_STATES, RetryResult, list_deliveries, retry_deliveries
from mailer.delivery.ratelimit import RateLimiter, make_rate_limiter
from mailer.delivery.sns import verify_sns_message
from mailer.delivery.sweeper import sweep

__all__ = [
    "RETRY_EDITION_STATES",
    "PollReport",
    "RateLimiter",
    "RetryResult",
    "SkeletonCache",
    "apply_events",
    "check_bounce_mailbox",
    "confirm_sns_subscription",
    "list_deliveries",
    "make_rate_limiter",
    "parse_generic",
    "parse_json",
    "parse_ses",
    "poll_bounce_mailbox",
    "retry_deliveries",
    "run_lane",
    "sweep",
    "verify_sns_message",
]
