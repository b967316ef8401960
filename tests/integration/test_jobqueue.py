"""The job protocol's operations against the real Redis, in milliseconds: each test has its own
key prefix, so it sees only its own jobs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis

from common.events import TaskEvent
from common.job import JobMessage
from common.jobqueue import JobQueue, RedisNames
from common.settings import Settings
from common.statuses import TaskStatus


@pytest.fixture
def fresh(settings: Settings) -> Iterator[JobQueue]:
    client = redis.Redis.from_url(settings.redis_url)
    yield JobQueue(client, RedisNames(f"t{uuid.uuid4().hex[:10]}"))
    client.close()


def _job(priority: int = 5, user_id: str | None = None) -> JobMessage:
    return JobMessage.new(str(uuid.uuid4()), str(uuid.uuid4()), user_id or str(uuid.uuid4()), "eng", priority)


def _task(raw: bytes | None) -> str:
    assert raw is not None
    return str(json.loads(raw)["task_id"])


def test_default_names_are_the_contracts() -> None:
    names = RedisNames()
    assert names.band(10) == "ocr:task:queue:p10"
    assert names.bands[0] == "ocr:task:queue:p10"
    assert names.bands[-1] == "ocr:task:queue:p01"
    assert names.processing("host-1-abc-0") == "ocr:task:processing:host-1-abc-0"
    assert names.dead_letter == "ocr:task:dead"
    assert names.task_events == "ocr:task:events"
    with pytest.raises(ValueError, match="REDIS_KEY_PREFIX"):
        RedisNames("a{b}")


def test_fetch_takes_the_most_urgent_band_first_and_oldest_first(fresh: JobQueue) -> None:
    low, high, high2 = _job(1), _job(9), _job(9)
    for message in (low, high, high2):
        fresh.enqueue(message)
    taken = [_task(fresh.fetch("s", 0.1)) for _ in range(3)]
    assert taken == [high.task_id, high2.task_id, low.task_id]
    assert fresh.fetch("s", 0.1) is None
    assert [_task(m) for m in fresh.messages("s")] == [low.task_id, high2.task_id, high.task_id]


def test_ack_removes_the_job_from_the_slots_list_only(fresh: JobQueue) -> None:
    fresh.enqueue(_job())
    raw = fresh.fetch("s", 0.1)
    assert raw is not None
    assert fresh.holdings() == {_task(raw)}
    fresh.ack("s", raw)
    assert fresh.messages("s") == []
    assert fresh.holdings() == set()


def test_hand_back_returns_the_job_to_the_taking_end_once(fresh: JobQueue) -> None:
    first, second = _job(), _job()
    fresh.enqueue(first)
    fresh.enqueue(second)
    raw = fresh.fetch("s", 0.1)
    assert _task(raw) == first.task_id
    assert raw is not None
    assert fresh.hand_back("s", raw) is True
    assert fresh.hand_back("s", raw) is False  # gone from the list: no second copy
    assert _task(fresh.fetch("t", 0.1)) == first.task_id  # next up again, before ``second``
    assert fresh.stats().waiting[5] == 1


def test_bury_moves_the_job_to_the_dead_letters(fresh: JobQueue) -> None:
    message = _job()
    fresh.enqueue(message)
    raw = fresh.fetch("s", 0.1)
    assert raw is not None
    assert fresh.bury("s", raw) is True
    assert fresh.bury("s", raw) is False
    stats = fresh.stats()
    assert (stats.dead, stats.processing) == (1, {"s": 0})
    assert fresh.holdings() == {message.task_id}


def test_holdings_and_stats_see_every_list(fresh: JobQueue) -> None:
    waiting, taken = _job(3), _job(7)
    fresh.enqueue(taken)
    fresh.fetch("s", 0.1)
    fresh.enqueue(waiting)
    assert fresh.holdings() == {waiting.task_id, taken.task_id}
    stats = fresh.stats()
    assert stats.waiting[3] == 1
    assert sum(stats.waiting.values()) == 1
    assert stats.processing == {"s": 1}
    assert stats.lengths(fresh.names)[fresh.names.processing("s")] == 1


def test_a_slot_is_forgotten_only_once_its_list_is_empty(fresh: JobQueue) -> None:
    fresh.enqueue(_job())
    raw = fresh.fetch("s", 0.1)
    assert raw is not None
    assert fresh.forget_slot("s") is False
    assert fresh.dead_slots(frozenset()) == ["s"]  # no heartbeat
    assert fresh.dead_slots(frozenset({"s"})) == []  # never the caller's own
    fresh.heartbeat("s", 5, None)
    assert fresh.dead_slots(frozenset()) == []
    fresh.ack("s", raw)
    fresh.retire("s")
    assert fresh.stats().processing == {}


def test_enqueue_answers_the_position_and_announces_the_event(fresh: JobQueue) -> None:
    pubsub = fresh.client.pubsub()
    pubsub.subscribe(fresh.names.task_events)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    urgent, first, second = _job(9), _job(4), _job(4)
    assert fresh.enqueue(urgent) == 1
    assert fresh.enqueue(first) == 2
    assert fresh.enqueue(second) == 3
    event = TaskEvent(first.task_id, first.user_id, TaskStatus.QUEUED, 0, "queued")
    assert fresh.announce(event) == 1
    message = pubsub.get_message(timeout=2)
    assert message is not None
    assert json.loads(message["data"])["seq"] == 1
    pubsub.close()
    state = fresh.client.hgetall(fresh.names.task_status(first.task_id))
    assert state[b"status"] == b"queued"
    assert state[b"band"] == fresh.names.band(4).encode()
