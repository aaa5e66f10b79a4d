"""Every line a login flow logs carries the id of the request that caused it: the proxy's
well-formed X-Request-Id, else one the broker makes up; the lines of one request share it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest

from foundation import logs
from tests.support.brokerunit import PR1
from tests.support.flows import forward_auth, gate_login, start_gate


@pytest.fixture
def logged() -> Iterator[Callable[[], list[dict]]]:
    """The JSON lines logged so far, as dicts."""
    stream = io.StringIO()
    logs.setup("INFO")
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    finally:
        logging.getLogger().handlers[:] = []


def test_each_step_of_a_gate_login_logs_the_id_of_its_request(client, idp, logged) -> None:
    ticket_url = gate_login(client, idp, f"https://{PR1}/")  # login start, then the callback
    forward_auth(client, ticket_url)  # the ticket, redeemed on the preview host
    client.post("/oauth2/sign_out", headers={"origin": str(client.base_url).rstrip("/"),
                                             "sec-fetch-site": "same-origin"})
    by_message = {line["message"]: line for line in logged()}
    steps = ("login_started", "login_authorized", "session_issued", "signed_out")
    assert set(steps) <= by_message.keys()
    ids = [by_message[m]["request_id"] for m in steps]
    assert all(len(i) == 32 for i in ids) and len(set(ids)) == len(steps)  # made up, one per request


def test_a_well_formed_incoming_id_is_kept_and_a_forged_one_replaced(client, logged) -> None:
    # Refusals go through the bounded log (one line per kind and host and window): two kinds, two lines.
    client.get("/oauth2/start", params={"rd": "https://evil.com/"}, headers={"x-request-id": "trace-7f3a.01"})
    client.get("/oauth2/callback", params={"code": "c", "state": "junk"}, headers={"x-request-id": 'x" level="ERROR'})
    refusals = [line for line in logged() if line["message"] == "refused"]
    assert [r["request_id"] for r in refusals][:1] == ["trace-7f3a.01"]
    assert len(refusals) == 2 and len(refusals[1]["request_id"]) == 32


def test_the_lines_of_one_request_share_its_id(client, idp, logged) -> None:
    params = start_gate(client, idp, f"https://{PR1}/")
    client.get("/oauth2/callback", params={"code": "code-1", "state": params["state"]},
               headers={"x-request-id": "cb-1"})
    client.get("/oauth2/callback", params={"code": "code-1", "state": params["state"]},
               headers={"x-request-id": "cb-2"})  # the same state again: refused
    lines = logged()
    assert [line["request_id"] for line in lines if line["message"] == "login_authorized"] == ["cb-1"]
    assert [line["request_id"] for line in lines if line["message"] == "refused"] == ["cb-2"]


def test_lines_outside_a_request_carry_no_id(logged) -> None:
    logging.getLogger("preview_broker.test").info("outside")
    (line,) = logged()
    assert "request_id" not in line
