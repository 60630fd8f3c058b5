"""The version of the ledgerlink distribution (one place; the package and the HTTP client read it)."""

__version__ = "0.1.0"
