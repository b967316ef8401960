"""Failures that end a task, each with a stable code callers can act on."""

from __future__ import annotations


class JobFailedError(Exception):
    """A permanent failure: retrying the same input would fail the same way.

    ``message`` is for the user (it is stored on the task and shown by the API); ``detail`` is
    for the logs only: a decoder's own words name this host's file paths and library versions.
    """

    def __init__(self, code: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail
