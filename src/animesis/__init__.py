"""animesis: paint a specific anime character from a semantic label map."""

__version__ = "0.1.0"
