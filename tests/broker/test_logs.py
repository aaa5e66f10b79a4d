"""Logs are JSON lines and every refusal carries its reason."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from broker.app import create_app
from foundation import logs
from tests.support.brokerunit import PR2, PUBLIC, make_settings
from tests.support.flows import callback, query_of


def test_refusal_log_line_is_json_with_reason(client, capsys) -> None:
    stream = io.StringIO()
    logs.setup("INFO")
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        client.get("/oauth2/start", params={"rd": "https://evil.com/"})
    finally:
        logging.getLogger().handlers[:] = []
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    refusal = next(line for line in lines if line.get("message") == "refused")
    assert refusal["reason"] == "redirect_host_not_allowed"
    assert refusal["endpoint"] == "start" and refusal["level"] == "WARNING" and refusal["status"] == 400


def _log_field_names() -> list[tuple[str, int, str]]:
    """Every field name a log call in broker/, controller/ and kube/ passes: `extra` dict keys, the
    keyword fields of BoundedLog.log and .refused, and the keyword context of broker errors
    (Broker.refuse logs it as extra)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = []
    for path in sorted([*root.glob("broker/**/*.py"), *root.glob("controller/**/*.py"), *root.glob("kube/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "extra" and isinstance(kw.value, ast.Dict):
                    found += [(path.name, k.lineno, k.value) for k in kw.value.keys
                              if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if called in ("BrokerError", "BadRequest", "Forbidden", "Gone", "IdPError", "IdPTimeout") or (
                    called in ("log", "refused") and "bounded_log" in ast.unparse(node.func)):
                found += [(path.name, node.lineno, kw.arg) for kw in node.keywords if kw.arg and kw.arg != "level"]
    return found


def test_no_log_field_overwrites_a_log_record_attribute() -> None:
    """logging raises KeyError for an `extra` key such as "name": the log call itself would crash
    (it did: a controller reconcile failed after every object it created, with INFO logging on)."""
    reserved = set(vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None))) | {"message", "asctime"}
    fields = _log_field_names()
    assert len(fields) > 40  # the scan really finds the log calls
    assert [f for f in fields if f[2] in reserved] == []


# What clients and identity providers can put in a field: ANSI colour and screen codes, BEL, CR/LF
# and a forged field, DEL, NEL (U+0085) and a C1 CSI, the line and paragraph separators, a bidi
# override, zero-width characters, a tag character (format, beyond the BMP), a lone surrogate (a
# path decoded with surrogateescape), and text that looks like an escape already.
HOSTILE = ("ada\x1b[31m\x1b[2J\x07\r\n2026-01-01T00:00:00.000Z ERROR forged x=1 \x7f\x85\x9b"
           "\u2028\u2029\u202e\u200b\ufeff\U000e0001\udcff \\x1b \\u2028 \" end")
_FIELD = re.compile(r' ([^ =]+)=("(?:[^"\\]|\\.)*"|[^ ]*)')
_ESCAPE = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}|.)")


def unescape(text: str) -> str:
    """What escape_text did, undone: the proof that its escaping loses nothing."""
    def one(m: re.Match[str]) -> str:
        esc = m[1]
        return chr(int(esc[1:], 16)) if len(esc) > 1 else {"n": "\n", "r": "\r", "t": "\t"}.get(esc, esc)
    return _ESCAPE.sub(one, text)


def text_fields(line: str) -> dict[str, str]:
    return {k: unescape(v[1:-1] if v.startswith('"') else v) for k, v in _FIELD.findall(line)}


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.setup("INFO", "text")  # the real set-up, as the broker and the controller call it
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    yield stream
    logging.getLogger().handlers[:] = []


def _one_printable_line(stream: io.StringIO) -> str:
    text = stream.getvalue()
    assert text.endswith("\n") and len(text.splitlines()) == 1, text  # splitlines knows U+2028, U+0085, ...
    line = text[:-1]
    assert all(" " <= c <= "~" for c in line), [c for c in line if not " " <= c <= "~"]
    return line


