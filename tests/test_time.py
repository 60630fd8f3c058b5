"""Re-runs and time: a second run transfers nothing, and runs whose clock crosses
midnight, a month end, the year end and both of Europe/Berlin's DST changes lose
and double nothing.

Billbee writes its dates without an offset, in the account's zone (Europe/Berlin).
Each scenario adds orders to the Billbee sandbox as their modification time comes
(their ``LastModifiedAt`` straddles the boundary) and runs the pipeline in between,
with the Billbee source's clock (``datetime.now`` in ``ledgerlink_billbee.source``)
set to the run's moment; the process runs in another time zone (Pacific/Auckland)
so nothing may lean on the machine's local time. At the end every order is in
sevDesk exactly once, with the voucher date of the day it was invoiced in Berlin.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ledgerlink.testing import make_runtime, run_pipeline
from ledgerlink_billbee.sandbox import BillbeeSandbox
from ledgerlink_sevdesk.sandbox import DEMO_RULES, SevdeskSandbox

BERLIN = ZoneInfo("Europe/Berlin")
TEMPLATE = BillbeeSandbox.demo_seed()["Data"][0]  # a paid order of 57.20 EUR


class Clock:
    """The Billbee source's clock: ``datetime.now`` answers the time set here."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=BERLIN)

    def set(self, moment: datetime) -> None:
        self.now = moment

    def datetime_class(self) -> type[datetime]:
        clock = self

        class FrozenDatetime(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
                if tz is None:
                    return clock.now.astimezone(BERLIN).replace(tzinfo=None)
                return clock.now.astimezone(tz)

        return FrozenDatetime


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    import ledgerlink_billbee.source as billbee_source

    fake = Clock()
    monkeypatch.setattr(billbee_source, "datetime", fake.datetime_class())
    for name in ("PER_ENDPOINT", "PER_USER", "PER_KEY"):
        monkeypatch.setattr(billbee_source, name, 10_000.0)
    # Another machine zone than Berlin: a date taken from the local clock would show.
    monkeypatch.setenv("TZ", "Pacific/Auckland")
    time.tzset()
    yield fake
    monkeypatch.undo()
    time.tzset()


def berlin(text: str, *, second_pass: bool = False) -> datetime:
    """A Berlin wall-clock time; ``second_pass`` picks the repeated hour's second (CET) pass."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN, fold=1 if second_pass else 0)


def billbee_time(moment: datetime) -> str:
    """How Billbee writes it: naive, Berlin wall clock, .NET's 7 fraction digits."""
    return moment.astimezone(BERLIN).replace(tzinfo=None).isoformat(timespec="microseconds") + "0"


def order(n: int, moment: datetime) -> dict[str, Any]:
    o = copy.deepcopy(TEMPLATE)
    stamp = billbee_time(moment)
    o.update(BillBeeOrderId=500000000000000 + n, Id=f"T{n}", OrderNumber=f"T{n}", InvoiceNumber=70000 + n,
             InvoiceNumberPrefix="RE-T-", CreatedAt=stamp, InvoiceDate=stamp, LastModifiedAt=stamp,
             PayedAt=stamp, ConfirmedAt=stamp, ShippedAt=stamp)
    o["Payments"][0]["PayDate"] = stamp
    o["Customer"]["Id"] = 600000000000000 + n
    o["InvoiceAddress"]["Email"] = f"t{n}@example.de"
    return o


class World:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        tag = uuid.uuid4().hex[:10]
        self.billbee = BillbeeSandbox(throttle=False, api_key=f"bb-{tag}", username=f"u-{tag}@example.com")
        token = f"sevdesk-{tag}"
        self.sevdesk = SevdeskSandbox(seed={"tokens": [token]})
        shop, env = self.billbee.demo_connection("http://billbee.test")
        books, _ = self.sevdesk.demo_connection("http://sevdesk.test")
        for key, value in {**env, "SEVDESK_API_TOKEN": token}.items():
            monkeypatch.setenv(key, value)
        shop["start_date"] = "2024-01-01"
        books.update(requests_per_second=10_000, backoff=0.01)
        raw = {
            "connections": {"shop": {"plugin": "billbee", **shop}, "books": {"plugin": "sevdesk", **books}},
            "pipelines": [{"name": "shop-to-books", "source": "shop", "target": "books", "rules": DEMO_RULES,
                           "payment_reconciliation": "source"}],
        }
        self.runtime = make_runtime(raw, tmp_path, transports={"shop": self.billbee.transport(),
                                                               "books": self.sevdesk.transport()})
        self.expected: dict[str, date] = {}

    def add(self, n: int, moment: datetime) -> None:
        self.billbee.load_seed(order(n, moment))
        self.expected[f"RE-T-{70000 + n}"] = moment.astimezone(BERLIN).date()

    def run(self) -> dict[str, int]:
        result = run_pipeline(self.runtime)
        assert result.error is None, result.error
        return result.counts()

    def vouchers(self) -> Counter[str]:
        return Counter(v["description"] for v in self.sevdesk.state["vouchers"].values())

    def assert_each_once_with_its_berlin_date(self) -> None:
        assert self.vouchers() == Counter(dict.fromkeys(self.expected, 1))
        for voucher in self.sevdesk.state["vouchers"].values():
            day = self.expected[voucher["description"]]
            assert voucher["voucherDate"].startswith(day.isoformat()), (voucher["description"], voucher["voucherDate"])
        rows = self.runtime.ledger.documents("shop-to-books")
        assert sorted(row.state for row in rows) == ["pushed"] * len(self.expected)


def test_second_run_transfers_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    world = World(tmp_path, monkeypatch)
    start = berlin("2026-05-04T09:00:00")
    for n in range(5):
        world.add(n, start + timedelta(minutes=7 * n))
    clock.set(start + timedelta(hours=1))
    assert world.run() == {"pushed": 5}
    assert world.run() == {}
    # Without the cursor (as backfill reads), the ledger still knows every order.
    again = run_pipeline(world.runtime, use_cursor=False)
    assert again.counts().get("pushed", 0) == 0, again.counts()
    world.assert_each_once_with_its_berlin_date()
    # Each voucher is saved as a draft and then registered (two saveVoucher calls); the
    # second run saves nothing: still 5 drafts and 5 registrations.
    requests = [r for r in world.sevdesk.requests if r["path"].endswith("saveVoucher")]
    assert len(requests) == 10 and len(world.sevdesk.state["vouchers"]) == 5


# Each scenario: (label, order times and run times in order). An order is added to
# Billbee when its time comes; a run happens with the clock at its time.
SCENARIOS: dict[str, list[tuple[str, datetime]]] = {
    "midnight": [
        ("order", berlin("2026-05-12T23:40:00")), ("order", berlin("2026-05-12T23:59:59.999999")),
        ("run", berlin("2026-05-12T23:59:59.999999")),
        ("order", berlin("2026-05-13T00:00:00")), ("order", berlin("2026-05-13T00:05:00")),
        ("run", berlin("2026-05-13T00:06:00")), ("order", berlin("2026-05-13T00:20:00")),
        ("run", berlin("2026-05-13T00:30:00")),
    ],
    "month-end": [
        ("order", berlin("2026-04-30T23:50:00")), ("run", berlin("2026-04-30T23:55:00")),
        ("order", berlin("2026-04-30T23:58:00")), ("order", berlin("2026-05-01T00:01:00")),
        ("run", berlin("2026-05-01T00:02:00")), ("order", berlin("2026-05-01T00:09:00")),
        ("run", berlin("2026-05-01T01:00:00")),
    ],
    "year-end": [
        ("order", berlin("2025-12-31T23:30:00")), ("run", berlin("2025-12-31T23:45:00")),
        ("order", berlin("2025-12-31T23:55:00")), ("order", berlin("2026-01-01T00:30:00")),
        ("run", berlin("2026-01-01T00:45:00")), ("order", berlin("2026-01-01T00:50:00")),
        ("run", berlin("2026-01-01T09:00:00")),
    ],
    "dst-spring": [  # 2026-03-29: 02:00 CET becomes 03:00 CEST (02:xx does not exist)
        ("order", berlin("2026-03-29T01:50:00")), ("run", berlin("2026-03-29T01:55:00")),
        ("order", berlin("2026-03-29T01:59:00")), ("order", berlin("2026-03-29T03:01:00")),
        ("run", berlin("2026-03-29T03:03:00")), ("order", berlin("2026-03-29T03:04:00")),
        ("run", berlin("2026-03-29T04:00:00")),
    ],
    "dst-autumn": [  # 2026-10-25: 03:00 CEST becomes 02:00 CET (02:xx happens twice)
        ("order", berlin("2026-10-25T01:55:00")), ("order", berlin("2026-10-25T02:40:00")),
        ("run", berlin("2026-10-25T02:50:00")),
        ("order", berlin("2026-10-25T02:05:00", second_pass=True)),
        ("order", berlin("2026-10-25T02:20:00", second_pass=True)),
        ("run", berlin("2026-10-25T02:30:00", second_pass=True)),
        ("order", berlin("2026-10-25T02:45:00", second_pass=True)),
        ("run", berlin("2026-10-25T02:55:00", second_pass=True)),
        ("order", berlin("2026-10-25T03:10:00")), ("run", berlin("2026-10-25T04:00:00")),
    ],
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_runs_across_a_boundary_lose_and_double_nothing(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    world = World(tmp_path, monkeypatch)
    pushed = 0
    for n, (what, moment) in enumerate(SCENARIOS[name]):
        if what == "order":
            world.add(n, moment)
            continue
        clock.set(moment)
        counts = world.run()
        pushed += counts.get("pushed", 0)
        assert set(counts) <= {"pushed"}, counts
        # Everything that exists by now has arrived, once (no run waits for a later one).
        assert world.vouchers() == Counter(dict.fromkeys(world.expected, 1)), (moment, world.vouchers())
    clock.set(clock.now + timedelta(days=1))
    assert world.run() == {}
    assert pushed == len(world.expected)
    world.assert_each_once_with_its_berlin_date()


def test_order_at_2330_on_new_years_eve_belongs_to_that_year(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    world = World(tmp_path, monkeypatch)
    world.add(1, berlin("2025-12-31T23:30:00"))  # 22:30 UTC: the same day in UTC too
    world.add(2, berlin("2026-01-01T00:30:00"))  # 23:30 UTC on 31 December: Berlin's date counts
    clock.set(berlin("2026-01-01T08:00:00"))
    assert world.run() == {"pushed": 2}
    dates = {v["description"]: v["voucherDate"] for v in world.sevdesk.state["vouchers"].values()}
    assert dates["RE-T-70001"].startswith("2025-12-31"), dates
    assert dates["RE-T-70002"].startswith("2026-01-01"), dates
    rows = {row.number: row for row in world.runtime.ledger.documents("shop-to-books")}
    assert '"invoice_date":"2025-12-31"' in (rows["RE-T-70001"].payload or "")
