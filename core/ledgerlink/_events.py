"""Events back to the host: a signed webhook on every change of a document's state.

A tenant may name a URL and a signing secret (``PUT /v1/tenants/{t}/events``; the
secret is stored encrypted like the tenant's other secrets and never returned).
Then every change the service sees (received, pushed, skipped, failed,
quarantined, changed or cancelled after transfer, payment booked) is written to
the outbox table ``service_events`` in the service's database (beside the inbox) and
delivered by a background thread:

- ``POST`` of the JSON body with ``X-Ledgerlink-Signature: sha256=<hex>``, the
  HMAC-SHA256 of the body's exact bytes under the tenant's secret, and
  ``X-Ledgerlink-Event`` / ``X-Ledgerlink-Delivery`` (the event's type and id).
- Any 2xx answer delivers it. Anything else (an error status, a refused
  connection, a timeout) is tried again after ``base * 2**attempts`` seconds (at
  most an hour), ``MAX_ATTEMPTS`` times, then given up (kept in the table, with the
  last error).
- Recording never blocks or fails a transfer: it runs after the ledger's commit,
  and an error in it is logged and dropped. Delivery happens on its own thread.
- Durable: undelivered events are rows; a restarted service sends them. Delivery is
  at least once (a crash between the host's answer and the row's update sends it
  again): the host dedupes by the event id. Several processes may send from one
  table: each row is claimed by a conditional update (a lease) before it is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from ._http import redact
from ._schema import create_tables
from ._secrets_store import SecretBox

log = logging.getLogger("ledgerlink.events")
SIGNATURE_HEADER = "X-Ledgerlink-Signature"
MAX_ATTEMPTS = 15
"""Deliveries tried per event (with the default base of 2 s and the hour cap: over about 4 hours)."""
MAX_DELAY = 3600.0
LEASE = 120.0
"""Seconds a sender owns an event it took (longer than a delivery's timeout)."""
TIMEOUT = 10.0
STATE_OF = {"changed": "pushed", "cancelled": "pushed", "reversed": "pushed", "payment_booked": "pushed",
            "payment_pending": "pushed", "received": "queued"}
"""The document's state after an event whose name is not a state."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class _Tables:
    def __init__(self) -> None:
        from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text

        self.metadata = MetaData()
        self.targets = Table(
            "service_event_targets", self.metadata,
            Column("tenant", String(64), primary_key=True),
            Column("url", String(2000), nullable=False),
            Column("secret", Text, nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
        )
        self.events = Table(
            "service_events", self.metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("event_id", String(40), nullable=False, unique=True),
            Column("tenant", String(64), nullable=False),
            Column("pipeline", String(300), nullable=False),
            Column("source_ref", String(300), nullable=False),
            Column("type", String(40), nullable=False),
            Column("reason", Text),
            Column("body", Text, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("attempts", Integer, nullable=False, default=0),
            Column("next_at", DateTime(timezone=True)),
            Column("delivered_at", DateTime(timezone=True)),
            Column("given_up_at", DateTime(timezone=True)),
            Column("last_error", Text),
            Index("ix_service_events_due", "delivered_at", "given_up_at", "next_at"),
            Index("ix_service_events_doc", "tenant", "pipeline", "source_ref"),
        )


_TABLES: _Tables | None = None
_GUARD = threading.Lock()


def tables() -> _Tables:
    global _TABLES
    with _GUARD:
        if _TABLES is None:
            _TABLES = _Tables()
        return _TABLES


class Outbox:
    """The tenants' event targets and their undelivered events, in the service's database."""

    def __init__(self, url: str, box: SecretBox) -> None:
        from ._inbox import engine_for

        self.engine = engine_for(url)
        self.box = box
        self.t = tables()
        create_tables(self.engine, self.t.metadata)
        self.wake = threading.Event()
        """Set when an event is recorded: the sender looks at once."""

    # -- targets -------------------------------------------------------------------------
    def target(self, tenant: str) -> tuple[str, str] | None:
        """(url, secret) of the tenant's webhook, or None."""
        from sqlalchemy import select

        t = self.t.targets
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.url, t.c.secret).where(t.c.tenant == tenant)).first()
        return None if row is None else (str(row.url), self.box.decrypt(row.secret))

    def has_target(self, tenant: str) -> bool:
        from sqlalchemy import select

        t = self.t.targets
        with self.engine.connect() as conn:
            return conn.execute(select(t.c.tenant).where(t.c.tenant == tenant)).first() is not None

    def set_target(self, tenant: str, url: str, secret: str | None) -> bool:
        """Store the URL and (encrypted) secret; a secret left out keeps the stored one.
        False: there is no secret (none given, none stored)."""
        from sqlalchemy import select

        t = self.t.targets
        with self.engine.begin() as conn:
            row = conn.execute(select(t.c.secret).where(t.c.tenant == tenant)).first()
            if secret is None and row is None:
                return False
            sealed = self.box.encrypt(secret) if secret is not None else row.secret
            values = {"url": url, "secret": sealed, "updated_at": _utcnow()}
            if row is None:
                conn.execute(t.insert().values(tenant=tenant, **values))
            else:
                conn.execute(t.update().where(t.c.tenant == tenant).values(**values))
        return True

    def delete_target(self, tenant: str) -> bool:
        """The webhook goes, and with it the tenant's undelivered events."""
        e = self.t.events
        with self.engine.begin() as conn:
            gone = conn.execute(self.t.targets.delete().where(self.t.targets.c.tenant == tenant)).rowcount
            conn.execute(e.delete().where(e.c.tenant == tenant, e.c.delivered_at.is_(None)))
        return bool(gone)

    def rotate(self) -> int:
        from sqlalchemy import select

        t = self.t.targets
        count = 0
        with self.engine.begin() as conn:
            for tenant, sealed in conn.execute(select(t.c.tenant, t.c.secret)).all():
                conn.execute(t.update().where(t.c.tenant == tenant).values(secret=self.box.rotate(sealed)))
                count += 1
        return count

    def view(self, tenant: str) -> dict[str, Any] | None:
        """The webhook as the tenant sees it: the URL and counts, never the secret."""
        from sqlalchemy import func, select

        t, e = self.t.targets, self.t.events
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.url).where(t.c.tenant == tenant)).first()
            if row is None:
                return None
            counts = dict(conn.execute(select(
                (e.c.delivered_at.is_not(None)).label("delivered"), func.count()).where(
                e.c.tenant == tenant, e.c.given_up_at.is_(None)).group_by("delivered")).all())
            given_up = conn.execute(select(func.count()).where(e.c.tenant == tenant,
                                                               e.c.given_up_at.is_not(None))).scalar()
            last = conn.execute(select(e.c.last_error).where(
                e.c.tenant == tenant, e.c.delivered_at.is_(None), e.c.last_error.is_not(None)).order_by(
                e.c.id.desc()).limit(1)).scalar()
        return {"url": row.url, "secret_set": True, "delivered": int(counts.get(True, 0) or 0),
                "undelivered": int(counts.get(False, 0) or 0), "given_up": int(given_up or 0), "last_error": last}

    # -- events --------------------------------------------------------------------------
    def record(self, tenant: str, pipeline: str, items: list[dict[str, Any]]) -> int:
        """Write events for a tenant with a webhook (none otherwise); how many. Each item:
        id (the host's document id), event, reason, number, target. An event equal to the
        document's last one (the same failure again) is not written twice."""
        from sqlalchemy import select

        if not items or not self.has_target(tenant):
            return 0
        e = self.t.events
        now = _utcnow()
        rows = []
        with self.engine.begin() as conn:
            for item in items:
                last = conn.execute(select(e.c.type, e.c.reason).where(
                    e.c.tenant == tenant, e.c.pipeline == pipeline, e.c.source_ref == item["id"]).order_by(
                    e.c.id.desc()).limit(1)).first()
                kind = f"document.{item['event']}"
                if last is not None and last.type == kind and last.reason == item.get("reason"):
                    continue
                event_id = "evt_" + secrets.token_hex(12)
                body = {
                    "id": event_id, "type": kind, "at": now.isoformat(), "tenant": tenant, "pipeline": pipeline,
                    "document": {"id": item["id"], "state": STATE_OF.get(item["event"], item["event"]),
                                 "event": item["event"], "reason": item.get("reason"), "number": item.get("number"),
                                 "target": item.get("target")},
                }
                rows.append({"event_id": event_id, "tenant": tenant, "pipeline": pipeline, "source_ref": item["id"],
                             "type": kind, "reason": item.get("reason"), "created_at": now, "attempts": 0,
                             "next_at": now, "body": json.dumps(body, separators=(",", ":"), sort_keys=True)})
            if rows:
                conn.execute(e.insert(), rows)
        if rows:
            self.wake.set()
        return len(rows)

    def claim(self, limit: int = 20) -> list[dict[str, Any]]:
        """Due events, each taken by a conditional update (a lease), oldest first."""
        from sqlalchemy import select

        e = self.t.events
        now = _utcnow()
        with self.engine.connect() as conn:
            due = [dict(r._mapping) for r in conn.execute(select(e).where(
                e.c.delivered_at.is_(None), e.c.given_up_at.is_(None), e.c.next_at <= now).order_by(
                e.c.id).limit(limit))]
        taken = []
        for row in due:
            with self.engine.begin() as conn:
                won = conn.execute(e.update().where(e.c.id == row["id"], e.c.next_at == row["next_at"],
                                                    e.c.delivered_at.is_(None)).values(
                    next_at=now + timedelta(seconds=LEASE))).rowcount
            if won == 1:
                taken.append(row)
        return taken

    def delivered(self, row: dict[str, Any]) -> None:
        e = self.t.events
        with self.engine.begin() as conn:
            conn.execute(e.update().where(e.c.id == row["id"]).values(
                delivered_at=_utcnow(), attempts=row["attempts"] + 1, last_error=None))

    def failed(self, row: dict[str, Any], error: str, base: float, cap: float = MAX_DELAY) -> None:
        e = self.t.events
        attempts = row["attempts"] + 1
        now = _utcnow()
        values: dict[str, Any] = {"attempts": attempts, "last_error": error[:500]}
        if attempts >= MAX_ATTEMPTS:
            values["given_up_at"] = now
        else:
            values["next_at"] = now + timedelta(seconds=min(cap, base * 2 ** (attempts - 1)))
        with self.engine.begin() as conn:
            conn.execute(e.update().where(e.c.id == row["id"]).values(**values))

    def undelivered(self) -> int:
        """Events still to be sent (not delivered, not given up)."""
        from sqlalchemy import func, select

        e = self.t.events
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(e.c.delivered_at.is_(None),
                                                               e.c.given_up_at.is_(None))).scalar() or 0)

    def next_due(self) -> datetime | None:
        from sqlalchemy import func, select

        e = self.t.events
        with self.engine.connect() as conn:
            value = conn.execute(select(func.min(e.c.next_at)).where(e.c.delivered_at.is_(None),
                                                                     e.c.given_up_at.is_(None))).scalar()
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return _aware(value) if isinstance(value, datetime) else None


