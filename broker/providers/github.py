"""GitHub (and GitHub Enterprise) OAuth Apps: user, verified primary email, orgs and teams."""

from __future__ import annotations

from typing import Any

import httpx

from broker.errors import IdPError
from broker.identity import Identity
from broker.providers.base import idp_call, json_body, token_response
from broker.settings import BrokerSettings


class GitHubProvider:
    uses_nonce = False  # OAuth 2.0 only: no ID token to carry a nonce; PKCE binds the code

    def __init__(self, settings: BrokerSettings, http: httpx.AsyncClient) -> None:
        base = settings.github_url.rstrip("/")
        self.name = base
        self.web = base
        self.api = "https://api.github.com" if base == "https://github.com" else base + "/api/v3"
        self._settings = settings
        self._http = http
        self._needs_membership = bool(settings.github_orgs or settings.github_teams)

    async def authorization_endpoint(self) -> str:
        return self.web + "/login/oauth/authorize"

    def gate_params(self) -> dict[str, str]:
        scope = "read:user user:email" + (" read:org" if self._needs_membership else "")
        return {"scope": scope, "code_challenge_method": "S256"}

    async def identity_from_code(self, code: str, *, code_verifier: str, nonce: str) -> Identity:
        form = {
            "client_id": self._settings.client_id,
            "client_secret": self._settings.client_secret,
            "code": code,
            "redirect_uri": self._settings.callback_url,
            "code_verifier": code_verifier,
        }
        async with idp_call("token"):
            resp = await self._http.post(
                self.web + "/login/oauth/access_token", data=form, headers={"Accept": "application/json"}
            )
        token = token_response(resp)["access_token"]
        user = await self._get(token, "/user")
        emails = await self._get(token, "/user/emails")
        primary = next(
            (e for e in emails if isinstance(e, dict) and e.get("primary") and e.get("verified")),
            None,
        ) if isinstance(emails, list) else None
        groups: list[str] = []
        if self._needs_membership:
            orgs = await self._get(token, "/user/orgs")
            teams = await self._get(token, "/user/teams")
            groups += [o["login"] for o in orgs if isinstance(o, dict) and "login" in o]
            groups += [
                f"{t['organization']['login']}/{t['slug']}"
                for t in teams
                if isinstance(t, dict) and "slug" in t and isinstance(t.get("organization"), dict)
            ]
        if not isinstance(user, dict) or not isinstance(user.get("login"), str):
            raise IdPError("idp_bad_response", "GitHub sent no user login.")
        return Identity(
            user=user["login"],
            email=primary["email"] if primary else "",
            email_verified=primary is not None,
            groups=tuple(groups),
        )

    async def _get(self, token: str, path: str) -> Any:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        async with idp_call(f"GitHub {path}"):
            resp = await self._http.get(self.api + path, headers=headers, params={"per_page": "100"} if path != "/user" else None)
        if resp.status_code != 200:
            raise IdPError("idp_error", f"GitHub answered {resp.status_code} for {path}.")
        return json_body(resp, f"GitHub {path}")
