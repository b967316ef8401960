"""The sandbox: untrusted files are parsed in child processes whose crash, runaway allocation or
endless render costs a page, never the worker."""

from __future__ import annotations

import contextlib
import os
import zlib
from pathlib import Path

import pytest

from common.settings import Settings
from tests.support import text_page_png
from worker.errors import JobFailedError
from worker.pool import OcrPool
from worker.sandbox import Child, SandboxCrashedError, SandboxLimits

SETTINGS = Settings(database_url="", redis_url="", s3_bucket="", kms_key_id="", sandbox_memory_mb=1024)


class Probe:
    """A handler for tests: runs in the child, does what each request names."""

    def __call__(self, request: tuple[str, int]) -> object:
        what, size = request
        if what == "pid":
            return os.getpid()
        if what == "allocate":
            blocks = []
            while True:  # without bound, until the address-space limit says no
                blocks.append(bytearray(size))
        if what == "spin":
            while True:
                pass
        if what == "die":
            os.abort()
        if what == "network":
            import socket

            with socket.create_connection(("127.0.0.1", size), timeout=2):
                return "connected"
        if what == "limits":
            import resource

            return resource.getrlimit(resource.RLIMIT_AS), resource.getrlimit(resource.RLIMIT_CORE)
        raise ValueError(what)


def _probe() -> Probe:
    return Probe()


@pytest.fixture
def child() -> Child:
    sandbox = Child(SandboxLimits(memory_bytes=512 * 1024 * 1024, isolate_network=True), _probe)
    yield sandbox
    sandbox.close()


def test_a_child_runs_apart_with_limits(child: Child) -> None:
    assert child.call(("pid", 0), 10) != os.getpid()
    address_space, core = child.call(("limits", 0), 10)
    assert address_space == (512 * 1024 * 1024, 512 * 1024 * 1024)
    assert core == (0, 0)


def test_unbounded_allocation_fails_in_the_child_and_the_next_request_is_served(child: Child) -> None:
    with pytest.raises((JobFailedError, SandboxCrashedError)) as failed:
        child.call(("allocate", 64 * 1024 * 1024), 30)
    if isinstance(failed.value, JobFailedError):
        assert failed.value.code == "out_of_memory"
    assert isinstance(child.call(("pid", 0), 10), int)


def test_a_request_that_never_ends_is_killed_at_its_deadline(child: Child) -> None:
    first = child.pid
    with pytest.raises(JobFailedError) as failed:
        child.call(("spin", 0), 1)
    assert failed.value.code == "timeout"
    assert isinstance(child.call(("pid", 0), 10), int)
    assert child.pid != first  # a fresh child took its place


def test_a_crash_is_reported_and_the_child_replaced(child: Child) -> None:
    with pytest.raises(SandboxCrashedError):
        child.call(("die", 0), 10)
    assert isinstance(child.call(("pid", 0), 10), int)


def test_the_child_has_no_network(child: Child, tmp_path: Path) -> None:
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        with pytest.raises(RuntimeError, match=r"OSError|unreachable|refused"):
            child.call(("network", port), 10)
    finally:
        listener.close()


# -- the pool, with real hostile files --------------------------------------------------------


def endless_pdf(path: Path) -> None:
    """A 16 KB one-page PDF of 300,000 thick strokes across the page: PDFium took 409 s to
    render it here, in 143 MB."""
    _pdf_with_content(path, zlib.compress(b"0 0 m 600 700 l 5 w S\n" * 300_000, 9))


def bomb_pdf(path: Path) -> None:
    """A one-page PDF whose content stream inflates to 1.5 GB (from 1.5 MB): unsandboxed, PDFium
    took 2.7 GB and 10-28 s on it here. Built fast: after a full flush a deflate stream forgets
    what came before, so one compressed 16 MiB block can be repeated (PDFium does not check the
    checksum at the end, which no longer matches)."""
    compressor = zlib.compressobj(9)
    chunk = b" " * (16 * 1024 * 1024)
    head = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    _pdf_with_content(path, head + block * 95 + compressor.flush())


def _pdf_with_content(path: Path, content: bytes) -> None:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


@pytest.fixture(scope="module")
def pool() -> OcrPool:
    readers = OcrPool(SETTINGS, size=1)
    yield readers
    readers.close()


def _read(pool: OcrPool, path: Path, mime: str, timeout: float) -> str:
    pixels = pool.survey(path, mime, 10, timeout)
    return pool.submit_page(path, mime, 1, "eng", timeout, pixels[0]).result().text


def test_the_pool_survives_hostile_files_and_reads_the_next(pool: OcrPool, tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(text_page_png(["Still reading"]))
    endless, bomb = tmp_path / "endless.pdf", tmp_path / "bomb.pdf"
    endless_pdf(endless)
    bomb_pdf(bomb)
    with pytest.raises(JobFailedError) as slow:
        _read(pool, endless, "application/pdf", 3)
    assert slow.value.code == "timeout"
    assert "Still reading" in _read(pool, good, "image/png", 30)
    # The bomb fails in its child (out of memory, or the child dies), or PDFium gives up on the
    # stream and reads nothing; either way the worker is untouched and goes on.
    with contextlib.suppress(JobFailedError, SandboxCrashedError):
        assert _read(pool, bomb, "application/pdf", 60).strip() == ""
    assert "Still reading" in _read(pool, good, "image/png", 30)
