"""The real Dex identity provider on loopback: memory storage, one static client and user."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from tests.support.procs import Proc, free_port, http_ok, wait_until
from tests.support.testbin import binary

if TYPE_CHECKING:
    from tests.support.tls import Certs

DEX_CLIENT_ID = "preview-broker"
DEX_CLIENT_SECRET = "dex-client-secret-for-tests-only"
# A preview app that is its own OAuth client (relay mode); never the broker's gate client.
APP_CLIENT_ID = "pr-app"
APP_CLIENT_SECRET = "pr-app-secret-for-tests-only"
DEX_USER_EMAIL = "admin@example.com"
DEX_USER_PASSWORD = "password"
# A second person, for the attacks the end-to-end tests replay (same password, another account).
ATTACKER_EMAIL = "mallory@example.com"
# People whose names look alike (issue 25, item 2), and one in 500 groups of 64 characters (item 3).
ADA_EMAIL = "ada@example.com"
LOOKALIKES = {  # email -> preferred_username
    ADA_EMAIL: "ada",
    "ada.zwsp@example.com": "ada\u200b",  # ada and a ZERO WIDTH SPACE
    "ada.wide@example.com": "\uff41\uff44\uff41",  # fullwidth ａｄａ
    "jose.nfc@example.com": "jos\u00e9",  # é precomposed
    "jose.nfd@example.com": "jose\u0301",  # e and a COMBINING ACUTE ACCENT
}
MANY_GROUPS_EMAIL = "many@example.com"
# 500 distinct names of 64 characters, random past their number as an enterprise IdP's ids are (names
# that repeat would compress to nothing in a ticket and prove nothing).
_rng = random.Random(25)
MANY_GROUPS = [f"g{i:03d}-" + "".join(_rng.choices(string.ascii_lowercase + string.digits, k=59)) for i in range(500)]
# bcrypt("password"), the example hash from Dex's own documentation.
DEX_USER_HASH = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"


@dataclass
class Dex:
    proc: Proc
    issuer: str
    port: int

    def stop(self) -> None:
        self.proc.stop()


def app_client(redirect_uris: list[str]) -> dict:
    """Dex's entry for the relay app client: its redirect URI is the broker's master callback."""
    return {"id": APP_CLIENT_ID, "secret": APP_CLIENT_SECRET, "name": "preview app", "redirectURIs": redirect_uris}


def start_dex(workdir: Path, redirect_uris: list[str], extra_clients: list[dict] | None = None,
              certs: Certs | None = None, host: str = "127.0.0.1") -> Dex:
    """Dex on loopback; over https with `certs` (its issuer is then https://127.0.0.1:<port>/dex).

    `host`: another local address to listen on, e.g. a node's, which pods reach and loopback is not.
    """
    port = free_port()
    issuer = f"{'https' if certs else 'http'}://{host}:{port}/dex"
    web = ({"https": f"{host}:{port}", "tlsCert": str(certs.cert_file), "tlsKey": str(certs.key_file)}
           if certs else {"http": f"{host}:{port}"})
    config = {
        "issuer": issuer,
        "storage": {"type": "memory"},
        "web": web,
        "logger": {"level": "info", "format": "json"},
        "oauth2": {"skipApprovalScreen": True, "responseTypes": ["code"]},
        "enablePasswordDB": True,
        "staticPasswords": [
            {"email": DEX_USER_EMAIL, "hash": DEX_USER_HASH, "username": "admin", "preferredUsername": "admin",
             "userID": "08a8684b-db88-4b73-90a9-3cd1661f5466"},
            {"email": ATTACKER_EMAIL, "hash": DEX_USER_HASH, "username": "mallory", "preferredUsername": "mallory",
             "userID": "5c3b0a3e-6c47-4f7e-9d7e-3a1f4a2b9c66"},
            *({"email": email, "hash": DEX_USER_HASH, "username": name, "preferredUsername": name,
               "userID": f"lookalike-{i}"} for i, (email, name) in enumerate(LOOKALIKES.items())),
            {"email": MANY_GROUPS_EMAIL, "hash": DEX_USER_HASH, "username": "many", "preferredUsername": "many",
             "userID": "many-groups", "groups": MANY_GROUPS},
        ],
        "staticClients": [
            {"id": DEX_CLIENT_ID, "secret": DEX_CLIENT_SECRET, "name": "preview-broker", "redirectURIs": redirect_uris},
            *(extra_clients or []),
        ],
        "connectors": [{"type": "mockCallback", "id": "mock", "name": "Mock"}],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = workdir / "dex.yaml"
    cfg.write_text(yaml.safe_dump(config))
    proc = Proc("dex", [str(binary("dex")), "serve", str(cfg)], workdir / "dex.log").start()
    verify = certs.context() if certs else True
    wait_until(http_ok(f"{issuer}/.well-known/openid-configuration", verify=verify), "Dex discovery", 30, proc)
    return Dex(proc, issuer, port)
