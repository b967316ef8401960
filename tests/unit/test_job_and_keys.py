import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from common import keys
from common.events import TaskEvent
from common.job import InvalidJobMessageError, JobMessage
from common.statuses import TaskStatus


def test_job_message_round_trips() -> None:
    message = JobMessage.new(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), "eng+vie", 7)
    assert JobMessage.from_json(message.to_json()) == message
    traced = replace(message, request_id="req-1", trace={"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"})
    assert JobMessage.from_json(traced.to_json()) == traced


def test_a_message_without_the_optional_fields_still_parses() -> None:
    """What the API queued before request ids and trace contexts existed."""
    ids = [str(uuid.uuid4()) for _ in range(3)]
    old = json.dumps(
        {
            "task_id": ids[0],
            "file_id": ids[1],
            "user_id": ids[2],
            "language": "eng",
            "priority": 5,
            "enqueued_at": "2026-01-01T00:00:00Z",
            "v": 1,
        }
    )
    message = JobMessage.from_json(old)
    assert (message.task_id, message.request_id, message.trace, message.express) == (ids[0], None, {}, False)


@pytest.mark.parametrize(
    ("request_id", "trace"),
    [("has space", []), ("x" * 129, {"traceparent": 5}), ('"quoted"', {"k": "v" * 2000}), (7, "00-ab")],
)
def test_a_malformed_request_id_or_trace_context_is_dropped_not_the_job(request_id: object, trace: object) -> None:
    data = json.loads(JobMessage.new(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), "eng", 5).to_json())
    message = JobMessage.from_json(json.dumps({**data, "request_id": request_id, "trace": trace}))
    assert (message.request_id, message.trace) == (None, {})


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"{}", b'{"task_id": "nope"}', b"[]", b'{"task_id": "%s", "v": 99}' % str(uuid.uuid4()).encode()],
)
def test_malformed_job_messages_are_rejected(raw: bytes) -> None:
    with pytest.raises(InvalidJobMessageError):
        JobMessage.from_json(raw)


def test_s3_key_scheme_matches_the_contract() -> None:
    when = datetime(2026, 3, 9, tzinfo=UTC)
    assert keys.upload_key("u", "f", "scan.png", when) == "uploads/u/2026-03/f/scan.png"
    assert keys.results_prefix("u", "f", when) == "results/u/2026-03/f/"
    # A run's results in its attempt's folder; the other formats beside the primary one.
    primary = keys.result_key("u", "f", when, 3)
    assert primary == "results/u/2026-03/f/3/result.html"
    assert keys.result_key("u", "f", when, 3, "alto") == "results/u/2026-03/f/3/result.alto.xml"
    assert keys.result_variant(primary, "txt") == "results/u/2026-03/f/3/result.txt"
    assert keys.results_prefix_of(primary) == "results/u/2026-03/f/"
    # Rows written before results went per run keep working.
    legacy = "results/u/2026-03/f/result.html"
    assert keys.result_variant(legacy, "json") == "results/u/2026-03/f/result.json"
    assert keys.results_prefix_of(legacy) == "results/u/2026-03/f/"


def test_s3_key_months_are_utc_months() -> None:
    """The worker's timestamps come in its database session's time zone, the API's in UTC."""
    utc = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
    berlin = utc.astimezone(timezone(timedelta(hours=1)))
    assert berlin.month == 2
    assert keys.results_prefix("u", "f", berlin) == keys.results_prefix("u", "f", utc) == "results/u/2026-01/f/"


def test_task_event_json_is_camel_case() -> None:
    event = TaskEvent("t", "u", TaskStatus.FAILED, 0, "bad", error_code="corrupt_file")
    assert '"taskId":"t"' in event.to_json()
    assert '"errorCode":"corrupt_file"' in event.to_json()
    assert event.timestamp.endswith("Z")
