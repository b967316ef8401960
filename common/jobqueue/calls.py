"""Every operation of the job protocol as one script call: which script, with which keys and
arguments, and how to read its answer. The sync (worker) and asyncio (API) faces only run
these, so each operation is written once for both."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from common.events import TaskEvent
from common.job import JobMessage
from common.jobqueue import scripts
from common.jobqueue.names import PRIORITIES, RedisNames

T = TypeVar("T")

# The wake-up list is capped: a busy worker finds work without it, an idle one needs one token.
SIGNAL_CAP = 64
TASK_STATUS_TTL_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Call(Generic[T]):
    script: scripts.Script
    keys: list[str]
    args: list[str | int | float]
    parse: Callable[[Any], T]


class Face:
    """What both faces share: the client, the names, and the scripts registered with the client
    (redis-py sends EVALSHA and loads a script the server does not know yet)."""

    def __init__(self, client: Any, names: RedisNames) -> None:
        self.client = client
        self.names = names
        self._scripts: dict[scripts.Script, Any] = {}

    def _script(self, call: Call[Any]) -> Any:
        script = self._scripts.get(call.script)
        if script is None:
            script = self._scripts[call.script] = self.client.register_script(call.script.source)
        return script


@dataclass(frozen=True)
class QueueStats:
    """Jobs waiting per priority (10 first), dead letters, and jobs in each slot's processing list."""

    waiting: dict[int, int]
    dead: int
    processing: dict[str, int] = field(default_factory=dict)

    def lengths(self, names: RedisNames) -> dict[str, int]:
        """By list name: every band, the dead letters, every processing list."""
        out = {names.band(p): n for p, n in self.waiting.items()}
        out[names.dead_letter] = self.dead
        out.update({names.processing(slot): n for slot, n in self.processing.items()})
        return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _task_id(raw: bytes | str) -> str | None:
    try:
        return str(json.loads(raw)["task_id"])
    except (ValueError, KeyError, TypeError):
        return None


def enqueue(names: RedisNames, message: JobMessage, event: TaskEvent | None = None, next_up: bool = False) -> Call[int]:
    """Put ``message`` on its band (and announce ``event``, its 'queued' state, in the same step,
    so no worker can announce progress before it); answers the job's queue position."""
    band = names.band(message.priority)
    return Call(
        scripts.ENQUEUE,
        [names.task_status(message.task_id), names.signal, *names.bands],
        [
            message.to_json(),
            names.bands.index(band) + 1,
            int(next_up),
            SIGNAL_CAP,
            TASK_STATUS_TTL_SECONDS,
            event.to_json() if event else "",
            names.task_events,
        ],
        int,
    )


def fetch(names: RedisNames, slot_id: str) -> Call[bytes | None]:
    return Call(
        scripts.FETCH, [names.processing(slot_id), names.processing_slots, *names.bands], [slot_id], lambda r: r or None
    )


def hand_back(names: RedisNames, slot_id: str, raw: bytes) -> Call[bool]:
    """Raises InvalidJobMessageError for a message that names no band (bury it instead)."""
    message = JobMessage.from_json(raw)
    return Call(
        scripts.HAND_BACK,
        [names.processing(slot_id), names.task_status(message.task_id), names.signal, names.band(message.priority)],
        [raw, SIGNAL_CAP, TASK_STATUS_TTL_SECONDS],
        bool,
    )


def bury(names: RedisNames, slot_id: str, raw: bytes) -> Call[bool]:
    return Call(scripts.BURY, [names.processing(slot_id), names.dead_letter], [raw], bool)


def holdings(names: RedisNames) -> Call[set[str]]:
    """The task ids of every job in any list (bands, processing lists, dead letters)."""
    return Call(
        scripts.HOLDINGS,
        [names.processing_slots, names.dead_letter, *names.bands],
        [names.processing("")],
        lambda raws: {task_id for raw in raws if (task_id := _task_id(raw))},
    )


def _parse_stats(reply: list[Any]) -> QueueStats:
    dead, bands, slots = int(reply[0]), reply[1 : 1 + len(PRIORITIES)], reply[1 + len(PRIORITIES) :]
    waiting = {p: int(n) for p, n in zip(reversed(PRIORITIES), bands, strict=True)}
    processing = {_text(slots[i]): int(slots[i + 1]) for i in range(0, len(slots), 2)}
    return QueueStats(waiting, dead, processing)


def stats(names: RedisNames) -> Call[QueueStats]:
    return Call(
        scripts.STATS, [names.processing_slots, names.dead_letter, *names.bands], [names.processing("")], _parse_stats
    )


def _parse_status(flat: list[Any]) -> dict[str, str] | None:
    state = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
    return state if "status" in state else None


def status(names: RedisNames, task_id: str) -> Call[dict[str, str] | None]:
    """The cached state of a task (with ``queuePosition`` while it waits), or None if not cached."""
    return Call(scripts.STATUS, [names.task_status(task_id), *names.bands], [], _parse_status)


def withdraw(names: RedisNames, task_id: str, priority: int) -> Call[bool]:
    return Call(scripts.WITHDRAW, [names.task_status(task_id), names.band(priority)], [], bool)


def forget_slot(names: RedisNames, slot_id: str) -> Call[bool]:
    return Call(scripts.FORGET_SLOT, [names.processing(slot_id), names.processing_slots], [slot_id], bool)


def announce(names: RedisNames, event: TaskEvent) -> Call[int]:
    return Call(
        scripts.ANNOUNCE,
        [names.task_status(event.task_id)],
        [event.to_json(), TASK_STATUS_TTL_SECONDS, names.task_events],
        int,
    )


def release_lock(names: RedisNames, token: str) -> Call[bool]:
    return Call(scripts.RELEASE_LOCK, [names.recovery_lock], [token], bool)
