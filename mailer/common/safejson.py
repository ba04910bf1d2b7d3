"""JSON from strangers, parsed safely: nesting depth is checked on the raw text
before the parser runs (a 20,000-deep array would otherwise raise RecursionError),
and strings holding lone UTF-16 surrogates (`"\\ud800"`, valid JSON but not
valid Unicode: the database and the UTF-8 encoder refuse them) are refused.
Both raise ValueError, which every caller already turns into a 400."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class UnsafeJSON(ValueError):
    pass


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    depth = 0
    for bracket in _BRACKETS.findall(_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > max_depth:
                raise UnsafeJSON(f"JSON nested deeper than {max_depth} levels")
        else:
            depth -= 1


def _check_strings(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise UnsafeJSON("JSON string with a lone surrogate (not valid Unicode)")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def loads(raw: str | bytes | bytearray, **kwargs: Any) -> Any:
    text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
    check_depth(text)
    value = json.loads(text, **kwargs)
    _check_strings(value)
    return value
