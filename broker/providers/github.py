"""GitHub (and GitHub Enterprise) OAuth Apps: user, verified primary email, orgs and teams.

GitHub's answers are checked for shape at this boundary: a field of the wrong type is the
IdP's error (502), never a crash.  Org and team lists follow the `Link: rel="next"` pages
(100 entries each), up to MAX_PAGES.
"""

from __future__ import annotations

from typing import Any

from broker.errors import IdPError
from broker.identity import Identity
from broker.providers.base import (
    Transports,
    exchange_code,
    http_client,
    idp_call,
    json_body,
    oauth_client,
)
from broker.settings import BrokerSettings

MAX_PAGES = 20  # 2,000 orgs or teams: more than any one person belongs to


def _bad(what: str) -> IdPError:
    return IdPError("idp_bad_response", f"GitHub sent a malformed answer ({what}).")


class GitHubProvider:
    uses_nonce = False  # OAuth 2.0 only: no ID token to carry a nonce; PKCE binds the code

    def __init__(self, settings: BrokerSettings, transports: Transports | None = None) -> None:
        base = settings.github_url.rstrip("/")
        self.name = base
        self.web = base
        self.api = "https://api.github.com" if base == "https://github.com" else base + "/api/v3"
        self._settings = settings
        self._http = http_client(settings, transports)
        self._oauth = oauth_client(settings, "client_secret_post", transports)  # GitHub takes the secret in the form
        self._needs_membership = bool(settings.github_orgs or settings.github_teams)

    async def authorization_endpoint(self) -> str:
        return self.web + "/login/oauth/authorize"

    def gate_params(self) -> dict[str, str]:
        scope = "read:user user:email" + (" read:org" if self._needs_membership else "")
        return {"scope": scope, "code_challenge_method": "S256"}

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._oauth.aclose()

    async def identity_from_code(self, code: str, *, code_verifier: str, nonce: str) -> Identity:
        tokens = await exchange_code(self._oauth, self.web + "/login/oauth/access_token", code=code,
                                     redirect_uri=self._settings.callback_url, code_verifier=code_verifier)
        token = tokens["access_token"]
        user = await self._get(token, "/user")
        if not isinstance(user, dict) or not isinstance(user.get("login"), str) or not user["login"]:
            raise _bad("/user has no login")
        emails = await self._list(token, "/user/emails")
        primary = next((e for e in emails if isinstance(e, dict) and e.get("primary") is True
                        and e.get("verified") is True and isinstance(e.get("email"), str)), None)
        groups: list[str] = []
        if self._needs_membership:
            for org in await self._list(token, "/user/orgs"):
                if not isinstance(org, dict) or not isinstance(org.get("login"), str):
                    raise _bad("/user/orgs entry without a login")
                groups.append(org["login"])
            for team in await self._list(token, "/user/teams"):
                org = team.get("organization") if isinstance(team, dict) else None
                if not isinstance(team, dict) or not isinstance(team.get("slug"), str) or not isinstance(org, dict) \
                        or not isinstance(org.get("login"), str):
                    raise _bad("/user/teams entry without a slug or organization.login")
                groups.append(f"{org['login']}/{team['slug']}")
        return Identity(
            user=user["login"],
            email=primary["email"] if primary else "",
            email_verified=primary is not None,
            groups=tuple(groups),
        )

    def _headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    async def _get(self, token: str, path: str) -> Any:
        async with idp_call(f"GitHub {path}"):
            resp = await self._http.get(self.api + path, headers=self._headers(token))
        if resp.status_code != 200:
            raise IdPError("idp_error", f"GitHub answered {resp.status_code} for {path}.")
        return json_body(resp, f"GitHub {path}")

    async def _list(self, token: str, path: str) -> list[Any]:
        """Every entry of a paginated GitHub list, following its Link headers."""
        url: str | None = self.api + path
        params: dict[str, str] | None = {"per_page": "100"}
        out: list[Any] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return out
            async with idp_call(f"GitHub {path}"):
                resp = await self._http.get(url, headers=self._headers(token), params=params)
            if resp.status_code != 200:
                raise IdPError("idp_error", f"GitHub answered {resp.status_code} for {path}.")
            page = json_body(resp, f"GitHub {path}")
            if not isinstance(page, list):
                raise _bad(f"{path} is not a list")
            out += page
            nxt = resp.links.get("next", {}).get("url")
            # Only GitHub's own API may be asked: a Link elsewhere would receive the user's token.
            url = nxt if nxt and nxt.startswith(self.api + "/") else None
            params = None  # the next link carries its own query
        raise _bad(f"{path} has more than {MAX_PAGES} pages")
