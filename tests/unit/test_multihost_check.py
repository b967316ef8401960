"""The multi-host drill's verdict on result objects (scripts/drills/multihost_check.py): the
recorded run's folder holds every object of a file's results, each written once."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from common import keys
from scripts.drills.multihost_check import (
    Objects,
    Task,
    Verdict,
    find_duplicates,
    find_lost,
    find_orphans,
    stale_folders,
)

WHEN = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
ALL = list(keys.RESULT_FORMATS)


def _task(task_id: str, attempts: int, recorded: int | None, status: str = "completed") -> Task:
    key = keys.result_key("u", f"f-{task_id}", WHEN, recorded) if recorded else None
    return Task(
        task_id,
        status,
        attempts,
        0,
        "worker2-0",
        WHEN,
        None,
        ALL,
        f"{task_id}.png",
        key,
        "u",
        1,
        1.0,
        f"f-{task_id}",
        WHEN,
    )


def _run(task: Task, attempt: int, times: int = 1, deleted: bool = False) -> Objects:
    folder = keys.result_key("u", task.file_id, WHEN, attempt).rsplit("/", 1)[0] + "/"
    written = Counter({folder + f.filename: times for f in keys.RESULT_FORMATS.values()})
    return Objects(written, set() if deleted else set(written))


def _merge(*parts: Objects) -> Objects:
    merged = Objects(Counter(), set())
    for part in parts:
        merged.written.update(part.written)
        merged.present |= part.present
    return merged


def test_a_loser_that_deleted_its_folder_passes() -> None:
    task = _task("a", attempts=2, recorded=2)
    objects = _merge(_run(task, 1, deleted=True), _run(task, 2))
    tasks = {"a": task}
    assert find_orphans(tasks, objects) == {}
    assert find_duplicates(tasks, objects.written) == {}
    assert find_lost(Verdict(), {"a": {}}, tasks, objects) == set()
    assert stale_folders(tasks, objects) == (1, 1)


def test_a_loser_folder_left_behind_is_an_orphan() -> None:
    task = _task("a", attempts=2, recorded=2)
    objects = _merge(_run(task, 1), _run(task, 2))
    orphans = find_orphans({"a": task}, objects)
    assert list(orphans) == ["a"]
    assert len(orphans["a"]) == len(keys.RESULT_FORMATS)
    assert all("/1/" in key for key in orphans["a"])
    assert stale_folders({"a": task}, objects) == (1, 0)


def test_any_result_object_of_a_failed_task_is_an_orphan() -> None:
    task = _task("a", attempts=1, recorded=None, status="failed")
    assert list(find_orphans({"a": task}, _run(task, 1))) == ["a"]
    assert find_orphans({"a": task}, _run(task, 1, deleted=True)) == {}


def test_two_versions_in_the_recorded_folder_or_another_runs_folder_recorded_are_duplicates() -> None:
    task = _task("a", attempts=1, recorded=1)
    assert "written more than once" in find_duplicates({"a": task}, _run(task, 1, times=2).written)["a"][0]
    earlier = _task("b", attempts=2, recorded=1)
    assert "not the completing run's" in find_duplicates({"b": earlier}, _run(earlier, 1).written)["b"][0]
