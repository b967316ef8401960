"""The multi-host drill's verdict (``scripts/drills/multihost.sh``), from PostgreSQL, S3 and the
worker hosts' JSON-lines logs, never from Redis (its key names are the job protocol's business).

``python -m scripts.drills.multihost_check versioning`` turns on versioning in the drill's
bucket, so S3 keeps every write of every result object.

``python -m scripts.drills.multihost_check verdict STATE --worker-log NAME=PATH … --cut-host NAME``
prints ``submitted / completed / failed / lost / duplicated`` (then the orphans) and what they
rest on, and exits 1 on any loss, duplicate or orphan, an upload never accepted, a disruption
that came after the last task ended, or a WebSocket that missed the end of the other API host's
tasks.

Each job run writes its results under a folder of its own (results/{user}/{YYYY-MM}/{file_id}/
{attempt}/, common/keys.py) and the completing run's key is recorded in ``files.s3_result_key``:

* lost: a task accepted but missing from PostgreSQL, not finished, or completed with a result
  object missing from the recorded folder.
* duplicated: a task completed twice (PostgreSQL's outbox trigger writes one ``task.completed``
  row per change to completed, whoever made it), a result object of the recorded folder written
  more than once (S3 versions), a recorded folder that is not the completing run's (the
  task's last claim, ``tasks.attempts``), or one upload that became two tasks.
* orphans: a finished task with an object under its file's results prefix outside the recorded
  folder (for a task not completed: any object there), i.e. a run that lost the task left its
  folder behind. A run that lost it and deleted its folder leaves only delete markers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import psycopg2

from common import keys
from common.s3config import s3_client_kwargs
from common.settings import Settings

TERMINAL = frozenset({"completed", "failed", "cancelled"})
# Events are best effort while a store is away (docs/architecture.md): a task that finished in
# an outage, or within this long after it (the API hosts resubscribe, the workers reconnect),
# may have no event to relay.
OUTAGE_MARGIN_SECONDS = 5.0
# Worker log lines that tell how a host's jobs went around the disruptions.
LOG_SIGNS = {
    "stale finish": "task changed state while being processed; its outcome stands",
    "lost unwritten": "task changed state while being processed; no results written",
    "reaped": "moved a job off a dead slot's processing list",
    "re-enqueued": "re-enqueued a task no Redis list held",
    "stale message": "task is not queued any more (duplicate, stale or cancelled message); skipping",
}

TASKS_SQL = """
SELECT t.id::text, t.status, t.attempts, t.crash_count, t.worker_id, t.completed_at, t.error_code,
       t.result -> 'formats', f.original_filename, f.s3_result_key, f.user_id::text,
       (SELECT count(*) FROM webhook_deliveries d WHERE d.task_id = t.id AND d.event = 'task.completed'),
       (t.result -> 'seconds' ->> 'total')::float, f.id::text, f.created_at
  FROM tasks t JOIN files f ON f.id = t.file_id
 WHERE t.tag = %s
"""


@dataclass
class Task:
    task_id: str
    status: str
    attempts: int
    crash_count: int
    worker_id: str | None
    completed_at: datetime | None
    error_code: str | None
    formats: list[str] | None
    filename: str
    result_key: str | None
    user_id: str
    completions: int
    seconds: float | None
    file_id: str
    file_created_at: datetime

    @property
    def results_prefix(self) -> str:
        return keys.results_prefix(self.user_id, self.file_id, self.file_created_at)

    @property
    def completing_folder(self) -> str:
        """The folder of the task's last run: the one that completed it, if it is completed."""
        return keys.result_key(self.user_id, self.file_id, self.file_created_at, self.attempts).rsplit("/", 1)[0] + "/"

    @property
    def recorded_folder(self) -> str | None:
        return self.result_key.rsplit("/", 1)[0] + "/" if self.result_key else None

    @property
    def host(self) -> str | None:
        """The worker host that last held the task (worker ids start with the host name)."""
        return self.worker_id.split("-", 1)[0] if self.worker_id else None


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)

    def fail(self, problem: str) -> None:
        self.problems.append(problem)


# ---- sources ------------------------------------------------------------------------------
def s3_client(settings: Settings) -> Any:
    return boto3.session.Session().client("s3", **s3_client_kwargs(settings))


def load_tasks(settings: Settings, tag: str) -> list[Task]:
    conn = psycopg2.connect(settings.database_url, connect_timeout=10)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(TASKS_SQL, (tag,))
            return [Task(*row) for row in cur.fetchall()]
    finally:
        conn.close()


@dataclass
class Objects:
    written: Counter[str]  # how many times each key was written
    present: set[str]  # the keys whose latest version is an object, not a delete marker

    def under(self, prefix: str) -> tuple[set[str], set[str]]:
        """(present, written at some time) keys under ``prefix``."""
        return {k for k in self.present if k.startswith(prefix)}, {k for k in self.written if k.startswith(prefix)}


