"""sevDesk's wire format: JSON with exact decimal numbers, dates, answers and errors."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx

BERLIN = ZoneInfo("Europe/Berlin")
_MARK = "\u0000dec:"
_MARKED = re.compile(r'"\\u0000dec:(-?[0-9.]+)"')


def dumps(payload: Any) -> bytes:
    """JSON with every Decimal written as a JSON number, digit for digit (no float)."""

    def mark(value: Any) -> Any:
        if isinstance(value, Decimal):
            return f"{_MARK}{value:f}"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(payload), ensure_ascii=False)
    return _MARKED.sub(r"\1", text).encode("utf-8")


def loads(raw: bytes | str) -> Any:
    """Parse JSON keeping numbers exact (Decimal)."""
    return json.loads(raw, parse_float=Decimal)


def de_date(day: date) -> str:
    """sevDesk's document date format, ``dd.mm.yyyy`` (stored as Berlin midnight)."""
    return day.strftime("%d.%m.%Y")


def timestamp(day: date) -> int:
    """Unix seconds of Berlin midnight of ``day`` (invoice bookAmount takes these)."""
    return int(datetime.combine(day, time(0, 0), tzinfo=BERLIN).timestamp())


def rfc3339(day: date) -> str:
    """Berlin noon of ``day``, as voucher bookAmount takes it (noon keeps the day in any zone)."""
    return datetime.combine(day, time(12, 0), tzinfo=BERLIN).isoformat()


def ref(obj_id: int | str, name: str) -> dict[str, Any]:
    return {"id": int(obj_id), "objectName": name}


def number(value: Any) -> Decimal:
    """A sevDesk amount (string, number or null) as Decimal."""
    if value is None or value == "":
        return Decimal("0")
    if isinstance(value, bool):
        return Decimal(int(value))
    return Decimal(str(value))


def error_message(response: httpx.Response) -> str:
    """sevDesk's own message from its error envelope, with its error code."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        message = " ".join(str(error.get("message") or "no message").split())
        code = error.get("code")
        return f"{message} (sevDesk code {code})" if code not in (None, "", 0) else message
    text = response.text.strip()
    if text.startswith("<"):
        return "an HTML page instead of an API answer"
    return " ".join(text.split())[:300] or "an empty answer"
