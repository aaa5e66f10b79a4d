"""Log lines: RFC 3339 UTC timestamps, JSON or text (LOG_FORMAT), no ANSI copy of uvicorn's messages."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from foundation import logs

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    yield out
    logging.getLogger().handlers[:] = []


def _setup(fmt: str, out: io.StringIO) -> None:
    logs.setup("INFO", fmt)
    logging.getLogger().handlers[0].setStream(out)  # type: ignore[attr-defined]


def test_json_lines_carry_an_rfc3339_utc_time(stream) -> None:
    _setup("json", stream)
    logging.getLogger("preview_broker.test").warning("hello", extra={"host": "pr-1.example.com"})
    line = json.loads(stream.getvalue())
    assert RFC3339_UTC.fullmatch(line["time"]), line["time"]
    assert (line["level"], line["logger"], line["message"], line["host"]) == (
        "WARNING", "preview_broker.test", "hello", "pr-1.example.com")


def test_uvicorn_s_color_message_is_dropped(stream) -> None:
    _setup("json", stream)
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 7,
                                            extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"})
    line = json.loads(stream.getvalue())
    assert line["message"] == "Started server process [7]" and "color_message" not in line
    assert "\\u001b" not in stream.getvalue()


def test_text_lines_for_people(stream) -> None:
    _setup("text", stream)
    logging.getLogger("preview_broker.test").info("refused", extra={"reason": "bad state", "status": 400})
    text = stream.getvalue().rstrip("\n")
    stamp, rest = text.split(" ", 1)
    assert RFC3339_UTC.fullmatch(stamp)
    assert rest == 'INFO    preview_broker.test refused reason="bad state" status=400'


def test_text_values_cannot_forge_a_field_or_a_line(stream) -> None:
    _setup("text", stream)
    logging.getLogger("preview_broker.test").info("refused", extra={"host": 'a level=ERROR\nforged="1"'})
    assert stream.getvalue().count("\n") == 1
    assert 'host="a level=ERROR\\nforged=\\"1\\""' in stream.getvalue()


def test_the_format_is_a_setting_of_both_components() -> None:
    from broker.settings import BrokerSettings
    from controller.settings import ControllerSettings

    for model in (BrokerSettings, ControllerSettings):
        field = model.model_fields["log_format"]
        assert field.default == "json"
        assert set(field.annotation.__args__) == set(logs.FORMATS)  # type: ignore[union-attr]
