"""A line's tax treatment checked against the facts, before anything is written.

A source's tax mode (``Document.treatment_hint``: a shop's VAT mode, a CRM's tax
code) says what the seller meant; the law decides from facts: the buyer's country
and VAT id, the seller's country, goods or service, the rate on the line, and the
pipeline's ``oss`` and ``small_business`` settings. Every rule below is one of the
accounting notes' ("A vendor's tax mode is a hint, never the truth"); a line that
breaks one quarantines its document, with both facts named.

The EU member list and every member's rates are dated data (``data/eu.json``).
Pure functions: nothing here calls a connector or writes the ledger.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from ._records import (
    DEFAULT_SELLER_COUNTRY,
    Document,
    Line,
    LineKind,
    TaxTreatment,
    eu_rates,
    is_eu_member,
    normalise_country,
)

T = TaxTreatment
ZERO_RATED = {T.INTRA_EU_SUPPLY, T.REVERSE_CHARGE, T.EXPORT, T.NOT_TAXABLE_HERE, T.SMALL_BUSINESS}
WORDS = {
    T.INTRA_EU_SUPPLY: "an intra-EU supply",
    T.REVERSE_CHARGE: "reverse charge",
    T.EXPORT: "an export",
    T.NOT_TAXABLE_HERE: "not taxable here",
    T.SMALL_BUSINESS: "small business (no VAT)",
    T.OSS: "an OSS sale",
    T.STANDARD: "standard-rated",
    T.REDUCED: "reduced-rated",
}


def _rate(rate: Decimal) -> str:
    return f"{rate.normalize():f} %"


def treatment_problems(document: Document, line: Line, treatment: TaxTreatment, *, index: int, oss: bool,
                       small_business: bool) -> list[str]:
    """Why ``treatment`` cannot be right for this line, in a bookkeeper's words (empty: it can)."""
    seller = normalise_country(document.seller_country or DEFAULT_SELLER_COUNTRY)
    buyer = normalise_country(document.buyer_country) if document.buyer_country else None
    vat_id = (document.customer.vat_id or "").strip()
    day = document.tax_date
    on_day = f" on {day.isoformat()}" if day else ""
    said = "the source marks" if document.treatment_hint == treatment else "ledgerlink derives"
    what = f"line {index} ({line.description[:40]!r}): {said} it as {WORDS.get(treatment, str(treatment))}"
    out: list[str] = []

    def need(condition: bool, but: str) -> None:
        if not condition:
            out.append(f"{what}, but {but}")

    if small_business and line.tax_rate > 0:
        out.append(f"line {index} ({line.description[:40]!r}) charges {_rate(line.tax_rate)} VAT, but the "
                   "pipeline's seller is a small business (small_business = true), which charges no VAT")
        return out
    if treatment in ZERO_RATED:
        need(line.tax_rate == 0, f"the line charges {_rate(line.tax_rate)} VAT")
    if treatment in (T.INTRA_EU_SUPPLY, T.REVERSE_CHARGE):
        need(bool(vat_id), "the buyer has no VAT id")
        if buyer is None:
            out.append(f"{what}, but the buyer's country is unknown")
        elif buyer == seller:
            out.append(f"{what}, but the buyer is in {buyer}, the seller's own country")
        else:
            need(is_eu_member(buyer), f"the buyer's country {buyer} is not in the EU")
        if treatment == T.REVERSE_CHARGE:
            need(line.kind != LineKind.GOODS, "the line sells goods (reverse charge is for services)")
    elif treatment == T.EXPORT:
        if buyer is None:
            out.append(f"{what}, but the buyer's country is unknown")
        else:
            need(not is_eu_member(buyer) and buyer != seller,
                 f"the buyer's address is in {buyer}, inside the EU" if is_eu_member(buyer)
                 else f"the buyer is in {buyer}, the seller's own country")
    elif treatment == T.NOT_TAXABLE_HERE:
        need(buyer is not None and buyer != seller,
             "the buyer's country is unknown" if buyer is None else f"the buyer is in {buyer}, the seller's own country")
    elif treatment == T.SMALL_BUSINESS:
        need(small_business, "the pipeline's seller is not a small business (small_business is off)")
    elif treatment == T.OSS:
        need(oss, "the pipeline's seller is not registered for OSS (oss is off)")
        if buyer is None or buyer == seller or not is_eu_member(buyer):
            out.append(f"{what}, but the buyer is {'of unknown country' if buyer is None else 'in ' + buyer}, "
                       "not in another EU country")
        elif line.tax_rate not in eu_rates(buyer, day):
            out.append(f"{what} at {_rate(line.tax_rate)}, but {buyer} taxes at {_rates(buyer, day)}{on_day}")
    elif treatment in (T.STANDARD, T.REDUCED) and line.total != 0:
        # VAT of the seller's country: the rate must be one of that country's on the day.
        # 0 % is none: a tax-free line needs its reason (intra-EU supply, export, small
        # business, ...) stated by the source, which then names the treatment.
        rates = eu_rates(seller, day)
        if rates and line.tax_rate not in rates:
            if line.tax_rate == 0:
                out.append(f"line {index} ({line.description[:40]!r}) charges no VAT (0 %) and the source states no "
                           f"reason (intra-EU supply, export, small business, ...); 0 % is not a VAT rate of "
                           f"{seller}{on_day} ({_rates(seller, day)})")
            else:
                out.append(f"line {index} ({line.description[:40]!r}) charges {_rate(line.tax_rate)} VAT, but "
                           f"{seller}'s VAT rates{on_day} are {_rates(seller, day)}")
    return out


