"""The job protocol's operations against the real Redis, in milliseconds: each test has its own
key prefix, so it sees only its own jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from common.events import TaskEvent
from common.job import JobMessage
from common.jobqueue import AsyncJobQueue, JobQueue, RedisNames
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


def _job_express(priority: int) -> JobMessage:
    return dataclasses.replace(_job(priority), express=True)


def test_default_names_begin_as_the_contract_says_and_share_one_cluster_slot() -> None:
    names = RedisNames()
    user = str(uuid.uuid4())
    assert names.user_band(user, 10) == f"ocr:task:queue:{{ocr}}:user:{user}:p10"
    assert names.user_bands(user)[-1].endswith(":p01")
    assert names.express_band(9) == "ocr:task:queue:{ocr}:express:p09"
    assert names.processing("host-1-abc-0") == "ocr:task:processing:{ocr}:host-1-abc-0"
    assert names.dead_letter == "ocr:task:dead:{ocr}"
    assert names.task_events == "ocr:task:events"
    protocol = [
        names.user_band(user, 3),
        names.express_band(10),
        names.ring,
        names.signal,
        names.processing_slots,
        names.processing("s"),
        names.dead_letter,
        names.task_status(str(uuid.uuid4())),
    ]
    assert len({key_slot(name.encode()) for name in protocol}) == 1
    assert key_slot(RedisNames("other").ring.encode()) != key_slot(names.ring.encode())
    with pytest.raises(ValueError, match="REDIS_KEY_PREFIX"):
        RedisNames("a{b}")


def test_one_users_jobs_go_most_urgent_first_then_oldest_first(fresh: JobQueue) -> None:
    user = str(uuid.uuid4())
    low, high, high2 = _job(1, user), _job(9, user), _job(9, user)
    for message in (low, high, high2):
        fresh.enqueue(message)
    assert fresh.client.llen(fresh.names.user_band(user, 9)) == 2  # the scripts build the same names
    taken = [_task(fresh.fetch("s", 0.1)) for _ in range(3)]
    assert taken == [high.task_id, high2.task_id, low.task_id]
    assert fresh.fetch("s", 0.1) is None
    assert [_task(m) for m in fresh.messages("s")] == [low.task_id, high2.task_id, high.task_id]
    assert fresh.client.llen(fresh.names.ring) == 0


def test_users_take_turns_whatever_their_priorities(fresh: JobQueue) -> None:
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    backlog = [_job(10, a) for _ in range(4)]
    for message in backlog:
        fresh.enqueue(message)
    one_of_b = _job(1, b)
    two_of_c = [_job(5, c), _job(5, c)]
    for message in (one_of_b, *two_of_c):
        fresh.enqueue(message)
    taken = [_task(fresh.fetch("s", 0.1)) for _ in range(7)]
    assert taken == [
        backlog[0].task_id,
        one_of_b.task_id,
        two_of_c[0].task_id,
        backlog[1].task_id,
        two_of_c[1].task_id,
        backlog[2].task_id,
        backlog[3].task_id,
    ]


def test_the_express_lane_goes_first_most_urgent_first(fresh: JobQueue) -> None:
    user = str(uuid.uuid4())
    fair = _job(10, user)
    fresh.enqueue(fair)
    urgent, more_urgent = _job_express(9), _job_express(10)
    assert fresh.enqueue(urgent) == 1
    assert fresh.enqueue(more_urgent) == 1
    taken = [_task(fresh.fetch("s", 0.1)) for _ in range(3)]
    assert taken == [more_urgent.task_id, urgent.task_id, fair.task_id]


def test_a_slot_passes_over_users_who_hold_their_share(fresh: JobQueue) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    for message in (_job(5, a), _job(5, a)):
        fresh.enqueue(message)
    started = time.monotonic()
    assert fresh.fetch("s", 5.0, pass_over={a}) is None  # only a's work waits: a short look, then None
    assert time.monotonic() - started < 2.0
    late = _job(5, b)
    fresh.enqueue(late)
    assert _task(fresh.fetch("s", 0.1, pass_over={a})) == late.task_id
    assert fresh.client.lrange(fresh.names.ring, 0, -1) == [a.encode()]  # a kept its place
    assert _task(fresh.fetch("s", 0.1)) is not None


def test_positions_count_turns(fresh: JobQueue) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert [fresh.enqueue(_job(5, a)) for _ in range(3)] == [1, 2, 3]
    # b's first job is taken after a's first (a is ahead in the ring), before a's second.
    b_first = _job(5, b)
    assert fresh.enqueue(b_first) == 2
    assert fresh.enqueue(_job(5, b)) == 4
    express = _job_express(10)
    assert fresh.enqueue(express) == 1
    event = TaskEvent(b_first.task_id, b, TaskStatus.QUEUED, 0, "queued")
    fresh.announce(event)
    state = fresh.status(b_first.task_id)
    assert state is not None
    assert state["queuePosition"] == "3"  # behind the express job and a's first


def test_withdraw_removes_the_job_and_an_emptied_user(fresh: JobQueue, settings: Settings) -> None:
    user = str(uuid.uuid4())
    message = _job(4, user)
    fresh.enqueue(message)
    aio = AsyncJobQueue(aioredis.Redis.from_url(settings.redis_url), fresh.names)

    async def withdraw() -> bool:
        try:
            return await aio.withdraw(message.task_id)
        finally:
            await aio.client.aclose()

    assert asyncio.run(withdraw()) is True
    assert fresh.client.llen(fresh.names.ring) == 0
    assert fresh.holdings() == set()


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
    assert fresh.stats().users_waiting == 1


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
    assert stats.lengths()["processing:s"] == 1
    assert stats.lengths()["waiting:p03"] == 1


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
    user = str(uuid.uuid4())
    urgent, first, second = _job(9, user), _job(4, user), _job(4, user)
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
    assert state[b"band"] == fresh.names.user_band(user, 4).encode()
