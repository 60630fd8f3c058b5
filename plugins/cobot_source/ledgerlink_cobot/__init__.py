"""Cobot source for ledgerlink: coworking members and invoices."""
