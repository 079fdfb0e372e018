"""`loads`: orjson's parser (about 3x the stdlib's) with the stdlib's errors.

orjson returns the same objects as `json.loads` for every document both accept. Whatever orjson
refuses (invalid UTF-8, UTF-16 text, NaN, integers beyond 64 bits, lone surrogates, trailing data,
truncation) is handed to `json.loads`, which either parses it the stdlib way or raises the
stdlib's own error: the reject reasons (`not_utf8`, `invalid_json`, JSON Lines under a `.json`
name) are read off those errors, so they do not depend on whether orjson is installed. A
document nested too deeply for either parser is a ValueError too, not a RecursionError.

A document only the stdlib accepts may hold lone UTF-16 surrogates (a `\\ud800` escape without
its pair, as a tool output cut mid-character can produce). No UTF-8 writer (Arrow, orjson)
accepts them, so they become U+FFFD, the replacement character, as a UTF-8 decoder with
`errors="replace"` would make them; the record is kept.
"""

from __future__ import annotations

import json
import re
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a core dependency; stay correct without it
    orjson = None


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads joins valid pairs, so any left is lone


def loads(data: bytes | str) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    try:
        return replace_lone_surrogates(json.loads(data))
    except RecursionError:  # orjson stops at 1024 levels, the stdlib at the interpreter's limit
        raise ValueError("JSON nested deeper than the parser allows (over ~1000 levels)") from None


def replace_lone_surrogates(obj: Any) -> Any:
    """`obj` with every lone surrogate in its strings (keys too) replaced by U+FFFD."""
    if isinstance(obj, str):
        return _LONE_SURROGATE.sub("\ufffd", obj)
    if isinstance(obj, list):
        return [replace_lone_surrogates(v) for v in obj]
    if isinstance(obj, dict):
        return {replace_lone_surrogates(k): replace_lone_surrogates(v) for k, v in obj.items()}
    return obj
