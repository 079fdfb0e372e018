"""`loads`: orjson's parser (about 3x the stdlib's) with the stdlib's errors.

orjson returns the same objects as `json.loads` for every document both accept. Whatever orjson
refuses (invalid UTF-8, UTF-16 text, NaN, integers beyond 64 bits, lone surrogates, trailing data,
truncation) is handed to `json.loads`, which either parses it the stdlib way or raises the
stdlib's own error: the reject reasons (`not_utf8`, `invalid_json`, JSON Lines under a `.json`
name) are read off those errors, so they do not depend on whether orjson is installed.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - orjson is a core dependency; stay correct without it
    orjson = None


def loads(data: bytes | str) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)