class Sender:
    """Delivers the outbox's due events on a background thread."""

    def __init__(self, outbox: Outbox, *, base: float = 2.0, transport: Any = None, poll: float = 5.0) -> None:
        import httpx

        self.outbox = outbox
        self.base = base
        self.max_delay = MAX_DELAY
        self.poll = poll
        self._client = httpx.Client(timeout=TIMEOUT, transport=transport, follow_redirects=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="ledgerlink-events")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.outbox.wake.set()
        self._thread.join(timeout=TIMEOUT + 2)
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.send_due()
                if sent:
                    continue
                due = self.outbox.next_due()
                wait = self.poll if due is None else max(0.0, min(self.poll, (due - _utcnow()).total_seconds()))
            except Exception as exc:  # the sender must keep running (a database hiccup, say)
                log.error("events: %s: %s", type(exc).__name__, redact(str(exc)))
                wait = self.poll
            self.outbox.wake.wait(wait)
            self.outbox.wake.clear()

    def send_due(self) -> int:
        rows = self.outbox.claim()
        targets: dict[str, tuple[str, str] | None] = {}
        for row in rows:
            if row["tenant"] not in targets:
                targets[row["tenant"]] = self.outbox.target(row["tenant"])
            target = targets[row["tenant"]]
            if target is None:  # the webhook was removed meanwhile
                self.outbox.failed(row, "the tenant has no event webhook", self.base, self.max_delay)
                continue
            self.deliver(row, *target)
        return len(rows)

    def deliver(self, row: dict[str, Any], url: str, secret: str) -> None:
        import httpx

        body = row["body"].encode("utf-8")
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
                   "X-Ledgerlink-Event": row["type"], "X-Ledgerlink-Delivery": row["event_id"],
                   "User-Agent": "ledgerlink-events"}
        try:
            answer = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {redact(str(exc))}"
        else:
            if 200 <= answer.status_code < 300:
                self.outbox.delivered(row)
                return
            error = f"HTTP {answer.status_code}"
        error = " ".join(error.replace(secret, "***").split())
        log.warning("events: %s to tenant %s not delivered (attempt %d): %s", row["event_id"], row["tenant"],
                    row["attempts"] + 1, error)
        self.outbox.failed(row, error, self.base, self.max_delay)


__all__ = ["SIGNATURE_HEADER", "Outbox", "Sender", "sign"]
