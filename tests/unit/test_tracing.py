"""Tracing's switch: off by default (no-op spans, no trace context), console, or OTLP over
http/protobuf to a collector (a small HTTP server here)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from common import tracing
from common.settings import Settings


@pytest.fixture
def base() -> Iterator[Settings]:
    yield Settings(database_url="postgresql://x", redis_url="redis://x", s3_bucket="b", kms_key_id="k")
    tracing.install(None)


@pytest.mark.parametrize(
    "changes", [{}, {"traces_exporter": "none", "otlp_endpoint": "http://127.0.0.1:4318"}, {"traces_exporter": "otlp"}]
)
def test_off_unless_configured(base: Settings, changes: dict[str, str]) -> None:
    assert tracing.configure_tracing("api", base.replace(**changes)) is None
    with tracing.span("upload") as span:
        assert not span.is_recording()
        assert tracing.carrier() == {}


def test_console_writes_spans_to_stderr(base: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    provider = tracing.configure_tracing("worker", base.replace(traces_exporter="console"))
    assert provider is not None
    with tracing.span("job", attributes={"untxt.task_id": "t"}) as span:
        assert span.is_recording()
        assert tracing.carrier()["traceparent"].startswith("00-")
    provider.force_flush()
    provider.shutdown()
    (line,) = capsys.readouterr().err.splitlines()
    exported = json.loads(line)
    assert (exported["name"], exported["attributes"]) == ("job", {"untxt.task_id": "t"})
    assert exported["resource"]["attributes"]["service.name"] == "untxt-worker"


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, int]] = []  # noqa: RUF012 - one test's record

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], len(body)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_otlp_http_protobuf_to_the_endpoint(base: Settings) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Collector) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/"
        provider = tracing.configure_tracing("api", base.replace(otlp_endpoint=endpoint))
        assert provider is not None
        with tracing.span("POST /api/tasks"):
            pass
        assert provider.force_flush()
        provider.shutdown()
        server.shutdown()
    assert [(path, kind) for path, kind, _ in _Collector.received] == [("/v1/traces", "application/x-protobuf")]
    assert _Collector.received[0][2] > 0
