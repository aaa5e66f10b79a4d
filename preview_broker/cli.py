"""`preview-broker broker|controller|check-config`: the one console script of the project."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from foundation.build import version
from foundation.config import ConfigError, describe, effective, load

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
    parser.add_argument("--version", action="version", version=f"preview-broker {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{broker,controller,check-config}")
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
    k = sub.add_parser(
        "check-config",
        help="validate a component's settings and print the effective ones (secrets masked)",
        description="Load the settings exactly as `preview-broker COMPONENT` would at start-up, without starting "
        "it: bad or missing settings are the same lines, one a setting (exit 2); otherwise every setting is printed as "
        "NAME=value, defaults included, secrets as ****.",
    )
    k.add_argument("component", choices=["broker", "controller"])
    k.add_argument("--config", type=Path, help="YAML file with settings (environment variables win)")
    return parser


def _load(component: str, config: Path | None):  # type: ignore[no-untyped-def]
    broker_fields, controller_fields = _known_fields()
    if component == "broker":
        from broker.settings import BrokerSettings

        return load(BrokerSettings, os.environ, config_file=config, known=controller_fields)
    from controller.settings import ControllerSettings

    return load(ControllerSettings, os.environ, config_file=config, known=broker_fields)


def _report(exc: ConfigError) -> None:
    """Every bad setting at once, one line each (the setting, then what is wrong), before exit status 2."""
    for line in exc.lines:
        print(f"preview-broker: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _load(args.component if args.command == "check-config" else args.command, args.config)
    except ConfigError as exc:
        _report(exc)
        return 2
    if args.command == "check-config":
        for name, value in effective(settings).items():
            print(f"{name}={value}")
        print(f"preview-broker: the {args.component}'s settings are valid", file=sys.stderr)
        return 0
    if args.command == "broker":
        from broker.serve import serve

        try:
            return serve(settings, host=args.host, port=args.port, metrics_port=args.metrics_port)
        except ConfigError as exc:  # a setting only start-up can check (MAX_CONNECTIONS against RLIMIT_NOFILE)
            _report(exc)
            return 2
    from controller.main import run

    return run(settings, metrics_port=args.metrics_port)


if __name__ == "__main__":
    sys.exit(main())
