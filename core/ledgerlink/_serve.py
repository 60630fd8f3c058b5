"""Starting the service (``ledgerlink serve`` without ``-p``): checks, then uvicorn."""

from __future__ import annotations

import logging
import sys
from typing import Any

from ._errors import ConfigError

SERVICE_DB = "sqlite:///ledgerlink-service.db"


def serve_service(*, ledger_url: str | None, host: str, port: int, workers: int, new_secret_key: bool,
                  default: Any = None) -> None:
    """``default``: the config file of ``ledgerlink -c FILE serve``, served as the tenant ``default`` on
    its own ledger (which is then the service's database)."""
    import click

    try:
        from ._secrets_store import new_key

        if new_secret_key:
            click.echo(new_key())
            return
        import uvicorn

        from ._server import admin_token, create_app
        from ._service import Service
    except ImportError as exc:
        raise ConfigError(f"the service needs the server extra: pip install 'ledgerlink[server]' ({exc.name} is "
                          "missing)") from None
    if not admin_token():
        raise ConfigError("set LEDGERLINK_ADMIN_TOKEN (or LEDGERLINK_ADMIN_TOKEN_FILE): the token that manages "
                          "tenants")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    url = ledger_url or (default.ledger_url if default is not None else SERVICE_DB)
    service = Service(url, workers=workers, start=False, default=default)
    rotated = service.rotate_secrets()
    queued = service.recover()
    asgi, _ = create_app(service)
    click.echo(f"ledgerlink service on http://{host}:{port}/ (OpenAPI: /openapi.json, status page: /); {rotated} "
               f"stored secrets under the first key; {queued} pipelines queued to settle"
               + (f"; tenant 'default': {len(default.pipelines)} pipelines of the config file" if default else ""),
               err=True)
    try:
        uvicorn.run(asgi, host=host, port=port, log_level="warning", access_log=False)
    finally:
        service.close()
