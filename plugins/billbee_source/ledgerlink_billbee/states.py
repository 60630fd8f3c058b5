"""Billbee's order states and payment types: ids and the names operators write.

The state ids and English names are those of the API description
(``PUT /orders/{id}/orderstate``); the names are written in snake case so they
can be typed in a config file (``demand_note_1`` for "demand note 1").
"""

from __future__ import annotations

ORDER_STATES: dict[str, int] = {
    "ordered": 1,
    "confirmed": 2,
    "paid": 3,
    "shipped": 4,
    "reclamation": 5,
    "deleted": 6,
    "closed": 7,
    "canceled": 8,
    "archived": 9,
    "demand_note_1": 11,
    "demand_note_2": 12,
    "packed": 13,
    "offered": 14,
    "payment_reminder": 15,
    "fulfilling": 16,
}
"""State name -> ``OrderStateId``. 10 ("not used") and 17 (undocumented) have no name."""

STATE_NAMES: dict[int, str] = {v: k for k, v in ORDER_STATES.items()}

# Spellings people use for the same state.
_ALIASES = {"cancelled": "canceled", "demand_note1": "demand_note_1", "demand_note2": "demand_note_2"}


def normalise_state_name(name: str) -> str:
    key = "_".join(name.strip().lower().replace("-", " ").split())
    return _ALIASES.get(key, key)


def state_id(name: str) -> int:
    """The id of a state name; ``ValueError`` listing the valid names if unknown."""
    key = normalise_state_name(name)
    if key not in ORDER_STATES:
        raise ValueError(
            f"unknown Billbee order state {name!r}; valid names are: {', '.join(ORDER_STATES)}"
        )
    return ORDER_STATES[key]


def state_name(state: object) -> str:
    """The name of a state id, or ``"state <id>"`` for ids without a name."""
    if isinstance(state, int) and not isinstance(state, bool) and state in STATE_NAMES:
        return STATE_NAMES[state]
    return f"state {state}"


PAYMENT_TYPES: dict[int, str] = {
    1: "bank transfer",
    2: "cash on delivery",
    3: "PayPal",
    4: "cash",
    6: "voucher",
    22: "other",
    26: "invoice",
    31: "credit card",
    59: "prepayment",
}
"""The common ``PaymentType`` ids (C# SDK ``PaymentTypeEnum``); others are shown by id."""


def payment_type_name(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and value in PAYMENT_TYPES:
        return PAYMENT_TYPES[value]
    return f"payment type {value}"
