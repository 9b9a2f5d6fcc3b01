"""Implementations of the longer CLI commands (flags are parsed in animesis.cli)."""
