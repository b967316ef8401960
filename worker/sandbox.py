"""Untrusted files are parsed in child processes: a crash or a hang there costs a page, not the
worker.

Pillow, libtiff, PDFium, qpdf and Leptonica all read attacker-supplied bytes. Each OCR slot of
the pool owns one warm child process (spawned, not forked: the parent is threaded) that opens
the upload, decodes or renders its pages, runs Tesseract on them and renders the results; the
parent only ever sees small answers (a page's words, the result files). A child runs with:

* an address-space limit (``SANDBOX_MEMORY_MB``): a decompression bomb or a runaway allocation
  fails there (``MemoryError``/``bad_alloc`` → the child exits) instead of swapping the host;
* a CPU-time limit reset before each request (its time budget plus a margin): a loop that
  outlives the parent's wall-clock timer is killed by the kernel;
* no core dumps, a private temporary directory (removed when it exits), and, where the
  platform allows it (``unshare`` of a new network namespace, as root or with unprivileged user
  namespaces), no network at all.

The parent waits for each answer with the request's deadline and kills the child when it
passes (``timeout``); a child that dies mid-request (``crashed``) is replaced by a fresh one
for the next request. Children stay warm between requests — the engines are loaded once — so
the cost is one pipe round trip per page (see ``scripts/bench/pipeline_vs_cli.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import pickle
import resource
import shutil
import signal
import tempfile
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from worker.errors import JobFailedError

log = logging.getLogger("untxt.worker.sandbox")

# A request may run past its own deadline by this much before its child is killed: Tesseract's
# own timer stops a page cleanly a moment after the deadline, which beats a kill.
KILL_GRACE_SECONDS = 2.0
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000


@dataclass(frozen=True)
class SandboxLimits:
    """SANDBOX_MEMORY_MB (in bytes) and SANDBOX_ISOLATE_NETWORK; their defaults are the settings'."""

    memory_bytes: int
    isolate_network: bool


class SandboxCrashedError(Exception):
    """The child died while handling a request (killed by a limit, a signal or a fault)."""

    def __init__(self, exit_code: int | None) -> None:
        super().__init__(f"the sandbox process died (exit code {exit_code})")
        self.exit_code = exit_code


class Child:
    """One warm child process and the pipe to it. Not thread-safe: one caller at a time."""

    def __init__(self, limits: SandboxLimits, setup: Any) -> None:
        """``setup`` is called in the child, once, to build its handler: ``handler(request)``."""
        self.limits, self.setup = limits, setup
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        # The setup goes as bytes, unpickled only once the child has confined itself: unpickling
        # imports the reading code (numpy starts threads), and a process with threads can no
        # longer enter a new user namespace.
        process = context.Process(target=_serve, args=(child, self.limits, pickle.dumps(self.setup)), daemon=True)
        process.start()
        child.close()
        self._process, self._conn = process, parent

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def call(self, request: Any, timeout_seconds: float) -> Any:
        """The child's answer to ``request``, or its JobFailedError raised here; ``timeout``
        kills the child and raises JobFailedError("timeout"), a death raises SandboxCrashedError."""
        if self._process is None or not self._process.is_alive():
            self._restart()
        assert self._conn is not None
        budget = max(1.0, timeout_seconds)
        try:
            self._conn.send((request, budget))
            if not self._conn.poll(budget + KILL_GRACE_SECONDS):
                self._kill()
                raise JobFailedError("timeout", f"reading took longer than {timeout_seconds:.0f}s")
            status, payload = self._conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            code = self._reap()
            raise SandboxCrashedError(code) from exc
        if status == "ok":
            return payload
        if status == "failed":
            raise JobFailedError(*payload)
        raise RuntimeError(f"sandbox error: {payload}")

    def _kill(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
        self._reap()

    def _reap(self) -> int | None:
        code = None
        if self._process is not None:
            self._process.join(5)
            code = self._process.exitcode
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn = None, None
        return code

    def _restart(self) -> None:
        self._reap()
        self._start()

    def close(self) -> None:
        if self._conn is not None and self._process is not None and self._process.is_alive():
            with contextlib.suppress(OSError, BrokenPipeError):
                self._conn.send(None)  # finish: the child closes its engines and exits
            self._process.join(10)
        self._kill()


def _serve(conn: Connection, limits: SandboxLimits, setup: bytes) -> None:
    """The child's main loop: confine itself, build its handler, answer requests until told to stop."""
    # Its lines go to the worker's stderr (its .out log); the worker's own log set-up is not inherited.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sandbox[%(process)d] %(levelname)s %(message)s")
    scratch = tempfile.mkdtemp(prefix="untxt-sandbox-")
    os.environ["TMPDIR"] = scratch
    tempfile.tempdir = scratch
    _confine(limits)
    # The parent decides when we stop; a terminal's Ctrl-C is for the parent alone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    handler = pickle.loads(setup)()
    try:
        while (message := conn.recv()) is not None:
            request, budget = message
            _limit_cpu(budget)
            try:
                answer: tuple[str, Any] = ("ok", handler(request))
            except JobFailedError as exc:
                answer = ("failed", (exc.code, exc.message, exc.detail))
            except MemoryError:
                answer = ("failed", ("out_of_memory", "reading the file needed more memory than allowed"))
            except Exception as exc:
                log.exception("sandbox request failed")
                answer = ("error", f"{type(exc).__name__}: {exc}")
            conn.send(answer)
    except EOFError:
        pass  # the parent went away
    finally:
        close = getattr(handler, "close", None)
        if close is not None:
            close()
        shutil.rmtree(scratch, ignore_errors=True)


def _confine(limits: SandboxLimits) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits.memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    if limits.isolate_network:
        _unshare_network()


def _unshare_network() -> None:
    """A network namespace of our own, with nothing in it but a loopback that is down."""
    libc = ctypes.CDLL(None, use_errno=True)
    flags = _CLONE_NEWNET if os.geteuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    if libc.unshare(flags) != 0:
        log.warning("no network namespace for the sandbox on this platform: %s", os.strerror(ctypes.get_errno()))


def _limit_cpu(budget_seconds: float) -> None:
    """From now, this request may use its budget of CPU seconds (twice over, plus a margin: the
    wall clock is the real limit), then the kernel ends the child (SIGXCPU). Only the soft limit
    moves: a hard limit, once lowered, could never be raised again for the next request."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + budget_seconds * 2 + 10)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or soft <= hard:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
