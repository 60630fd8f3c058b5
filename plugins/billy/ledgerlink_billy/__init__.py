"""Billy target for ledgerlink: invoices as drafts or approved, contacts, products, bank payments."""
