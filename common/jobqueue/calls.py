"""Every operation of the job protocol as one script call: which script, with which keys and
arguments, and how to read its answer. The sync (worker) and asyncio (API) faces only run
these, so each operation is written once for both."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
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
    """Jobs waiting per priority (10 first, both lanes), users with jobs waiting in the fair
    lane, dead letters, and jobs in each slot's processing list."""

    waiting: dict[int, int]
    dead: int
    processing: dict[str, int] = field(default_factory=dict)
    users_waiting: int = 0

    def lengths(self) -> dict[str, int]:
        """Flat, by a stable label (never a user's id): ``waiting:pNN``, ``dead``,
        ``processing:<slot>``."""
        out = {f"waiting:p{p:02d}": n for p, n in self.waiting.items()}
        out["dead"] = self.dead
        out.update({f"processing:{slot}": n for slot, n in self.processing.items()})
        return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _task_id(raw: bytes | str) -> str | None:
    try:
        return str(json.loads(raw)["task_id"])
    except (ValueError, KeyError, TypeError):
        return None


def _list_of(names: RedisNames, message: JobMessage) -> str:
    return names.band(message.user_id, message.priority, message.express)


def _queue_user(message: JobMessage) -> str:
    """The user as the scripts know a job's owner: '' in the express lane, which has no turns."""
    return "" if message.express else message.user_id


def enqueue(names: RedisNames, message: JobMessage, event: TaskEvent | None = None, next_up: bool = False) -> Call[int]:
    """Put ``message`` on its list (and announce ``event``, its 'queued' state, in the same step,
    so no worker can announce progress before it); answers the job's queue position."""
    return Call(
        scripts.ENQUEUE,
        [names.task_status(message.task_id), names.signal, names.ring, _list_of(names, message)],
        [
            message.to_json(),
            _queue_user(message),
            message.priority,
            int(next_up),
            SIGNAL_CAP,
            TASK_STATUS_TTL_SECONDS,
            event.to_json() if event else "",
            names.task_events,
            names.user_queue_root,
            names.express_root,
        ],
        int,
    )


# What FETCH answers when only users the slot must pass over have jobs waiting.
OTHERS_WAIT = "others-wait"


def _parse_fetch(reply: Any) -> bytes | str | None:
    if isinstance(reply, int):
        return OTHERS_WAIT if reply else None
    return reply or None


def fetch(names: RedisNames, slot_id: str, pass_over: Iterable[str] = ()) -> Call[bytes | str | None]:
    """The next job (bytes), moved into the slot's processing list; ``OTHERS_WAIT`` when only
    users in ``pass_over`` have jobs waiting; None when nothing waits."""
    return Call(
        scripts.FETCH,
        [names.processing(slot_id), names.processing_slots, names.ring],
        [slot_id, names.user_queue_root, names.express_root, *sorted(pass_over)],
        _parse_fetch,
    )


def hand_back(names: RedisNames, slot_id: str, raw: bytes) -> Call[bool]:
    """Raises InvalidJobMessageError for a message that names no list (bury it instead)."""
    message = JobMessage.from_json(raw)
    return Call(
        scripts.HAND_BACK,
        [
            names.processing(slot_id),
            names.task_status(message.task_id),
            names.signal,
            names.ring,
            _list_of(names, message),
        ],
        [raw, _queue_user(message), message.priority, SIGNAL_CAP, TASK_STATUS_TTL_SECONDS],
        bool,
    )


def bury(names: RedisNames, slot_id: str, raw: bytes) -> Call[bool]:
    return Call(scripts.BURY, [names.processing(slot_id), names.dead_letter], [raw], bool)


def _every_list(names: RedisNames) -> tuple[list[str], list[str | int | float]]:
    return (
        [names.processing_slots, names.dead_letter, names.ring],
        [names.processing(""), names.user_queue_root, names.express_root],
    )


def holdings(names: RedisNames) -> Call[set[str]]:
    """The task ids of every job in any list (waiting, processing lists, dead letters)."""
    keys_, args = _every_list(names)
    return Call(scripts.HOLDINGS, keys_, args, lambda raws: {task_id for raw in raws if (task_id := _task_id(raw))})


def _parse_stats(reply: list[Any]) -> QueueStats:
    dead, users, bands = int(reply[0]), int(reply[1]), reply[2 : 2 + len(PRIORITIES)]
    slots = reply[2 + len(PRIORITIES) :]
    waiting = {p: int(n) for p, n in zip(reversed(PRIORITIES), bands, strict=True)}
    processing = {_text(slots[i]): int(slots[i + 1]) for i in range(0, len(slots), 2)}
    return QueueStats(waiting, dead, processing, users)


def stats(names: RedisNames) -> Call[QueueStats]:
    keys_, args = _every_list(names)
    return Call(scripts.STATS, keys_, args, _parse_stats)


def _parse_status(flat: list[Any]) -> dict[str, str] | None:
    state = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
    return state if "status" in state else None


def status(names: RedisNames, task_id: str) -> Call[dict[str, str] | None]:
    """The cached state of a task (with ``queuePosition`` while it waits), or None if not cached."""
    return Call(
        scripts.STATUS,
        [names.task_status(task_id), names.ring],
        [names.user_queue_root, names.express_root],
        _parse_status,
    )


def withdraw(names: RedisNames, task_id: str) -> Call[bool]:
    return Call(scripts.WITHDRAW, [names.task_status(task_id), names.ring], [names.user_queue_root], bool)


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
