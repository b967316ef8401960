"""The ``untxt`` command: the API from a shell, built on ``untxt.AsyncClient``.

Configuration: ``UNTXT_URL`` and ``UNTXT_API_KEY`` (or ``--url`` / ``--api-key``). Progress and
messages go to stderr; results and ``--json`` output to stdout. Exit codes: see ExitCode and
docs/client.md.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.live import Live

from untxt._console import UploadBoard, WatchTable, styled, task_lines, tasks_table
from untxt.client import DEFAULT_URL, AsyncClient
from untxt.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitedError,
    ServiceUnavailableError,
    TransportError,
    UntxtError,
    WaitTimeoutError,
)
from untxt.models import RESULT_FORMATS, Status, Task, Upload

# What a directory contributes: files whose names say they are something the API reads (the
# API itself judges each file by its content; a file named explicitly is always sent).
SUPPORTED_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".pdf"}
# File name endings of saved results; a format not listed is saved as ".<format>".
RESULT_SUFFIXES = {"html": ".html", "txt": ".txt", "json": ".json", "pdf": ".pdf", "hocr": ".hocr", "alto": ".alto.xml"}

err = Console(stderr=True)
out = Console()


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # unexpected, or the server's own fault (5xx other than 503)
    USAGE = 2  # bad arguments or configuration (no API key); click's usage errors too
    REJECTED = 3  # the API refused the request (a 4xx below), or refused a file of an upload
    NOT_FOUND = 4  # no such task for this key
    AUTH = 5  # the key is missing on the server's side, unknown or revoked (401/403)
    UNAVAILABLE = 6  # the API cannot be reached, or is busy (503, or 429 after the retries)
    TASK_FAILED = 7  # a task waited for ended failed or cancelled
    TIMEOUT = 8  # waiting took longer than --timeout


def exit_code(exc: UntxtError) -> ExitCode:
    if isinstance(exc, ConfigurationError):
        return ExitCode.USAGE
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        return ExitCode.AUTH
    if isinstance(exc, NotFoundError):
        return ExitCode.NOT_FOUND
    if isinstance(exc, TransportError | ServiceUnavailableError | RateLimitedError):
        return ExitCode.UNAVAILABLE
    if isinstance(exc, WaitTimeoutError):
        return ExitCode.TIMEOUT
    if isinstance(exc, InvalidRequestError | ConflictError | QuotaExceededError):
        return ExitCode.REJECTED
    return ExitCode.ERROR


@dataclass(frozen=True)
class Settings:
    url: str
    api_key: str | None


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def run(
    ctx: click.Context,
    as_json: bool,
    work: Callable[[AsyncClient], Awaitable[ExitCode | None]],
    interrupted: int = 130,  # the shell's convention for SIGINT
) -> None:
    """Run ``work`` with a client; turn what it raises into a message and an exit code."""
    settings: Settings = ctx.obj

    async def main() -> ExitCode | None:
        async with AsyncClient(settings.url, settings.api_key) as client:
            return await work(client)

    try:
        code = asyncio.run(main()) or ExitCode.OK
    except UntxtError as exc:
        code = exit_code(exc)
        if as_json:
            status = getattr(exc, "status", None)
            emit_json({"success": False, "error": {"code": exc.code, "message": exc.message, "status": status}})
        else:
            err.print(f"[red]error:[/] {exc.message} ({exc.code})", highlight=False)
    except KeyboardInterrupt:
        code = interrupted
    ctx.exit(int(code))


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable output (the API's JSON) on stdout."
)
task_id_argument = click.argument("task_id")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--url", envvar="UNTXT_URL", default=DEFAULT_URL, show_default=True, help="API base URL [UNTXT_URL].")
@click.option("--api-key", envvar="UNTXT_API_KEY", help="API key [UNTXT_API_KEY; prefer it: flags show in ps].")
@click.version_option(package_name="untxt")
@click.pass_context
def main(ctx: click.Context, url: str, api_key: str | None) -> None:
    """untxt: OCR scans and PDFs from the shell."""
    ctx.obj = Settings(url, api_key)


def expand(paths: tuple[Path, ...], recursive: bool) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            files += sorted(p for p in found if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
        else:
            files.append(path)
    return files


def chunks(items: list[Path], size: int) -> Iterator[tuple[int, list[Path]]]:
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


@dataclass
class Outcome:
    """One file of an upload: its task, or why it was refused; what became of it."""

    path: Path
    upload: Upload | None = None
    error: dict[str, Any] | None = None
    task: Task | None = None
    saved: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": str(self.path), "success": self.upload is not None}
        if self.upload is not None:
            data["data"] = self.task.raw if self.task is not None else self.upload.raw
        if self.error is not None:
            data["error"] = self.error
        if self.saved:
            data["results"] = self.saved
        return data


def result_path(directory: Path, source: Path, fmt: str, taken: set[Path], task_id: str) -> Path:
    suffix = RESULT_SUFFIXES.get(fmt, f".{fmt}")
    path = directory / f"{source.stem}{suffix}"
    if path in taken:  # two inputs with one name (from different folders): keep both
        path = directory / f"{source.stem}-{task_id[:8]}{suffix}"
    taken.add(path)
    return path


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--priority", type=click.IntRange(1, 10), help="1-10, 10 most urgent (server default 5).")
@click.option("--language", help="Tesseract models joined by '+', e.g. eng+vie (server default eng).")
@click.option("--tag", help="Your label for these uploads (at most 128 characters).")
@click.option("--wait", is_flag=True, help="Wait until every task is final, following its pages.")
@click.option(
    "--format",
    "formats",
    multiple=True,
    help=f"Save this result format when done (implies --wait; repeatable): {', '.join(RESULT_FORMATS)}.",
)
@click.option(
    "-o", "--output", type=click.Path(file_okay=False, path_type=Path), help="Folder for results (default: .)."
)
@click.option("-r", "--recursive", is_flag=True, help="Look into sub-folders of a folder too.")
@click.option("--batch-size", type=click.IntRange(1, 50), default=10, show_default=True, help="Files per request.")
@click.option("--timeout", type=float, help="Seconds to wait at most.")
@json_option
@click.pass_context
def upload(
    ctx: click.Context,
    paths: tuple[Path, ...],
    priority: int | None,
    language: str | None,
    tag: str | None,
    wait: bool,
    formats: tuple[str, ...],
    output: Path | None,
    recursive: bool,
    batch_size: int,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Upload FILEs and every supported file in DIRs (in batches)."""
    files = expand(paths, recursive)
    if not files:
        raise click.UsageError("no supported files (png, jpg, tif, webp, bmp, gif, pdf) in the given folders")
    outcomes = [Outcome(path) for path in files]
    wait = wait or bool(formats)

    async def work(client: AsyncClient) -> ExitCode:
        with UploadBoard(err, [p.name for p in files], enabled=not as_json) as board:
            await _send_all(client, board, outcomes, files, batch_size, priority, language, tag)
            accepted = [o for o in outcomes if o.upload is not None]
            if wait and accepted:
                ids = [o.upload.task_id for o in accepted if o.upload is not None]
                tasks = await client.wait_all(ids, timeout=timeout, on_update=board.changed)
                for outcome, task in zip(accepted, tasks, strict=True):
                    outcome.task = task
        if formats:
            await _save_results(client, outcomes, formats, output or Path.cwd())
        _report_outcomes(outcomes, as_json)
        if any(o.error is not None for o in outcomes):
            return ExitCode.REJECTED
        if any(o.task is not None and o.task.status != Status.COMPLETED for o in outcomes):
            return ExitCode.TASK_FAILED
        return ExitCode.OK

    run(ctx, as_json, work)