def list_objects(client: Any, bucket: str, prefixes: set[str]) -> Objects:
    objects = Objects(Counter(), set())
    for prefix in prefixes:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                objects.written[version["Key"]] += 1
                if version["IsLatest"]:
                    objects.present.add(version["Key"])
    return objects


def log_signs(path: Path) -> dict[str, set[str]]:
    """Task ids per LOG_SIGNS entry in one host's worker.log."""
    found: dict[str, set[str]] = {sign: set() for sign in LOG_SIGNS}
    wanted = {message: sign for sign, message in LOG_SIGNS.items()}
    if not path.is_file():
        return found
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        sign = wanted.get(entry.get("msg"))
        if sign and entry.get("task_id"):
            found[sign].add(str(entry["task_id"]))
    return found


def read_marks(path: Path) -> dict[str, float]:
    marks = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            name, _, when = line.partition(" ")
            marks[name] = float(when)
    return marks


# ---- judgements ---------------------------------------------------------------------------
def expected_keys(task: Task) -> list[str]:
    if not task.result_key:
        return []
    return [keys.result_variant(task.result_key, fmt) for fmt in task.formats or [keys.RESULT_PRIMARY]]


def find_lost(
    verdict: Verdict, accepted: dict[str, dict[str, Any]], tasks: dict[str, Task], objects: Objects
) -> set[str]:
    lost = set()
    missing_objects = 0
    for task_id in accepted:
        task = tasks.get(task_id)
        if task is None or task.status not in TERMINAL:
            lost.add(task_id)
        elif task.status == "completed":
            # No result key on a completed task: its objects are as good as missing.
            absent = [key for key in expected_keys(task) if key not in objects.present] if task.result_key else ["?"]
            if absent:
                lost.add(task_id)
                missing_objects += len(absent)
    unknown = set(tasks) - set(accepted)
    if unknown:
        verdict.say(f"  tasks of this run the client never heard of: {len(unknown)}")
    if missing_objects:
        verdict.say(f"  result objects missing: {missing_objects}")
    return lost


def find_duplicates(tasks: dict[str, Task], written: Counter[str]) -> dict[str, list[str]]:
    """Why each duplicated task counts as one."""
    reasons: dict[str, list[str]] = {}
    by_name = Counter(task.filename for task in tasks.values())
    for task in tasks.values():
        why = []
        if task.completions > 1:
            why.append(f"completed {task.completions} times")
        # Only the completing run writes its folder; two versions of a key there are two PUTs.
        rewritten = [key for key in expected_keys(task) if written.get(key, 0) > 1]
        if rewritten:
            why.append(f"{len(rewritten)} result objects of the recorded run written more than once")
        if task.status == "completed" and task.recorded_folder not in (None, task.completing_folder):
            why.append(
                f"results recorded from {task.recorded_folder}, not the completing run's (claim {task.attempts})"
            )
        if by_name[task.filename] > 1:
            why.append(f"{task.filename} uploaded once, {by_name[task.filename]} tasks")
        if why:
            reasons[task.task_id] = why
    return reasons


def find_orphans(tasks: dict[str, Task], objects: Objects) -> dict[str, list[str]]:
    """Per finished task, the objects left under its file's results prefix outside the folder
    its row records (every object there, for a task not completed)."""
    orphans = {}
    for task in tasks.values():
        if task.status not in TERMINAL:
            continue
        present, _ = objects.under(task.results_prefix)
        left = sorted(
            key for key in present if task.recorded_folder is None or not key.startswith(task.recorded_folder)
        )
        if left:
            orphans[task.task_id] = left
    return orphans


def stale_folders(tasks: dict[str, Task], objects: Objects) -> tuple[int, int]:
    """Folders of runs that lost their task (any object ever written outside the recorded
    folder): how many, and how many of them their runs deleted (nothing left but delete markers)."""
    written, left = set(), set()
    for task in tasks.values():
        present, ever = objects.under(task.results_prefix)
        recorded = task.recorded_folder
        written |= {key.rsplit("/", 1)[0] for key in ever if not recorded or not key.startswith(recorded)}
        left |= {key.rsplit("/", 1)[0] for key in present if not recorded or not key.startswith(recorded)}
    return len(written), len(written - left)


def describe_work(verdict: Verdict, tasks: dict[str, Task], objects: Objects, signs: dict[str, dict]) -> None:
    hosts = Counter(task.host for task in tasks.values() if task.status == "completed")
    seconds = sorted(task.seconds for task in tasks.values() if task.seconds is not None)
    median = f", {seconds[len(seconds) // 2]:.2f} s of a worker's time each (median)" if seconds else ""
    verdict.say("  completed by: " + ", ".join(f"{host} {n}" for host, n in sorted(hosts.items(), key=str)) + median)
    reclaimed = sum(task.attempts > 1 for task in tasks.values())
    verdict.say(
        f"  claimed more than once: {reclaimed} (crash counts raised by the reaper: "
        f"{sum(task.crash_count > 0 for task in tasks.values())})"
    )
    expected = sum(len(expected_keys(task)) for task in tasks.values() if task.status == "completed")
    rewritten = sum(n > 1 for n in objects.written.values())
    stale, deleted = stale_folders(tasks, objects)
    verdict.say(
        f"  result objects: {expected} expected, {len(objects.present)} in S3, written more than once: {rewritten}; "
        f"folders written by runs that lost their task: {stale}, deleted by those runs: {deleted}"
    )
    completions = sum(task.completions for task in tasks.values())
    verdict.say(
        f"  completions recorded (task.completed outbox rows): {completions}, "
        f"twice for {sum(task.completions > 1 for task in tasks.values())} tasks"
    )
    for host, found in signs.items():
        verdict.say(f"  {host} log: " + ", ".join(f"{sign} {len(ids)}" for sign, ids in found.items()))
    errors = Counter(task.error_code for task in tasks.values() if task.status != "completed")
    if errors:
        verdict.say("  not completed: " + ", ".join(f"{code} {n}" for code, n in errors.items()))


def outage_windows(marks: dict[str, float]) -> list[tuple[float, float, str | None]]:
    """(start, end, worker host or None for every host) of each disruption, with the margin."""
    windows = []
    if "redis_stop" in marks and "redis_up" in marks:
        windows.append((marks["redis_stop"] - 1, marks["redis_up"] + OUTAGE_MARGIN_SECONDS, None))
    if "cut_start" in marks and "cut_end" in marks:
        windows.append((marks["cut_start"] - 2, marks["cut_end"] + OUTAGE_MARGIN_SECONDS, "cut"))
    return windows


def in_outage(task: Task, windows: list[tuple[float, float, str | None]], cut_host: str) -> bool:
    if task.completed_at is None:
        return False
    when = task.completed_at.timestamp()
    return any(start <= when <= end and (scope is None or task.host == cut_host) for start, end, scope in windows)


def judge_sockets(
    verdict: Verdict, load: dict[str, Any], tasks: dict[str, Task], marks: dict[str, float], cut_host: str
) -> None:
    """Each API host's socket must have relayed the end of every task uploaded through another
    host; the only excuse is a task that ended while its event could not be published or
    relayed (Redis away, or its worker host cut off)."""
    windows = outage_windows(marks)
    for name, sock in load["sockets"].items():
        others = [job["task_id"] for job in load["jobs"] if job["task_id"] and job["api"] != name]
        seen = [task_id for task_id in others if task_id in sock["live"]]
        missed = [task_id for task_id in others if not TERMINAL & set(sock["live"].get(task_id, []))]
        excused = [t for t in missed if t in tasks and in_outage(tasks[t], windows, cut_host)]
        apis = sorted({job["api"] for job in load["jobs"] if job["task_id"] in set(others)})
        verdict.say(
            f"  websocket on {name}: live events of {len(seen)}/{len(others)} tasks uploaded via {', '.join(apis)}, "
            f"their end for {len(others) - len(missed)}; of the {len(missed)} whose end it did not relay, "
            f"{len(excused)} ended during an outage; connects {sock['connects']}"
        )
        if not others or len(excused) < len(missed):
            verdict.fail(f"the socket on {name} missed the end of {len(missed) - len(excused)} other-host tasks")


def judge_timing(verdict: Verdict, tasks: dict[str, Task], marks: dict[str, float]) -> None:
    """A disruption after the last task ended proves nothing: the run must have gone through it."""
    ends = [task.completed_at.timestamp() for task in tasks.values() if task.completed_at]
    last = max(ends, default=0.0)
    for mark, what in (("cut_start", "the link cut"), ("redis_stop", "the Redis restart")):
        if mark not in marks:
            verdict.fail(f"{what} did not happen (the load ended first)")
        elif marks[mark] >= last:
            verdict.fail(f"{what} came after every task had ended")
        else:
            later = sum(end > marks[mark] for end in ends)
            verdict.say(f"  {what}: {later} tasks ended after it")


def judge_cut(verdict: Verdict, state: Path, tasks: dict[str, Task], cut_host: str) -> None:
    """What became of the jobs the cut host held when its cable was pulled."""
    held = worker_status(state, "cut").get("inFlight", [])
    fates = Counter(
        f"{task.status} by {task.host}, claimed {task.attempts}x"
        for task in (tasks.get(job["taskId"]) for job in held)
        if task is not None
    )
    verdict.say(
        f"  in flight on {cut_host} when its link was cut: {len(held)}"
        + (" -> " + ", ".join(f"{n} {fate}" for fate, n in fates.items()) if fates else "")
    )


