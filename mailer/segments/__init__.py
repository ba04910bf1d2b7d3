"""Audiences (segments): saved rules over readers (topics, frequency, signup source and
date, engagement), combined with all/any, compiled to SQL. Digests can target one.
"""

from mailer.segments.rules import FIELDS, clean_definition, condition
from mailer.segments.service import (
    checked_definition,
    count_readers,
    get_segment,
    save_segment,
    segment_json,
)

__all__ = [
    "FIELDS",
    "checked_definition",
    "clean_definition",
    "condition",
    "count_readers",
    "get_segment",
    "save_segment",
    "segment_json",
]
