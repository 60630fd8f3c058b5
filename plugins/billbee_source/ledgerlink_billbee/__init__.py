"""Billbee source for ledgerlink: webshop orders and customers."""
