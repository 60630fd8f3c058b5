"""Shipmondo source for ledgerlink: invoices from Shipmondo."""
