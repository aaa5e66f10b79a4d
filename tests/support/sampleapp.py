"""A tiny preview app, in the two shapes preview-broker supports.

    python -m tests.support.sampleapp --mode gate  --port 9001 --name pr-1
    python -m tests.support.sampleapp --mode relay --port 9002 --name pr-2 --broker URL --issuer URL \\
        --client-id pr-app --client-secret S
    python -m tests.support.sampleapp --mode evil  --port 9003 --name pr-666 --record FILE

gate:  protected by the ingress (forward auth); shows the identity headers the broker set.
relay: an OAuth client itself; its "Sign in" link goes through the broker's /oauth2/relay; it
       exchanges the code at the IdP with the broker's callback as redirect_uri.
evil:  an attacker's preview app: a gate app that records every request that reaches it
       (headers and cookies included) in FILE, one JSON object a line, and serves any page a
       test asks for at /__page?html=... (its own origin, its own scripts).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import secrets
from html import escape
from urllib.parse import urlencode

import httpx
import uvicorn
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{name}</title>
<style>body{{font:16px system-ui;margin:3rem}} .who{{font-size:1.4rem}}</style></head>
<body><h1>{name} <small>({mode} mode)</small></h1>{body}</body></html>"""


def gate_app(name: str, record: str = "") -> Starlette:
    async def page(request: Request) -> Response:
        if record:
            with open(record, "a") as out:
                out.write(json.dumps({"method": request.method, "path": request.url.path,
                                      "query": request.url.query, "headers": dict(request.headers)}) + "\n")
            if request.url.path == "/__page":
                return HTMLResponse(request.query_params.get("html", ""))
        user = request.headers.get("x-auth-request-user", "")
        email = request.headers.get("x-auth-request-email", "")
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        body = (
            f'<p class="who">Signed in as <b id="user">{escape(user)}</b> (<span id="email">{escape(email)}</span>)</p>'
            f'<p>You are at <code id="path">{escape(path)}</code></p>'
            # Sign-out is a POST from the preview's own page (a GET only asks, on the broker's page).
            '<form method="post" action="/oauth2/sign_out?rd=/"><button id="signout">Sign out</button></form>'
        )
        return HTMLResponse(PAGE.format(name=escape(name), mode="gate", body=body))

    return Starlette(routes=[Route("/{path:path}", page)])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def relay_app(name: str, broker: str, issuer: str, client_id: str, client_secret: str) -> Starlette:
    signer = URLSafeSerializer(secrets.token_urlsafe(32), salt="sampleapp")

    def origin(request: Request) -> str:
        return f"{request.url.scheme}://{request.headers['host']}"

    async def home(request: Request) -> Response:
        try:
            who = signer.loads(request.cookies.get("app_session", ""))
        except BadSignature:
            who = None
        if who:
            body = f'<p class="who">Signed in as <b id="email">{escape(who["email"])}</b> via relay</p>'
        else:
            body = '<p><a id="login" href="/login">Sign in</a></p>'
        return HTMLResponse(PAGE.format(name=escape(name), mode="relay", body=body))

    async def login(request: Request) -> Response:
        state, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        params = {
            "return_to": origin(request) + "/callback",
            "client_id": client_id,
            "response_type": "code",
            "scope": "openid email profile",
            "state": state,
            "code_challenge": _b64(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
        }
        resp = RedirectResponse(f"{broker}/oauth2/relay?{urlencode(params)}", 302)
        resp.set_cookie("app_login", signer.dumps({"state": state, "verifier": verifier}), httponly=True)
        return resp

    async def callback(request: Request) -> Response:
        try:
            login = signer.loads(request.cookies.get("app_login", ""))
        except BadSignature:
            return HTMLResponse("no login in progress", 400)
        if request.query_params.get("state") != login["state"]:
            return HTMLResponse("state mismatch", 400)
        if "code" not in request.query_params:
            return HTMLResponse(f"login failed: {escape(request.query_params.get('error', '?'))}", 400)
        async with httpx.AsyncClient() as http:
            doc = (await http.get(f"{issuer}/.well-known/openid-configuration")).json()
            tokens = await http.post(
                doc["token_endpoint"],
                data={"grant_type": "authorization_code", "code": request.query_params["code"],
                      "redirect_uri": f"{broker}/oauth2/callback", "code_verifier": login["verifier"]},
                auth=(client_id, client_secret),
            )
        if tokens.status_code != 200:
            return HTMLResponse(f"code exchange failed: {escape(tokens.text[:200])}", 502)
        payload = tokens.json()["id_token"].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        resp = RedirectResponse("/", 302)
        resp.set_cookie("app_session", signer.dumps({"email": claims.get("email", "")}), httponly=True)
        resp.delete_cookie("app_login")
        return resp

    return Starlette(routes=[Route("/", home), Route("/login", login), Route("/callback", callback)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["gate", "relay", "evil"], required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--name", default="preview")
    p.add_argument("--broker", default="")
    p.add_argument("--issuer", default="")
    p.add_argument("--client-id", default="")
    p.add_argument("--client-secret", default="")
    p.add_argument("--record", default="", help="evil mode: where to record the requests that reach the app")
    a = p.parse_args()
    if a.mode == "relay":
        app = relay_app(a.name, a.broker, a.issuer, a.client_id, a.client_secret)
    else:
        app = gate_app(a.name, a.record if a.mode == "evil" else "")
    uvicorn.run(app, host=a.host, port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
