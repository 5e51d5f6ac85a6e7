"""Errors that become failure rows instead of crashes."""
from __future__ import annotations


class DecodeError(Exception):
    """A file could not be decoded. ``kind`` is one of :data:`KINDS`."""

    KINDS = ("empty", "unreadable", "corrupt", "truncated", "unsupported", "bomb", "raw", "database", "internal", "crash")

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __reduce__(self):  # keep kind and message across process boundaries
        return (DecodeError, (self.kind, self.message))
