"""Starting the service (``ledgerlink serve`` without ``-p``): checks, then uvicorn."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from ._errors import ConfigError

SERVICE_DB = "sqlite:///ledgerlink-service.db"


def _hand_to_celery(service: Any, default: Any, url: str) -> str | None:
    """With a broker configured ([workers] broker_url of the config file, or
    $LEDGERLINK_BROKER_URL), the service queues its work for `ledgerlink worker` instead of
    running it in-process; the broker's URL (without password), or None."""
    from ._worker import BROKER_ENV, celery_workers, require_postgresql

    configured = (default is not None and default.workers.broker_url) or os.environ.get(BROKER_ENV)
    if not configured:
        return None
    if default is not None:
        require_postgresql(default)
    elif not url.startswith(("postgresql", "postgres")):
        raise ConfigError("a broker is configured, so the work goes to `ledgerlink worker`, which needs a PostgreSQL "
                          f"ledger: give serve --ledger postgresql+psycopg://..., not {url.split(':', 1)[0]}")
    try:
        hand_over = celery_workers(default)
    except ImportError:
        raise ConfigError("a broker is configured, but Celery is not installed: pip install 'ledgerlink[celery]'") \
            from None
    if hand_over is None:
        return None
    service.workers.stop()
    service.workers = hand_over
    from ._config import _redact_url

    return _redact_url(str(configured))


def serve_service(*, ledger_url: str | None, host: str, port: int, workers: int, new_secret_key: bool,
                  default: Any = None, secret_file: Path | None = None) -> None:
    """``default``: the config file of ``ledgerlink -c FILE serve``, served as the tenant ``default`` on
    its own ledger (which is then the service's database); its enabled pipelines whose source takes
    webhooks are served at ``/webhooks/<secret>`` too, the secret in ``secret_file`` (one such
    pipeline) or ``<secret_file>.<pipeline>`` (several), as ``serve -p`` serves them."""
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
    handed = _hand_to_celery(service, default, url)
    rotated = service.rotate_secrets()
    hooks = None
    try:
        if default is not None:
            from ._tenants import DEFAULT_TENANT
            from ._webhooks import SECRET_FILE, ServiceWebhooks

            hooks = ServiceWebhooks(service.runtime(DEFAULT_TENANT), default.pipelines,
                                    secret_file or Path(SECRET_FILE))
        queued = service.recover()
        asgi, _ = create_app(service, webhooks=hooks.app if hooks else None)
    except BaseException:
        if hooks is not None:
            hooks.stop()
        service.close()
        raise
    click.echo(f"ledgerlink service on http://{host}:{port}/ (OpenAPI: /openapi.json, status page: /); {rotated} "
               f"stored secrets under the first key; {queued} pipelines queued to settle"
               + (f"; tenant 'default': {len(default.pipelines)} pipelines of the config file" if default else "")
               + (f"; work goes to Celery workers via {handed}" if handed else ""),
               err=True)
    for name, path in (hooks.files.items() if hooks else ()):
        click.echo(f"source webhooks of {name!r} on http://{host}:{port}/webhooks/<secret from {path}>", err=True)
    try:
        from ._webhooks import uvicorn_options

        # Slow and idle clients: a deadline for the request head, idle keep-alive
        # connections closed, a bound on connections (503 over it).
        uvicorn.run(asgi, host=host, port=port, log_level="warning", access_log=False, **uvicorn_options())
    finally:
        if hooks is not None:
            hooks.stop()
        service.close()
