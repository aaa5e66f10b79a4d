"""One duration syntax for every setting and annotation: 90s, 15m, 12h, 7d, 2w, or sums of them
(1d12h, 1h30m); a bare number is seconds.  Parsed once, into whole seconds."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([wdhms])")
_WHOLE = re.compile(r"(?:\d+[wdhms])+")
EXAMPLES = "90s, 15m, 12h, 7d, 2w or 1d12h"


def parse_duration(value: object) -> int:
    """Seconds of a duration, or ValueError naming the accepted syntax."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration like {EXAMPLES}")
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip().lower()
        if text.isdigit():
            seconds = int(text)
        elif _WHOLE.fullmatch(text):
            seconds = sum(int(n) * UNITS[unit] for n, unit in _PART.findall(text))
        else:
            raise ValueError(f"{value!r} is not a duration like {EXAMPLES}")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest spelling of `seconds` in the same syntax (help texts, effective settings)."""
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in UNITS.items():
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


# A settings field holding seconds, written in the duration syntax (shown back the same way).
Duration = Annotated[int, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
