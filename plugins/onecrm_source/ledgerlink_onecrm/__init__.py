"""1CRM source for ledgerlink: invoices from 1CRM into receivables targets (Bilendo), their status back."""
