"""Prometheus metrics of workers and ``ledgerlink serve`` (issue 21), with ``prometheus_client``.

- ``ledgerlink_documents_total{outcome}``: documents by what a run did with them
  (pushed, skipped, failed, quarantined, payment_booked, ...);
- ``ledgerlink_vendor_requests_total{vendor,status}``: HTTP requests to vendors by
  answer status (429s among them);
- ``ledgerlink_tasks_total{kind,state}``: worker tasks (done, busy = already running,
  given_up) and ``ledgerlink_task_seconds{kind}``: how long they took;
- ``ledgerlink_queue_depth``: tasks waiting in the broker's ``ledgerlink`` queue, read
  when the metrics are scraped.

Without ``prometheus_client`` (it comes with ``ledgerlink[celery]``) every metric is a
no-op, so the engine never depends on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("ledgerlink.metrics")


class _NoMetric:
    def labels(self, *args: Any, **kwargs: Any) -> _NoMetric:
        return self

    def inc(self, amount: float = 1) -> None:
        return None

    def observe(self, value: float) -> None:
        return None

    def set_function(self, function: Callable[[], float]) -> None:
        return None


try:
    from prometheus_client import Counter, Gauge, Histogram

    DOCUMENTS: Any = Counter("ledgerlink_documents", "documents by what a run did with them", ["outcome"])
    VENDOR_REQUESTS: Any = Counter("ledgerlink_vendor_requests", "HTTP requests to vendors by answer status",
                                   ["vendor", "status"])
    TASKS: Any = Counter("ledgerlink_tasks", "worker tasks by kind and how they ended", ["kind", "state"])
    TASK_SECONDS: Any = Histogram("ledgerlink_task_seconds", "seconds a worker task took", ["kind"],
                                  buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900))
    QUEUE_DEPTH: Any = Gauge("ledgerlink_queue_depth", "tasks waiting in the broker's ledgerlink queue")
    AVAILABLE = True
except ImportError:  # pragma: no cover - the extra is not installed
    DOCUMENTS = VENDOR_REQUESTS = TASKS = TASK_SECONDS = QUEUE_DEPTH = _NoMetric()
    AVAILABLE = False


def watch_queue(app: Any, queue: str) -> None:
    """Read the queue's depth from the broker whenever the metrics are scraped."""

    def depth() -> float:
        try:
            with app.connection_for_read() as connection:
                channel = connection.default_channel
                return float(channel.queue_declare(queue=queue, passive=True).message_count)
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail for the broker
            log.debug("queue depth not read: %s", exc)
            return float("nan")

    QUEUE_DEPTH.set_function(depth)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Serve the metrics at http://host:port/metrics (a thread of this process)."""
    if not AVAILABLE:
        from ._errors import ConfigError

        raise ConfigError("metrics need prometheus_client: pip install 'ledgerlink[celery]'")
    from prometheus_client import start_http_server

    start_http_server(port, addr=host)


def observe_response(vendor: str, status: int) -> None:
    VENDOR_REQUESTS.labels(vendor=vendor, status=str(status)).inc()


__all__ = ["DOCUMENTS", "QUEUE_DEPTH", "TASKS", "TASK_SECONDS", "VENDOR_REQUESTS", "observe_response", "serve",
           "watch_queue"]
