"""The signup proof of work: a puzzle the reader's browser solves before a signup
counts, so that a script signing up thousands of addresses pays for each one.
Self-hosted, no third party, no cookie (ALTCHA-style).

The server picks a random number n in [0, max] and a salt, and hands out
`salt:sha256(salt + n):signature`. The browser tries 0, 1, 2... until the hash
matches (on average max/2 hashes; never more than max) and posts n back with the
challenge. Checking costs the server one SHA-256 and one HMAC:

- the signature (HMAC-SHA256 with a key of its own, `purpose_key`) proves the
  challenge is ours and that nobody changed its expiry or size, both in the salt;
- the expiry bounds how long a solved challenge can be kept in stock;
- a solved challenge is spent once: its random part is recorded where every web
  process sees it (Redis when configured, else the rate-limit SQLite file of the
  embedded default) until it would have expired anyway.

When one is required (`MAILER_SIGNUP_CHALLENGE`): `always`, `off`, or `auto` (the
default), which asks for it once the client's address has used half of any of
its signup rate-limit windows, so that readers normally never wait for it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from limits import parse_many
from limits.storage import Storage, storage_from_string

from mailer.common.limits_storage import SQLiteStorage
from mailer.common.tokens import purpose_key

log = logging.getLogger(__name__)

# Importing the embedded default's storage registers its scheme with `limits`.
STORAGE_SCHEMES = SQLiteStorage.STORAGE_SCHEME
PURPOSE = "signup-challenge"
TTL_SECONDS = 30 * 60
MAX_DIFFICULTY = 100_000_000  # nine digits at most in a solution
# The flask-limiter scope of the signup routes (`shared_limit(..., scope="signup")`).
SIGNUP_SCOPE = "signup"

_VALUE_RE = re.compile(r"([0-9]{10})\.([0-9]{1,9})\.([0-9a-f]{24}):([0-9a-f]{64}):([0-9a-f]{64})",
                       re.ASCII)
_SOLUTION_RE = re.compile(r"[0-9]{1,9}", re.ASCII)


class ChallengeMode(StrEnum):
    AUTO = "auto"
    ALWAYS = "always"
    OFF = "off"


class ChallengeError(Exception):
    """The challenge is missing, not ours, expired, unsolved or already used.
    `reason` is one of: missing, malformed, forged, expired, wrong, spent."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Challenge:
    salt: str  # "<expires>.<max>.<random hex>"
    digest: str  # sha256(salt + n), hex
    signature: str
    max_number: int
    expires: int

    @property
    def value(self) -> str:
        """What the form carries back, unchanged."""
        return f"{self.salt}:{self.digest}:{self.signature}"

    def as_json(self) -> dict[str, object]:
        return {"challenge": self.value, "salt": self.salt, "digest": self.digest,
                "max": self.max_number, "algorithm": "SHA-256"}


def _sign(secret_key: str, salt: str, digest: str) -> str:
    return hmac.new(purpose_key(secret_key, PURPOSE), f"{salt}:{digest}".encode(),
                    hashlib.sha256).hexdigest()


def _hash(salt: str, number: int) -> str:
    return hashlib.sha256(f"{salt}{number}".encode()).hexdigest()


def issue(secret_key: str, max_number: int, *, now: float | None = None,
          ttl: int = TTL_SECONDS, number: int | None = None) -> Challenge:
    """A fresh challenge; `number` (the answer) is for tests only."""
    max_number = max(1, min(int(max_number), MAX_DIFFICULTY))
    expires = int(now if now is not None else time.time()) + ttl
    salt = f"{expires}.{max_number}.{secrets.token_hex(12)}"
    answer = secrets.randbelow(max_number + 1) if number is None else number
    digest = _hash(salt, answer)
    return Challenge(salt, digest, _sign(secret_key, salt, digest), max_number, expires)


