"""Logs are JSON lines and every refusal carries its reason."""

from __future__ import annotations

import io
import json
import logging

from broker import logs


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
