"""One duration syntax for both components (foundation.durations)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from foundation.durations import Duration, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("1d12h", 129600),
     ("1h30m", 5400), ("0s", 0), ("600", 600), (600, 600), (" 72H ", 259200), ("1w1d1h1m1s", 694861)],
)
def test_the_syntax(text, seconds) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "h", "12", "1.5h", "12hours", "-5m", "1h 30m", "forever", "3y", True, -1,
                                 "1e3", "0x10"])
def test_what_is_refused_names_the_syntax(bad) -> None:
    if bad == "12":
        assert parse_duration(bad) == 12  # a bare number is seconds
        return
    with pytest.raises(ValueError) as err:
        parse_duration(bad)
    assert "duration like 90s, 15m, 12h, 7d, 2w" in str(err.value) or "negative" in str(err.value)


@pytest.mark.parametrize("seconds", [0, 1, 59, 60, 3600, 86399, 86400, 129600, 1209600, 694861])
def test_formatting_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_a_settings_field_parses_once_and_shows_the_syntax() -> None:
    class S(BaseModel):
        ttl: Duration

    assert S(ttl="12h").ttl == 43200
    assert S(ttl="12h").model_dump() == {"ttl": "12h"}
    with pytest.raises(ValidationError):
        S(ttl="soon")