async def _send_all(
    client: AsyncClient,
    board: UploadBoard,
    outcomes: list[Outcome],
    files: list[Path],
    batch_size: int,
    priority: int | None,
    language: str | None,
    tag: str | None,
) -> None:
    if len(files) == 1:
        try:
            upload = await client.upload(
                files[0], priority=priority, language=language, tag=tag, on_progress=lambda e: board.sent(0, e)
            )
        except InvalidRequestError as exc:  # the file or a field refused: an outcome, as in a batch
            outcomes[0].error = {"code": exc.code, "message": exc.message}
            board.refused(0, exc.code)
            return
        outcomes[0].upload = upload
        board.accepted(0, upload.task_id)
        return
    for start, batch in chunks(files, batch_size):
        items = await client.upload_batch(
            batch,
            priority=priority,
            language=language,
            tag=tag,
            on_progress=lambda e, start=start: board.sent(start, e),
        )
        for item in items:
            index = start + item.index
            if item.upload is not None:
                outcomes[index].upload = item.upload
                board.accepted(index, item.upload.task_id)
            else:
                outcomes[index].error = {"code": item.error_code, "message": item.error_message}
                board.refused(index, item.error_code or "refused")


async def _save_results(client: AsyncClient, outcomes: list[Outcome], formats: tuple[str, ...], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    taken: set[Path] = set()
    for outcome in outcomes:
        if outcome.task is None or outcome.task.status != Status.COMPLETED:
            continue
        for fmt in formats:
            path = result_path(folder, outcome.path, fmt, taken, outcome.task.task_id)
            await client.save_result(outcome.task.task_id, path, fmt)
            outcome.saved[fmt] = str(path)


def _report_outcomes(outcomes: list[Outcome], as_json: bool) -> None:
    if as_json:
        emit_json([o.to_json() for o in outcomes])
        return
    for o in outcomes:
        if o.upload is None:
            err.print(f"[red]refused[/] {o.path}: {o.error and o.error['message']}", highlight=False)
            continue
        status = o.task.status if o.task is not None else o.upload.status
        note = f"  {o.task.error.code}: {o.task.error.message}" if o.task and o.task.error else ""
        saved = "  → " + ", ".join(o.saved.values()) if o.saved else ""
        out.print(f"{o.upload.task_id}  {styled(status)}  {o.path}{note}{saved}", highlight=False, soft_wrap=True)


@main.command()
@task_id_argument
@json_option
@click.pass_context
def status(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """Show one task: status, progress, error, result summary."""

    async def work(client: AsyncClient) -> ExitCode:
        task = await client.get(task_id)
        if as_json:
            emit_json(task.raw)
        else:
            for line in task_lines(task):
                out.print(line, highlight=False, soft_wrap=True)
        return ExitCode.OK

    run(ctx, as_json, work)


@main.command(name="list")
@click.option("--status", "status_", type=click.Choice([s.value for s in Status]), help="Only tasks in this status.")
@click.option("--tag", help="Only tasks with this tag.")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="Tasks per page.")
@click.option("--all", "all_pages", is_flag=True, help="Every page (follows the server's cursor).")
@json_option
@click.pass_context
def list_(ctx: click.Context, status_: str | None, tag: str | None, limit: int, all_pages: bool, as_json: bool) -> None:
    """List your tasks, newest first."""

    async def work(client: AsyncClient) -> ExitCode:
        page = await client.list_tasks(status=status_, tag=tag, limit=limit)
        tasks = list(page.tasks)
        while all_pages and page.next_cursor is not None:
            page = await client.list_tasks(status=status_, tag=tag, limit=limit, cursor=page.next_cursor)
            tasks += page.tasks
        if as_json:
            emit_json({"tasks": [t.raw for t in tasks], "total": page.total, "next": page.next_cursor})
        else:
            out.print(tasks_table(tasks, title=f"{len(tasks)} of {page.total} task(s)"))
            if page.next_cursor is not None:
                err.print("more: --all for every page", highlight=False)
        return ExitCode.OK

    run(ctx, as_json, work)


@main.command()
@task_id_argument
@click.option("--format", "fmt", default="html", show_default=True, help=f"Result format: {', '.join(RESULT_FORMATS)}.")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default: stdout)."
)
@json_option
@click.pass_context
def result(ctx: click.Context, task_id: str, fmt: str, output: Path | None, as_json: bool) -> None:
    """Download a completed task's result (with --json and no -o: just its presigned URL)."""

    async def work(client: AsyncClient) -> ExitCode:
        if output is not None:
            await client.save_result(task_id, output, fmt)
            if as_json:
                emit_json({"taskId": task_id, "format": fmt, "path": str(output), "bytes": output.stat().st_size})
        elif as_json:
            emit_json((await client.result_url(task_id, fmt)).raw)
        else:
            sys.stdout.buffer.write(await client.download(task_id, fmt))
            sys.stdout.buffer.flush()
        return ExitCode.OK

    run(ctx, as_json, work)


