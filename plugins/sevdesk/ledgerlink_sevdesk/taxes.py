"""Tax rules: ledgerlink's tax treatments in sevDesk's words, and the receipt guidance.

sevDesk 2.0 books every voucher under one ``taxRule`` and lets each booking account
(``AccountDatev``) take only some rules and rates; ``GET /ReceiptGuidance/forRevenue``
lists the allowed combinations. Bookkeeping 1.0 accounts use ``taxType`` instead.
The tables follow ``shared/ACCOUNTING.md`` and the "sevdesk-Update 2.0" chapter of
sevDesk's OpenAPI description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ledgerlink import LineKind, TaxTreatment

# Revenue tax rules of sevDesk 2.0 (id -> meaning), from the 2.0 chapter.
TAX_RULES_2_0: dict[str, str] = {
    "1": "Umsatzsteuerpflichtige Umsätze",
    "2": "Ausfuhren",
    "3": "Innergemeinschaftliche Lieferungen",
    "4": "Steuerfreie Umsätze §4 UStG",
    "5": "Reverse Charge gem. §13b UStG",
    "11": "Steuer nicht erhoben nach §19 UStG (Kleinunternehmer)",
    "17": "Nicht im Inland steuerbare Leistung",
    "18": "One-Stop-Shop (Waren)",
    "19": "One-Stop-Shop (elektronische Leistungen)",
    "20": "One-Stop-Shop (sonstige Leistungen)",
    "21": "Reverse Charge gem. §18b UStG",
    "22": "Nicht steuerbar (Erlöse)",
}
OSS_RULES = {"18", "19", "20"}
NOT_ON_VOUCHERS = OSS_RULES | {"21"}

TREATMENT_TO_RULE: dict[str, str] = {
    TaxTreatment.STANDARD: "1",
    TaxTreatment.REDUCED: "1",
    TaxTreatment.INTRA_EU_SUPPLY: "3",
    TaxTreatment.REVERSE_CHARGE: "5",
    TaxTreatment.EXPORT: "2",
    TaxTreatment.NOT_TAXABLE_HERE: "17",
    TaxTreatment.SMALL_BUSINESS: "11",
    # OSS depends on the line: see rule_for().
}

# Bookkeeping 1.0: taxType instead of taxRule. "custom" (with a taxSet) is not offered.
TREATMENT_TO_TAX_TYPE: dict[str, str] = {
    TaxTreatment.STANDARD: "default",
    TaxTreatment.REDUCED: "default",
    TaxTreatment.INTRA_EU_SUPPLY: "eu",
    TaxTreatment.REVERSE_CHARGE: "noteu",
    TaxTreatment.EXPORT: "noteu",
    TaxTreatment.NOT_TAXABLE_HERE: "noteu",
    TaxTreatment.SMALL_BUSINESS: "ss",
}
TAX_TYPES_1_0 = {"default", "eu", "noteu", "ss"}

RATE_NAMES = {Decimal("0"): "ZERO", Decimal("7"): "SEVEN", Decimal("19"): "NINETEEN"}


def rate_name(rate: Decimal) -> str | None:
    """sevDesk's name for a tax rate in the receipt guidance (only 0, 7 and 19 exist)."""
    return RATE_NAMES.get(rate.normalize() if rate else Decimal("0"))


def rule_for(treatment: str | None, kind: LineKind) -> str | None:
    """The 2.0 revenue tax rule for a treatment (None: no treatment given)."""
    if treatment is None:
        return None
    if treatment == TaxTreatment.OSS:
        # 19 (electronic services) cannot be told from 20 (other services) by the
        # line kind; a rule can name 19 explicitly.
        return "20" if kind == LineKind.SERVICE else "18"
    rule = TREATMENT_TO_RULE.get(treatment)
    if rule is None:
        raise ValueError(f"tax treatment {treatment!r} has no sevDesk tax rule")
    return rule


def tax_text(rule: str, rate: Decimal) -> str:
    """The ``taxText`` an invoice shows for its rule."""
    if rule == "1":
        return f"Umsatzsteuer {rate.normalize():f}%"
    return TAX_RULES_2_0.get(rule, f"Steuerregel {rule}")


@dataclass
class GuidanceAccount:
    account_datev_id: int
    number: str
    name: str
    rules: dict[str, set[str]] = field(default_factory=dict)
    """Allowed tax rule id -> allowed rate names."""
    receipt_types: set[str] = field(default_factory=set)


class ReceiptGuidance:
    """The allowed account / tax rule / rate combinations of one sevDesk 2.0 account."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.by_number: dict[str, GuidanceAccount] = {}
        for entry in entries:
            account = GuidanceAccount(
                account_datev_id=int(entry["accountDatevId"]),
                number=str(entry.get("accountNumber") or ""),
                name=str(entry.get("accountName") or ""),
                receipt_types={str(t) for t in entry.get("allowedReceiptTypes") or []},
            )
            for rule in entry.get("allowedTaxRules") or []:
                account.rules[str(rule["id"])] = {str(r) for r in rule.get("taxRates") or []}
            self.by_number[account.number] = account

    def problem(self, account: str, rule: str, rate: Decimal) -> str | None:
        """Why sevDesk would refuse this revenue combination (None: allowed)."""
        entry = self.by_number.get(account)
        name = rate_name(rate)
        combo = f"account {account}, tax rule {rule}, rate {rate.normalize():f}%"
        if entry is None:
            return f"{combo}: account {account} is not in sevDesk's receipt guidance for this account"
        if "REVENUE" not in entry.receipt_types:
            return f"{combo}: account {account} ({entry.name}) is not allowed for revenue"
        if rule not in entry.rules:
            allowed = ", ".join(sorted(entry.rules, key=int)) or "none"
            return f"{combo}: account {account} ({entry.name}) allows tax rules {allowed}"
        if name is None or name not in entry.rules[rule]:
            allowed = ", ".join(sorted(entry.rules[rule])) or "none"
            return f"{combo}: tax rule {rule} on account {account} allows rates {allowed}"
        return None
