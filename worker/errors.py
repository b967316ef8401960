"""Failures that end a task, each with a stable code callers can act on."""

from __future__ import annotations


class JobFailedError(Exception):
    """A permanent failure: retrying the same input would fail the same way."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
