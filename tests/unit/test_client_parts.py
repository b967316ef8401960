"""The client's pure parts: Retry-After, the error envelope as exceptions, the retry policy, the
command's exit codes and file handling; and the API's list cursor."""

from __future__ import annotations

import email.utils
import io
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend.errors import ApiError as ServerApiError
from backend.pagination import decode_cursor, encode_cursor
from common import keys
from common.statuses import TaskStatus
from untxt import (
    RESULT_FORMATS,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    QuotaExceededError,
    RateLimitedError,
    ServerError,
    ServiceUnavailableError,
    Status,
    TransportError,
    WaitTimeoutError,
)
from untxt._transport import Call, Transport, api_error, retry_after_seconds
from untxt._uploads import file_source
from untxt.cli import ExitCode, exit_code, expand, result_path


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds("-4") == 0.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after_seconds(later) or 0) <= 31
    assert retry_after_seconds(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, InvalidRequestError),
        (413, InvalidRequestError),
        (422, InvalidRequestError),
        (401, AuthenticationError),
        (404, NotFoundError),
        (409, ConflictError),
        (429, RateLimitedError),
        (503, ServiceUnavailableError),
        (500, ServerError),
    ],
)
def test_the_error_envelope_becomes_a_typed_exception_with_its_code(status: int, kind: type) -> None:
    body = {"success": False, "error": {"code": "some_code", "message": "why", "results": [1]}}
    error = api_error(status, body, {"Retry-After": "7"})
    assert type(error) is kind
    assert (error.status, error.code, error.message, error.retry_after) == (status, "some_code", "why", 7.0)
    assert error.details == {"results": [1]}


def test_a_full_quota_is_its_own_error_and_never_retried() -> None:
    body = {"success": False, "error": {"code": "quota_exceeded", "message": "at most 2 queued tasks"}}
    error = api_error(429, body, {})
    assert type(error) is QuotaExceededError
    assert _transport()._retry_delay(Call("POST", "/api/tasks"), error, attempt=0) is None
    assert exit_code(error) == ExitCode.REJECTED


def test_an_answer_without_the_envelope_is_still_typed() -> None:
    error = api_error(502, None, {})
    assert (type(error), error.code) == (ServerError, "invalid_response")


def _transport(**options: float) -> Transport:
    return Transport("http://127.0.0.1:1", "key", timeout=5, max_retries=3, max_retry_wait=10, **options)  # type: ignore[arg-type]


def test_retry_policy_honours_retry_after_within_bounds() -> None:
    transport = _transport()
    upload = Call("POST", "/api/tasks")
    limited = RateLimitedError(429, "rate_limited", "slow down", retry_after=2.0)
    assert transport._retry_delay(upload, limited, attempt=0) == 2.0
    assert transport._retry_delay(upload, limited, attempt=3) is None  # retries spent
    too_long = RateLimitedError(429, "rate_limited", "later", retry_after=60.0)
    assert transport._retry_delay(upload, too_long, attempt=0) is None  # more than max_retry_wait
    busy = ServiceUnavailableError(503, "queue_unavailable", "down")
    assert transport._retry_delay(upload, busy, attempt=2) == 2.0  # no Retry-After: backoff
    assert transport._retry_delay(Call("POST", "/b", retry_statuses=(429,)), busy, attempt=0) is None
    refused = InvalidRequestError(400, "invalid_tag", "bad")
    assert transport._retry_delay(upload, refused, attempt=0) is None
    broken = TransportError("reset")
    assert transport._retry_delay(upload, broken, attempt=0) is None  # a POST may have landed
    assert transport._retry_delay(Call("GET", "/api/tasks"), broken, attempt=1) == 1.0
    assert transport._retry_delay(Call("POST", "/api/tasks", resend_after_disconnect=True), broken, attempt=0) == 0.5


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigurationError("no key", "missing_api_key"), ExitCode.USAGE),
        (InvalidRequestError(400, "invalid_tag", ""), ExitCode.REJECTED),
        (ConflictError(409, "result_not_ready", ""), ExitCode.REJECTED),
        (NotFoundError(404, "task_not_found", ""), ExitCode.NOT_FOUND),
        (AuthenticationError(401, "unauthorized", ""), ExitCode.AUTH),
        (RateLimitedError(429, "rate_limited", ""), ExitCode.UNAVAILABLE),
        (ServiceUnavailableError(503, "storage_unavailable", ""), ExitCode.UNAVAILABLE),
        (TransportError("refused"), ExitCode.UNAVAILABLE),
        (WaitTimeoutError("slow"), ExitCode.TIMEOUT),
        (ServerError(500, "internal_error", ""), ExitCode.ERROR),
    ],
)
def test_each_failure_has_its_exit_code(error: Exception, code: ExitCode) -> None:
    assert exit_code(error) == code  # type: ignore[arg-type]


def test_a_folder_contributes_its_supported_files_and_a_named_file_is_always_sent(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.pdf", "notes.txt", "sub/c.tif"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    named = tmp_path / "notes.txt"
    assert [p.name for p in expand((tmp_path, named), recursive=False)] == ["a.pdf", "b.PNG", "notes.txt"]
    assert [p.name for p in expand((tmp_path,), recursive=True)] == ["a.pdf", "b.PNG", "c.tif"]


def test_results_of_two_inputs_with_one_name_do_not_overwrite_each_other(tmp_path: Path) -> None:
    taken: set[Path] = set()
    first = result_path(tmp_path, Path("x/scan.png"), "alto", taken, "aaaaaaaa-1")
    second = result_path(tmp_path, Path("y/scan.png"), "alto", taken, "bbbbbbbb-2")
    assert (first.name, second.name) == ("scan.alto.xml", "scan-bbbbbbbb.alto.xml")
    assert result_path(tmp_path, Path("z.png"), "epub", taken, "c").name == "z.epub"


def test_a_file_is_read_from_a_path_bytes_or_a_file_object(tmp_path: Path) -> None:
    path = tmp_path / "scan.png"
    path.write_bytes(b"12345")
    for value, name in ((path, "scan.png"), (b"12345", "upload"), (io.BytesIO(b"12345"), "upload")):
        source = file_source(value)
        with source.open() as stream:
            assert (source.filename, source.size, stream.read()) == (name, 5, b"12345")
    assert file_source(b"1", filename="given.png").filename == "given.png"


def test_the_list_cursor_is_exact_to_the_microsecond_and_refuses_garbage() -> None:
    when = datetime(2026, 11, 25, 7, 30, 1, 123456, tzinfo=UTC)
    task_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
    assert decode_cursor(encode_cursor(when, task_id)) == (when, task_id)
    for garbage in ("", "!!", encode_cursor(when, task_id)[:-3]):
        with pytest.raises(ServerApiError):
            decode_cursor(garbage)


def test_the_client_knows_every_status_and_format_the_server_has() -> None:
    # The client ships alone (no common/), so it keeps its own copies; they must not drift.
    assert [s.value for s in Status] == [s.value for s in TaskStatus]
    assert set(keys.RESULT_FORMATS) <= set(RESULT_FORMATS)
