"""What a person does in the browser during the end-to-end tests (shared by the e2e test modules)."""

from __future__ import annotations

from tests.support.dex import DEX_USER_EMAIL, DEX_USER_PASSWORD
from tests.support.stack import Stack

DEEP = "/deep/link?x=1&y=two"


def dex_login(page, stack: Stack, email: str = DEX_USER_EMAIL) -> None:  # type: ignore[no-untyped-def]
    """On Dex: pick the password connector if asked, then log in."""
    page.wait_for_url(f"{stack.dex.issuer}/**")
    if page.get_by_text("Log in with Email").count():
        page.get_by_text("Log in with Email").click()
    page.fill("#login", email)
    page.fill("#password", DEX_USER_PASSWORD)
    page.click("#submit-login")


def gate_login(page, stack: Stack, namespace: str, path: str = DEEP,  # type: ignore[no-untyped-def]
               email: str = DEX_USER_EMAIL) -> None:
    """Open a deep link on a gated preview, log in at Dex, land on that same deep link."""
    target = stack.url(namespace, path)
    page.goto(target)
    dex_login(page, stack, email)
    page.wait_for_url(target)


def cookie(page, url: str, name: str) -> dict | None:  # type: ignore[no-untyped-def]
    return next((c for c in page.context.cookies(url) if c["name"] == name), None)


def login_until(page, stack: Stack, start: str, stop: str, email: str = DEX_USER_EMAIL) -> str:  # type: ignore[no-untyped-def]
    """Log in from `start`, and stop the browser before it requests a URL starting with `stop`.

    Playwright's routes never see the hops of a redirect chain, so this asks Chromium itself
    (DevTools' Fetch domain, which pauses every request, redirect hops included) to fail the
    first request to `stop`.  Returns that URL: a ticket or an authorize URL nobody has used.
    """
    caught: list[str] = []
    cdp = page.context.new_cdp_session(page)

    def paused(event) -> None:  # type: ignore[no-untyped-def]
        url = event["request"]["url"]
        if url.startswith(stop) and not caught:
            caught.append(url)
            cdp.send("Fetch.failRequest", {"requestId": event["requestId"], "errorReason": "Aborted"})
        else:
            cdp.send("Fetch.continueRequest", {"requestId": event["requestId"]})

    cdp.on("Fetch.requestPaused", paused)
    cdp.send("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]})
    try:
        try:
            page.goto(start)
        except Exception:  # the navigation we aborted
            pass
        submitted = False
        for _ in range(100):
            if caught:
                return caught[0]
            if page.url.startswith(stack.dex.issuer) and not submitted:
                submitted = True
                try:
                    dex_login(page, stack, email)
                except Exception:  # its navigation may be the one aborted
                    pass
            page.wait_for_timeout(100)
        raise AssertionError(f"the browser never asked for {stop}")
    finally:
        cdp.send("Fetch.disable")
        cdp.detach()
