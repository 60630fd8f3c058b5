"""sevDesk target for ledgerlink: vouchers, invoices, contacts, payments."""
