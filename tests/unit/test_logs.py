"""JSON-lines logs: the fields of a line, and the log context that puts request and task ids on it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.logs import configure_logging, log_context, sane_request_id


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """configure_logging replaces the root logger's handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers:
        handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_line_has_the_fields_and_the_context(tmp_path: Path, root_logger: logging.Logger) -> None:
    configure_logging("worker", str(tmp_path))
    log = logging.getLogger("untxt.test")
    with log_context(request_id="req-1", task_id="t-1"):
        log.info("page %d read", 3, extra={"page": 3})
        with log_context(task_id="t-2", request_id=None):
            log.warning("inner", extra={"task_id": "own"})  # a line's own field wins
        try:
            raise ValueError("bad page")
        except ValueError:
            log.exception("failed")
    log.info("outside")
    first, inner, failed, outside = _lines(tmp_path / "worker.log")
    assert {k: first[k] for k in ("level", "service", "logger", "msg", "page", "request_id", "task_id")} == {
        "level": "INFO",
        "service": "worker",
        "logger": "untxt.test",
        "msg": "page 3 read",
        "page": 3,
        "request_id": "req-1",
        "task_id": "t-1",
    }
    assert str(first["ts"]).startswith("20")
    assert (inner["task_id"], inner["request_id"]) == ("own", "req-1")
    assert "ValueError: bad page" in str(failed["exc"])
    assert "request_id" not in outside
    assert "task_id" not in outside


async def test_each_asyncio_task_keeps_its_own_context(tmp_path: Path, root_logger: logging.Logger) -> None:
    configure_logging("api", str(tmp_path))
    log = logging.getLogger("untxt.test")

    async def request(request_id: str) -> None:
        with log_context(request_id=request_id):
            await asyncio.sleep(0.01)  # the other request runs meanwhile
            log.info("answered")

    await asyncio.gather(request("a"), request("b"))
    assert sorted(str(line["request_id"]) for line in _lines(tmp_path / "api.log")) == ["a", "b"]


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("3f2a5c1e-7b9d-4c1a-9e7f-1a2b3c4d5e6f", True),
        ("01HZX3J7Q8W9E0R1T2Y3U4I5O6", True),
        ("lb.1-abc:42", True),
        ("", False),
        ("has space", False),
        ('quote"d', False),
        ("line\nbreak", False),
        ("-leading-dash", False),
        ("x" * 129, False),
        (None, False),
    ],
)
def test_request_ids_worth_keeping(raw: str | None, kept: bool) -> None:
    assert sane_request_id(raw) == (raw if kept else None)
