"""What the ``untxt`` command shows a person: progress bars, tables (rich). Machine output
(``--json``) is not made here: it is the API's own JSON."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from rich.console import Console
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from untxt.models import Status, Task, TaskUpdate, UploadProgress

STATUS_STYLE = {
    Status.QUEUED: "cyan",
    Status.PROCESSING: "yellow",
    Status.COMPLETED: "green",
    Status.FAILED: "red",
    Status.CANCELLED: "magenta",
}


def styled(status: Status) -> str:
    return f"[{STATUS_STYLE[status]}]{status.value}[/]"


def short_time(when: datetime | None) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else ""


class UploadBoard:
    """One bar per file: bytes while it uploads, then (when waiting) its pages as it is read."""

    def __init__(self, console: Console, names: list[str], *, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.fields[name]}", style="bold"),
            BarColumn(),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not enabled,
        )
        self._rows = [self.progress.add_task("", name=n, state="waiting", total=None) for n in names]
        self._by_task: dict[str, TaskID] = {}

    def __enter__(self) -> UploadBoard:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def sent(self, offset: int, event: UploadProgress) -> None:
        """Bytes of file ``offset + event.index`` (batches number their files from 0)."""
        row = self._rows[offset + event.index]
        state = f"uploading {decimal(event.sent)} of {decimal(event.total)}"
        self.progress.update(row, total=event.total, completed=event.sent, state=state)

    def accepted(self, index: int, task_id: str) -> None:
        self._by_task[task_id] = self._rows[index]
        self.progress.update(self._rows[index], state=styled(Status.QUEUED))

    def refused(self, index: int, code: str) -> None:
        self.progress.update(self._rows[index], state=f"[red]refused: {code}[/]")

    def changed(self, update: TaskUpdate) -> None:
        row = self._by_task.get(update.task_id)
        if row is None:
            return
        state = styled(update.status)
        if update.status == Status.PROCESSING and update.pages:
            state += f" page {update.page}/{update.pages}"
            # From here on the bar counts pages, not bytes.
            self.progress.update(row, total=update.pages, completed=update.page or 0)
        elif update.status == Status.PROCESSING:
            self.progress.update(row, total=None, completed=0)  # pages not counted yet: a pulse
        elif update.error_code:
            state += f": {update.error_code}"
        if update.status == Status.COMPLETED:
            task = self.progress.tasks[row]
            self.progress.update(row, completed=task.total or 0)
        self.progress.update(row, state=state)


def tasks_table(tasks: Iterable[Task], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("task", no_wrap=True)
    for column in ("status", "progress", "file", "tag", "created"):
        table.add_column(column, overflow="fold")
    for task in tasks:
        status = styled(task.status)
        if task.error is not None:
            status += f" ({task.error.code})"
        table.add_row(
            task.task_id,
            status,
            f"{task.progress}%",
            task.file.filename,
            task.tag or "",
            short_time(task.created_at),
        )
    return table


def task_lines(task: Task) -> list[str]:
    lines = [
        f"task      {task.task_id}",
        f"status    {styled(task.status)}  {task.progress}%",
        f"file      {task.file.filename} ({task.file.mime_type}, {task.file.size} bytes)",
        f"priority  {task.priority}   language {task.language}",
    ]
    if task.tag is not None:
        lines.append(f"tag       {task.tag}")
    if task.queue_position is not None:
        lines.append(f"queue     position {task.queue_position}")
    if task.error is not None:
        lines.append(f"error     [red]{task.error.code}[/]: {task.error.message}")
    if task.result:
        lines.append(
            f"result    {task.result.get('pages')} page(s), {task.result.get('words')} words, "
            f"mean confidence {task.result.get('meanConfidence')}"
        )
    lines.append(f"created   {short_time(task.created_at)}   updated {short_time(task.updated_at)}")
    return lines


class WatchTable:
    """The caller's tasks as the WebSocket reports them, newest first."""

    def __init__(self, tasks: Iterable[Task], limit: int) -> None:
        self.limit = limit
        self.rows: dict[str, dict[str, str]] = {}
        for task in tasks:
            self.add(task)

    def knows(self, task_id: str) -> bool:
        return task_id in self.rows

    def add(self, task: Task) -> None:
        self.rows[task.task_id] = {
            "status": styled(task.status),
            "progress": f"{task.progress}%",
            "file": task.file.filename,
            "tag": task.tag or "",
            "note": task.error.code if task.error else "",
            "created": task.created_at.isoformat(),  # sorts; shown as local time
        }

    def changed(self, update: TaskUpdate) -> None:
        row = self.rows.get(update.task_id)
        if row is None:
            return
        row["status"] = styled(update.status)
        row["progress"] = f"{update.progress}%"
        note = f"page {update.page}/{update.pages}" if update.page and update.pages else ""
        row["note"] = update.error_code or note

    def render(self) -> Table:
        table = Table(title="untxt tasks (Ctrl-C to stop)")
        table.add_column("task", no_wrap=True)
        for column in ("status", "progress", "file", "tag", "note", "created"):
            table.add_column(column, overflow="fold")
        newest = sorted(self.rows.items(), key=lambda item: item[1]["created"], reverse=True)
        for task_id, row in newest[: self.limit]:
            table.add_row(
                task_id,
                row["status"],
                row["progress"],
                row["file"],
                row["tag"],
                row["note"],
                short_time(datetime.fromisoformat(row["created"])),
            )
        return table