def worker_status(state: Path, label: str) -> dict[str, Any]:
    """What a worker host's /status said (multihost.sh keeps it), or nothing if it did not answer."""
    path = state / f"status-{label}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def worker_counters(verdict: Verdict, state: Path, names: list[str]) -> None:
    for name in names:
        counters = worker_status(state, name).get("counters", {})
        verdict.say(f"  {name} counters: " + (", ".join(f"{k} {v}" for k, v in counters.items()) or "unknown"))


def judge(args: argparse.Namespace) -> Verdict:
    verdict = Verdict()
    settings = Settings.from_env()
    load = json.loads((args.state / "load.json").read_text(encoding="utf-8"))
    accepted = {job["task_id"]: job for job in load["jobs"] if job["task_id"]}
    tasks = {task.task_id: task for task in load_tasks(settings, load["tag"])}
    prefixes = {f"results/{task.user_id}/" for task in tasks.values()}
    objects = list_objects(s3_client(settings), settings.s3_bucket, prefixes)
    signs = {name: log_signs(Path(path)) for name, path in (pair.split("=", 1) for pair in args.worker_log)}

    lost = find_lost(verdict, accepted, tasks, objects)
    duplicated = find_duplicates(tasks, objects.written)
    orphans = find_orphans(tasks, objects)
    finished = [tasks[t] for t in accepted if t in tasks and t not in lost]
    completed = sum(task.status == "completed" for task in finished)
    failed = sum(task.status in ("failed", "cancelled") for task in finished)
    refused = [job for job in load["jobs"] if not job["task_id"]]
    retried = [job for job in load["jobs"] if job["refusals"]]
    refusals = Counter(refusal for job in load["jobs"] for refusal in job["refusals"])

    verdict.lines.insert(
        0,
        f"submitted / completed / failed / lost / duplicated: "
        f"{len(accepted)} / {completed} / {failed} / {len(lost)} / {len(duplicated)}",
    )
    verdict.lines.insert(
        1,
        f"orphan results (objects outside the recorded run's folder): {len(orphans)} tasks, "
        f"{sum(len(left) for left in orphans.values())} objects",
    )
    verdict.say(
        f"  uploads: {len(accepted)} accepted of {len(load['jobs'])}, {len(retried)} after refusals "
        f"({', '.join(f'{r} x{n}' for r, n in refusals.items()) or 'none'}), "
        f"{sum(job['replayed'] for job in load['jobs'])} answered as an idempotent replay"
    )
    describe_work(verdict, tasks, objects, signs)
    worker_counters(verdict, args.state, list(signs))
    marks = read_marks(args.state / "marks")
    judge_timing(verdict, tasks, marks)
    judge_cut(verdict, args.state, tasks, args.cut_host)
    judge_sockets(verdict, load, tasks, marks, args.cut_host)
    delivered = sum("task.completed" in events for events in load["webhooks"].values())
    verdict.say(f"  webhooks received for {len(load['webhooks'])} tasks ({delivered} task.completed)")
    if lost:
        verdict.fail(f"{len(lost)} lost: {sorted(lost)[:5]}")
    for task_id, why in sorted(duplicated.items())[:10]:
        verdict.fail(f"duplicated {task_id}: {'; '.join(why)}")
    for task_id, left in sorted(orphans.items())[:10]:
        verdict.fail(f"orphan results of {task_id} ({tasks[task_id].status}): {left[:3]}")
    if refused:
        verdict.fail(f"{len(refused)} uploads never accepted: {[job['refusals'][-1:] for job in refused[:5]]}")
    return verdict


def enable_versioning() -> None:
    settings = Settings.from_env()
    s3_client(settings).put_bucket_versioning(Bucket=settings.s3_bucket, VersioningConfiguration={"Status": "Enabled"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("versioning")
    verdict_cmd = sub.add_parser("verdict")
    verdict_cmd.add_argument("state", type=Path)
    verdict_cmd.add_argument("--worker-log", action="append", default=[], metavar="NAME=PATH")
    verdict_cmd.add_argument("--cut-host", required=True)
    args = parser.parse_args(argv)
    if args.command == "versioning":
        enable_versioning()
        return 0
    verdict = judge(args)
    print("\n".join(verdict.lines))
    for problem in verdict.problems:
        print(f"FAIL: {problem}")
    if not verdict.problems:
        print("PASS: nothing lost, nothing duplicated, no orphan results, every API host relayed the other's events")
    return 1 if verdict.problems else 0


if __name__ == "__main__":
    sys.exit(main())