def solve(challenge: Challenge) -> int:
    """What a browser does, in Python (for tests)."""
    for n in range(challenge.max_number + 1):
        if _hash(challenge.salt, n) == challenge.digest:
            return n
    raise ValueError("no solution")


def check(secret_key: str, value: object, solution: object, *,
          now: float | None = None) -> tuple[str, int]:
    """Check a posted challenge and answer without spending it; returns the key
    under which it is spent and the seconds that key must be kept."""
    if not solution:  # nothing solved it: no script ran, or it had no time to
        raise ChallengeError("missing")
    if not isinstance(value, str) or not isinstance(solution, str) \
            or len(value) > 200 or len(solution) > 12:
        raise ChallengeError("malformed")
    match = _VALUE_RE.fullmatch(value)
    if match is None:
        raise ChallengeError("malformed")
    expires_raw, _max, random_part, digest, signature = match.groups()
    salt = value.split(":", 1)[0]
    if not hmac.compare_digest(signature, _sign(secret_key, salt, digest)):
        raise ChallengeError("forged")
    left = int(expires_raw) - (now if now is not None else time.time())
    if left <= 0:
        raise ChallengeError("expired")
    answer = solution.strip()
    if _SOLUTION_RE.fullmatch(answer) is None or int(answer) > int(_max):
        raise ChallengeError("wrong")
    if not hmac.compare_digest(_hash(salt, int(answer)), digest):
        raise ChallengeError("wrong")
    return random_part, int(left) + 60


class SignupGuard:
    """Issues and checks signup challenges for one process, says when one is
    required, and records spent ones in storage every process shares."""

    def __init__(self, secret_key: str, mode: str, difficulty: int, storage_uri: str,
                 signup_limit: str, storage: Storage | None = None) -> None:
        self.secret_key = secret_key
        self.mode = ChallengeMode(mode)
        self.difficulty = max(1, min(difficulty, MAX_DIFFICULTY))
        self.storage_uri = storage_uri
        self.signup_limit = signup_limit
        self._storage = storage
        try:
            self._limits = parse_many(signup_limit) if signup_limit else []
        except ValueError:
            self._limits = []

    @property
    def storage(self) -> Storage:
        storage = self._storage
        if storage is None:
            made = storage_from_string(self.storage_uri)
            if not isinstance(made, Storage):
                raise ValueError(f"{self.storage_uri}: not a synchronous limits storage")
            storage = self._storage = made
        return storage

    def required(self, ip: str, *, counted: bool) -> bool:
        """Whether a signup from `ip` must carry a solved challenge. `counted`:
        the current request has already been counted by the rate limiter (a
        POST), so it is left out: the form and its POST get the same answer."""
        if self.mode == ChallengeMode.ALWAYS:
            return True
        if self.mode == ChallengeMode.OFF or not self._limits:
            return False
        for item in self._limits:
            # The counter flask-limiter keeps for this window (one read; the fixed-window
            # strategy names it `item.key_for(ip, scope)`).
            try:
                count = self.storage.get(item.key_for(ip, SIGNUP_SCOPE))
            except Exception:  # storage down: the rate limiter says so; signups go on
                log.warning("signup challenge: rate-limit storage unreadable", exc_info=True)
                return False
            if (count - (1 if counted else 0)) * 2 >= item.amount:
                return True
        return False

    def issue(self) -> Challenge:
        return issue(self.secret_key, self.difficulty)

    def verify(self, value: object, solution: object) -> None:
        """Raise ChallengeError unless the challenge is ours, alive, solved and
        used for the first time (then it is spent)."""
        key, keep = check(self.secret_key, value, solution)
        try:
            uses = self.storage.incr(f"mailer-challenge-spent/{key}", keep)
        except Exception:  # storage down: the work was done and checked; let it count
            log.warning("signup challenge: cannot record a spent challenge", exc_info=True)
            return
        if uses != 1:
            raise ChallengeError("spent")
