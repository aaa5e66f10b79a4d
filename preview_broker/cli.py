"""`preview-broker broker|controller`: the one console script of the project."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from foundation.config import ConfigError, describe, load

EPILOG_BROKER = """\
Settings (environment variables; a --config YAML file may provide them too,
keys without the prefix, the environment wins):

{settings}

Example (local development, static allowlist, plain http):
  PREVIEW_BROKER_PUBLIC_URL=http://auth.localhost:8080 \\
  PREVIEW_BROKER_PREVIEW_DOMAINS=preview.localhost \\
  PREVIEW_BROKER_ALLOWED_HOSTS=pr-1.preview.localhost \\
  PREVIEW_BROKER_ALLOW_HTTP=true PREVIEW_BROKER_PROVIDER=oidc \\
  PREVIEW_BROKER_OIDC_ISSUER=http://127.0.0.1:5556/dex \\
  PREVIEW_BROKER_CLIENT_ID=preview PREVIEW_BROKER_CLIENT_SECRET=... \\
  PREVIEW_BROKER_SECRET_KEYS=$(python -c 'import secrets;print(secrets.token_urlsafe(32))') \\
  PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS='*' preview-broker broker --port 8080
"""


def _known_fields() -> tuple[set[str], set[str]]:
    from broker.settings import BrokerSettings
    from controller.settings import ControllerSettings

    return set(BrokerSettings.model_fields), set(ControllerSettings.model_fields)


def _parser() -> argparse.ArgumentParser:
    from broker.settings import BrokerSettings
    from controller.settings import ControllerSettings

    parser = argparse.ArgumentParser(
        prog="preview-broker",
        description="One stable OAuth callback for every per-pull-request preview environment.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{broker,controller}")
    b = sub.add_parser(
        "broker",
        help="serve the login broker (ASGI, uvicorn)",
        description="Serve /oauth2/* (relay and forward-auth logins), /healthz and /readyz; /metrics on its own port.",
        epilog=EPILOG_BROKER.format(settings=describe(BrokerSettings)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    b.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    b.add_argument("--metrics-port", type=int, default=9090,
                   help="port for /metrics (and the probes), kept off the public port (default 9090; 0: off)")
    b.add_argument("--config", type=Path, help="YAML file with settings (environment variables win)")
    c = sub.add_parser(
        "controller",
        help="run the preview-environment controller",
        description="Watch preview namespaces, publish the allowlist and run each environment's lifecycle.",
        epilog="Settings (environment variables):\n\n" + describe(ControllerSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.add_argument("--config", type=Path, help="YAML file with settings (environment variables win)")
    c.add_argument("--metrics-port", type=int, default=9090, help="port for /metrics and /healthz (default 9090)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    broker_fields, controller_fields = _known_fields()
    try:
        if args.command == "broker":
            from broker.settings import BrokerSettings

            settings = load(BrokerSettings, os.environ, config_file=args.config, known=controller_fields)
        else:
            from controller.settings import ControllerSettings

            settings = load(ControllerSettings, os.environ, config_file=args.config, known=broker_fields)
    except ConfigError as exc:
        print(f"preview-broker: {exc}", file=sys.stderr)
        return 2
    if args.command == "broker":
        from broker.serve import serve

        return serve(settings, host=args.host, port=args.port, metrics_port=args.metrics_port)
    from controller.main import run

    return run(settings, metrics_port=args.metrics_port)


if __name__ == "__main__":
    sys.exit(main())
