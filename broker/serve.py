"""Run the broker under uvicorn (uvloop and httptools when installed)."""

from __future__ import annotations

import uvicorn

from broker import logs
from broker.app import create_app
from broker.settings import BrokerSettings


def serve(settings: BrokerSettings, *, host: str, port: int) -> int:
    logs.setup(settings.log_level)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # the broker reads X-Forwarded-* itself, only where it means to
        server_header=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()
    return 0