FIELDS = sorted({name for _, _, name in _log_field_names()} | {"request_id"})


@pytest.mark.parametrize("field", FIELDS)
def test_every_text_log_field_is_escaped_and_reversible(text_log, field: str) -> None:
    """User, email, host, reason, IdP error texts, API server messages, namespace and object names:
    every field a log call names, carrying what an outsider sent, stays on its one line, printable."""
    logging.getLogger("preview_broker.broker").warning("refused", extra={field: HOSTILE, "status": 400})
    line = _one_printable_line(text_log)
    assert text_fields(line) == {field: HOSTILE, "status": "400"}


def test_the_text_message_and_a_plain_value_are_escaped_too(text_log) -> None:
    logging.getLogger("uvicorn.error").warning("bad %s", HOSTILE.replace(" ", "_").replace('"', "_"),
                                               extra={"host": "a\\b"})
    line = _one_printable_line(text_log)
    assert "bad ada\\x1b[31m" in line and " host=a\\\\b" in line


def test_text_escaping_is_injective(text_log) -> None:
    """"\\x1b" typed as four characters is not the escape character ESC, in a field or a message."""
    log = logging.getLogger("preview_broker.broker")
    log.warning("\x1b", extra={"user": "\x1b"})
    log.warning("\\x1b", extra={"user": "\\x1b"})
    first, second = text_log.getvalue().splitlines()
    assert first.split(" ", 3)[3] != second.split(" ", 3)[3]
    assert (text_fields(first)["user"], text_fields(second)["user"]) == ("\x1b", "\\x1b")


def test_a_traceback_cannot_forge_a_record(text_log) -> None:
    try:
        raise ValueError("boom\n2026-01-01T00:00:00.000Z ERROR   forged\u2028also\x1b[2J")
    except ValueError:
        logging.getLogger("preview_broker.broker").exception("internal_error", extra={"endpoint": "auth"})
    first, *rest = text_log.getvalue().rstrip("\n").split("\n")
    assert first.endswith("internal_error endpoint=auth")
    assert rest and all(line.startswith("    ") for line in rest)
    assert all(" " <= c <= "~" for line in rest for c in line)
    assert "    2026-01-01T00:00:00.000Z ERROR   forged\\u2028also\\x1b[2J" in rest


def test_json_lines_escape_line_separators_and_controls(capsys) -> None:
    stream = io.StringIO()
    logs.setup("INFO", "json")
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        logging.getLogger("preview_broker.broker").warning(HOSTILE, extra={"user": HOSTILE})
    finally:
        logging.getLogger().handlers[:] = []
    text = stream.getvalue()
    assert len(text.splitlines()) == 1 and text.isascii()
    line = json.loads(text)
    assert (line["message"], line["user"]) == (HOSTILE, HOSTILE)


def test_an_idp_error_text_reaches_the_text_log_escaped(text_log, allowlist, clock, idp) -> None:
    """A relay callback's `error` comes from the identity provider (or whoever holds the link):
    driven through the app, its ESC and U+2028 are escaped in exactly one log line."""
    app_client = "pr-app"
    app = create_app(make_settings(relay_client_ids=[app_client], log_format="text"), allowlist=allowlist, clock=clock)
    with TestClient(app, base_url=PUBLIC, follow_redirects=False) as client:
        text_log.truncate(0)
        text_log.seek(0)
        start = client.get("/oauth2/relay", params={"return_to": f"https://{PR2}/auth/callback", "client_id": app_client,
                                                    "response_type": "code"}, headers={"referer": f"https://{PR2}/"})
        state = query_of(start.headers["location"])["state"]
        text_log.truncate(0)
        text_log.seek(0)
        resp = callback(client, error="denied\x1b[2J\u2028forged=1", state=state)
        assert resp.status_code == 302
        line = _one_printable_line(text_log)
    assert " login_returned " in line and text_fields(line)["error"] == "denied\x1b[2J\u2028forged=1"
    assert 'error="denied\\x1b[2J\\u2028forged=1"' in line
