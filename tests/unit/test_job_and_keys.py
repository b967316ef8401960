import uuid
from datetime import UTC, datetime

import pytest

from common import keys
from common.events import TaskEvent
from common.job import InvalidJobMessageError, JobMessage
from common.statuses import TaskStatus


def test_job_message_round_trips() -> None:
    message = JobMessage.new(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()), "eng+vie", 7)
    assert JobMessage.from_json(message.to_json()) == message


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
    assert keys.result_key("u", "f", when) == "results/u/2026-03/f/result.html"


def test_task_event_json_is_camel_case() -> None:
    event = TaskEvent("t", "u", TaskStatus.FAILED, 0, "bad", error_code="corrupt_file")
    assert '"taskId":"t"' in event.to_json()
    assert '"errorCode":"corrupt_file"' in event.to_json()
    assert event.timestamp.endswith("Z")