def _rates(country: str, day: date | None) -> str:
    return ", ".join(_rate(r) for r in eu_rates(country, day))


def treatment_reason(document: Document, line: Line, treatment: TaxTreatment, *, oss: bool,
                     small_business: bool) -> str:
    """Why ``treatment`` was chosen for this line, in a bookkeeper's words (for --dry-run)."""
    seller = normalise_country(document.seller_country or DEFAULT_SELLER_COUNTRY)
    buyer = normalise_country(document.buyer_country) if document.buyer_country else None
    vat_id = (document.customer.vat_id or "").strip()
    who = (f"a business in {buyer} (VAT id {vat_id})" if vat_id else f"a consumer in {buyer}") if buyer else \
        "a buyer of unknown country"
    what = "a service" if line.kind == LineKind.SERVICE else "goods" if line.kind == LineKind.GOODS else \
        str(line.kind)
    stated = "the source states it and the facts agree: " if document.treatment_hint == treatment else ""
    if treatment == T.SMALL_BUSINESS:
        return stated + "the pipeline's seller is a small business (small_business = true): no VAT"
    if treatment in (T.STANDARD, T.REDUCED):
        kind = "standard" if treatment == T.STANDARD else "a reduced"
        where = "" if buyer in (None, seller) else f"; VAT charged, so a supply taxed in {seller} though the " \
                                                   f"buyer is in {buyer}"
        return f"{stated}{_rate(line.tax_rate)} is {kind} rate in {seller}, the seller's country{where}"
    if treatment == T.INTRA_EU_SUPPLY:
        return f"{stated}{what} to {who}, another EU country: tax-free intra-EU supply (0 %)"
    if treatment == T.REVERSE_CHARGE:
        return f"{stated}{what} to {who}, another EU country: the buyer owes the VAT (reverse charge, 0 %)"
    if treatment == T.EXPORT:
        return f"{stated}{what} to {who}, outside the EU: tax-free export (0 %)"
    if treatment == T.NOT_TAXABLE_HERE:
        return f"{stated}{what} to {who}, outside the EU: not taxable in {seller} (0 %)"
    if treatment == T.OSS:
        return (f"{stated}{what} to {who}, another EU country, seller registered for OSS (oss = true): "
                f"{buyer}'s {_rate(line.tax_rate)}")
    return stated + str(treatment)


def document_problems(document: Document, treatments: list[TaxTreatment], *, oss: bool,
                      small_business: bool) -> list[str]:
    """The problems of every line (``treatments[i]`` is line i's)."""
    problems: list[str] = []
    for index, (line, treatment) in enumerate(zip(document.lines, treatments, strict=True), start=1):
        problems += treatment_problems(document, line, treatment, index=index, oss=oss,
                                       small_business=small_business)
    return problems


__all__ = ["document_problems", "treatment_problems", "treatment_reason"]
