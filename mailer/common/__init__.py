"""What every domain shares: service errors, input validation and signed tokens.
"""

from mailer.common.challenge import Challenge, ChallengeError, ChallengeMode, SignupGuard
from mailer.common.errors import Conflict, NotFound, ValidationError
from mailer.common.tokens import Purpose, TokenError, Tokens
from mailer.common.validation import clean_attributes, clean_email, clean_int, clean_timezone, clean_url

__all__ = [
    "Challenge",
    "ChallengeError",
    "ChallengeMode",
    "Conflict",
    "NotFound",
    "Purpose",
    "SignupGuard",
    "TokenError",
    "Tokens",
    "ValidationError",
    "clean_attributes",
    "clean_email",
    "clean_int",
    "clean_timezone",
    "clean_url",
]
