"""``untxt.AsyncClient`` (asyncio) and ``untxt.Client`` (blocking): the API as Python calls.

There is one implementation, the async one. ``Client`` runs it on a private event loop in a
background thread (anyio's blocking portal), so both behave the same by construction, and the
blocking client also works where an event loop is already running (a notebook).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar
from urllib.parse import quote

from anyio.from_thread import BlockingPortal, start_blocking_portal

from untxt._live import UpdateCallback, updates, wait_until_final
from untxt._transport import Call, Transport
from untxt._uploads import FileInput, ProgressCallback, file_source, multipart
from untxt.errors import ConfigurationError, InvalidRequestError
from untxt.models import BatchItem, Deletion, ResultLink, Task, TaskPage, TaskState, TaskUpdate, Upload

DEFAULT_URL = "http://127.0.0.1:8080"


def _task_path(task_id: str, suffix: str = "") -> str:
    # Quoted: an id is the caller's input, and must not walk to another route ("../queue/stats").
    return f"/api/tasks/{quote(str(task_id), safe='')}{suffix}"


def _form_fields(priority: int | None, language: str | None, tags: Sequence[str]) -> list[tuple[str, str]]:
    fields = [("priority", str(priority))] if priority is not None else []
    if language is not None:
        fields.append(("language", language))
    return fields + [("tag", tag) for tag in tags]


class AsyncClient:
    """A user of the untxt API. Use it as ``async with AsyncClient() as client: ...``.

    ``base_url`` and ``api_key`` default to ``UNTXT_URL`` (else ``http://127.0.0.1:8080``) and
    ``UNTXT_API_KEY``. ``timeout`` bounds connecting and each read (seconds); 429 and 503
    answers are retried up to ``max_retries`` times after the ``Retry-After`` the server
    sends, unless it asks for more than ``max_retry_wait`` seconds (then the error is raised
    at once). ``headers`` go with every request. ``use_websocket=False`` makes ``wait`` poll.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        headers: Mapping[str, str] | None = None,
        use_websocket: bool = True,
    ) -> None:
        key = api_key or os.environ.get("UNTXT_API_KEY")
        if not key:
            raise ConfigurationError("no API key: pass api_key= or set UNTXT_API_KEY", "missing_api_key")
        url = base_url or os.environ.get("UNTXT_URL") or DEFAULT_URL
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"the API URL must start with http:// or https://, not {url!r}", "invalid_url")
        self._transport = Transport(
            url, key, timeout=timeout, max_retries=max_retries, max_retry_wait=max_retry_wait, headers=headers
        )
        self.use_websocket = use_websocket

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    async def upload(
        self,
        file: FileInput,
        *,
        filename: str | None = None,
        priority: int | None = None,
        language: str | None = None,
        tag: str | None = None,
        idempotency_key: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> Upload:
        """Upload one file (a path, bytes or a binary file object) for OCR.

        Every upload carries an Idempotency-Key (a random one unless given), so sending it
        again after a 503 or a dropped connection can never create a second task.
        """
        source = file_source(file, filename)
        fields = _form_fields(priority, language, [tag] if tag is not None else [])
        answer = await self._transport.call(
            Call(
                "POST",
                "/api/tasks",
                headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())},
                form=lambda: multipart([source], fields, on_progress),
                resend_after_disconnect=True,
            )
        )
        return Upload.from_json(answer.data)

    async def upload_batch(
        self,
        files: Sequence[FileInput],
        *,
        priority: int | None = None,
        language: str | None = None,
        tag: str | None = None,
        tags: Sequence[str | None] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[BatchItem]:
        """Upload up to 50 files in one request; each gets its own outcome, in order.

        ``tag`` labels every file; ``tags`` gives each file its own (None for none).
        """
        sources = [file_source(f) for f in files]
        if tags is not None and len(tags) != len(sources):
            raise ValueError(f"{len(tags)} tags for {len(sources)} files")
        per_file = [t or "" for t in tags] if tags is not None else ([tag] if tag is not None else [])
        fields = _form_fields(priority, language, per_file)
        call = Call(
            "POST",
            "/api/tasks/batch",
            form=lambda: multipart(sources, fields, on_progress),
            # A 503 may come after some files were recorded: sending all again would repeat them.
            retry_statuses=(429,),
        )
        try:
            answer = await self._transport.call(call)
        except InvalidRequestError as exc:
            if exc.code != "no_file_accepted":
                raise
            results = exc.details["results"]
        else:
            results = answer.data["results"]
        return [BatchItem.from_json(r) for r in results]

    async def get(self, task_id: str) -> Task:
        """The task, with ``result_url`` once completed (revalidated with its ETag)."""
        answer = await self._transport.call(Call("GET", _task_path(task_id), conditional=True))
        return Task.from_json(answer.data)

    async def status(self, task_id: str) -> TaskState:
        """Status and progress: the cheap read (revalidated with its ETag)."""
        answer = await self._transport.call(Call("GET", _task_path(task_id, "/status"), conditional=True))
        return TaskState.from_json(answer.data)

    async def list_tasks(
        self, *, status: str | None = None, tag: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> TaskPage:
        """One page of the caller's tasks, newest first; pass ``page.next_cursor`` for the next."""
        params: dict[str, str | int] = {"limit": limit}
        for name, value in (("status", status), ("tag", tag), ("cursor", cursor)):
            if value is not None:
                params[name] = value
        answer = await self._transport.call(Call("GET", "/api/tasks", params=params))
        return TaskPage.from_json(answer.data)

    async def iter_tasks(
        self, *, status: str | None = None, tag: str | None = None, page_size: int = 100
    ) -> AsyncIterator[Task]:
        """Every task that matches, newest first, page by page along the server's cursor (no
        task is skipped or repeated while new ones arrive)."""
        cursor: str | None = None
        while True:
            page = await self.list_tasks(status=status, tag=tag, limit=page_size, cursor=cursor)
            for task in page.tasks:
                yield task
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # "format", as the API's query parameter is named, though it shadows the builtin.
    async def result_url(
        self,
        task_id: str,
        format: str = "html",  # noqa: A002
        *,
        expires_in: int | None = None,
    ) -> ResultLink:
        """A presigned URL of one result format (``html``, ``txt``, ``json``; ``pdf``, ``hocr``,
        ``alto`` where the server offers them: it validates the name)."""
        params: dict[str, str | int] = {"format": format}
        if expires_in is not None:
            params["expiresIn"] = expires_in
        answer = await self._transport.call(Call("GET", _task_path(task_id, "/result"), params=params))
        return ResultLink.from_json(answer.data)

    async def download(self, task_id: str, format: str = "html") -> bytes:  # noqa: A002
        """A result's bytes."""
        link = await self.result_url(task_id, format)
        return await self._transport.download(link.url, None)

    async def save_result(
        self,
        task_id: str,
        path: str | os.PathLike[str],
        format: str = "html",  # noqa: A002
    ) -> Path:
        """Stream a result into ``path`` (written under a temporary name, then renamed)."""
        link = await self.result_url(task_id, format)
        destination = Path(path)
        await self._transport.download(link.url, destination)
        return destination

    async def cancel(self, task_id: str) -> Task:
        """Cancel: a queued task at once, a processing one at its next page boundary."""
        answer = await self._transport.call(Call("POST", _task_path(task_id, "/cancel")))
        return Task.from_json(answer.data)

    async def retry(self, task_id: str) -> Task:
        """Queue a failed or cancelled task again."""
        answer = await self._transport.call(Call("POST", _task_path(task_id, "/retry")))
        return Task.from_json(answer.data)

    async def delete(self, task_id: str) -> Deletion:
        """Delete the task, its upload and every result object."""
        answer = await self._transport.call(Call("DELETE", _task_path(task_id)))
        return Deletion.from_json(answer.data)

    async def wait(
        self, task_id: str, *, timeout: float | None = None, on_update: UpdateCallback | None = None
    ) -> Task:
        """Until the task is completed, failed or cancelled; returns it as it ended.

        Follows the WebSocket (``on_update`` gets every change, page by page), and polls the
        status route if no socket can be had. Raises WaitTimeoutError after ``timeout`` s.
        """
        return (await self.wait_all([task_id], timeout=timeout, on_update=on_update))[0]

    async def wait_all(
        self, task_ids: Collection[str], *, timeout: float | None = None, on_update: UpdateCallback | None = None
    ) -> list[Task]:
        """``wait`` for several tasks over one socket; the tasks in the order given."""
        await wait_until_final(
            self._transport,
            self.status,
            task_ids,
            timeout=timeout,
            on_update=on_update,
            use_websocket=self.use_websocket,
        )
        return [await self.get(task_id) for task_id in task_ids]

    async def updates(self, task_id: str | None = None) -> AsyncIterator[TaskUpdate]:
        """Live changes of the caller's tasks (or of one), snapshot first, until you stop
        iterating; reconnects by itself."""
        async for update in updates(self._transport, task_id):
            yield update


P = ParamSpec("P")
R = TypeVar("R")


def _blocking(
    method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Client, P], R]:
    """The AsyncClient method, run to completion on the client's own event loop."""

    @functools.wraps(method)
    def call(self: Client, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._portal.call(functools.partial(method, self._async, *args, **kwargs))

    return call


def _blocking_iter(
    method: Callable[Concatenate[AsyncClient, P], AsyncIterator[R]],
) -> Callable[Concatenate[Client, P], Iterator[R]]:
    """The AsyncClient async generator, as a plain iterator (each step on the client's loop)."""

    @functools.wraps(method)
    def iterate(self: Client, *args: P.args, **kwargs: P.kwargs) -> Iterator[R]:
        steps = method(self._async, *args, **kwargs)
        try:
            while True:
                try:
                    yield self._portal.call(steps.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            # Closes the socket of an abandoned updates(); after close() there is no loop left.
            with suppress(RuntimeError):
                self._portal.call(steps.aclose)  # type: ignore[attr-defined]

    return iterate


class Client:
    """The blocking client: the same methods as AsyncClient, without ``await``.

    Use it as ``with Client() as client: ...`` (or call ``close()``): it owns a background
    thread with an event loop. Callbacks (``on_progress``, ``on_update``) run on that thread.
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, **options: Any) -> None:
        self._async = AsyncClient(base_url, api_key, **options)
        self._portal_cm: AbstractContextManager[BlockingPortal] = start_blocking_portal("asyncio")
        self._portal = self._portal_cm.__enter__()

    @property
    def base_url(self) -> str:
        return self._async.base_url

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._portal.call(self._async.close)
        finally:
            self._portal_cm.__exit__(None, None, None)

    upload = _blocking(AsyncClient.upload)
    upload_batch = _blocking(AsyncClient.upload_batch)
    get = _blocking(AsyncClient.get)
    status = _blocking(AsyncClient.status)
    list_tasks = _blocking(AsyncClient.list_tasks)
    iter_tasks = _blocking_iter(AsyncClient.iter_tasks)
    result_url = _blocking(AsyncClient.result_url)
    download = _blocking(AsyncClient.download)
    save_result = _blocking(AsyncClient.save_result)
    cancel = _blocking(AsyncClient.cancel)
    retry = _blocking(AsyncClient.retry)
    delete = _blocking(AsyncClient.delete)
    wait = _blocking(AsyncClient.wait)
    wait_all = _blocking(AsyncClient.wait_all)
    updates = _blocking_iter(AsyncClient.updates)
