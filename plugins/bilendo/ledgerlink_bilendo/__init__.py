"""Bilendo target for ledgerlink: debtors, invoices, dunning status."""
