"""Logs are JSON lines and every refusal carries its reason."""

from __future__ import annotations

import io
import json
import logging

from foundation import logs


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
    """Every field name a log call in broker/ and controller/ passes: `extra` dict keys, and the
    keyword context of broker errors (Broker.refuse logs it as extra)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = []
    for path in sorted([*root.glob("broker/**/*.py"), *root.glob("controller/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg == "extra" and isinstance(kw.value, ast.Dict):
                    found += [(path.name, k.lineno, k.value) for k in kw.value.keys
                              if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if called in ("BrokerError", "BadRequest", "Forbidden", "Gone", "IdPError", "IdPTimeout"):
                found += [(path.name, node.lineno, kw.arg) for kw in node.keywords if kw.arg]
    return found


def test_no_log_field_overwrites_a_log_record_attribute() -> None:
    """logging raises KeyError for an `extra` key such as "name": the log call itself would crash
    (it did: a controller reconcile failed after every object it created, with INFO logging on)."""
    reserved = set(vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None))) | {"message", "asctime"}
    fields = _log_field_names()
    assert len(fields) > 40  # the scan really finds the log calls
    assert [f for f in fields if f[2] in reserved] == []