def _task_action(name: str, summary: str, verb: str) -> None:
    """cancel, retry and delete: one task id in, the API's answer out."""

    @main.command(name=name, help=summary)
    @task_id_argument
    @json_option
    @click.pass_context
    def command(ctx: click.Context, task_id: str, as_json: bool) -> None:
        async def work(client: AsyncClient) -> ExitCode:
            answer = await getattr(client, name)(task_id)
            if as_json:
                emit_json(answer.raw)
            else:
                state = f"  {styled(answer.status)}" if isinstance(answer, Task) else ""
                out.print(f"{task_id}  {verb}{state}", highlight=False, soft_wrap=True)
            return ExitCode.OK

        run(ctx, as_json, work)


_task_action("cancel", "Cancel a queued or processing task.", "cancel requested")
_task_action("retry", "Queue a failed or cancelled task again.", "queued again")
_task_action("delete", "Delete a task, its upload and its results.", "deleted")


@main.command()
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="Rows shown.")
@click.option("--exit-when-idle", is_flag=True, help="Stop once none of your tasks is queued or processing.")
@json_option
@click.pass_context
def watch(ctx: click.Context, limit: int, exit_when_idle: bool, as_json: bool) -> None:
    """A live table of your tasks (with --json: one task_update per line)."""

    async def work(client: AsyncClient) -> ExitCode:
        table = WatchTable((await client.list_tasks(limit=limit)).tasks, limit)
        follower = asyncio.create_task(_follow(client, table, as_json))
        # With --json, stdout carries only the JSON lines: no table.
        live = nullcontext() if as_json else Live(table.render(), console=out, auto_refresh=False)
        try:
            with live:
                while not follower.done():
                    # A second first: the socket's snapshot arrives before the first idle check.
                    await asyncio.wait({follower}, timeout=1.0)
                    if isinstance(live, Live):
                        live.update(table.render(), refresh=True)
                    if exit_when_idle and await _idle(client):
                        # PostgreSQL is written before the event is sent: let the last ones in.
                        await asyncio.wait({follower}, timeout=0.5)
                        break
        finally:
            follower.cancel()
            with suppress(asyncio.CancelledError):
                await follower  # raises what ended it, e.g. a revoked key
        return ExitCode.OK

    run(ctx, as_json, work, interrupted=ExitCode.OK)


async def _follow(client: AsyncClient, table: WatchTable, as_json: bool) -> None:
    async for update in client.updates():
        if not as_json and not table.knows(update.task_id):
            # A task the first page did not show (new, or an older one in the socket's snapshot).
            with suppress(NotFoundError):  # deleted meanwhile
                table.add(await client.get(update.task_id))
        table.changed(update)
        if as_json:
            click.echo(json.dumps(update.raw, ensure_ascii=False, separators=(",", ":")))


async def _idle(client: AsyncClient) -> bool:
    for live in (Status.QUEUED, Status.PROCESSING):
        if (await client.list_tasks(status=live.value, limit=1)).total:
            return False
    return True


if __name__ == "__main__":  # pragma: no cover
    main()
