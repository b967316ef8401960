"""Schema-driven fuzzing: schemathesis generates requests for every operation in /openapi.json
(coverage, fuzzing and stateful phases) against the running API; none may get a 5xx."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from aiohttp import web

from backend.app import create_app
from tests.e2e.conftest import ApiClient, RunningStack

pytestmark = pytest.mark.e2e


def test_openapi_document_lists_every_route(stack: RunningStack) -> None:
    spec = requests.get(f"{stack.api}/openapi.json", timeout=10).json()
    assert spec["openapi"].startswith("3.")
    # Against the router itself, so a route added without documentation fails here.
    routed = {
        resource.canonical.replace("{task_id}", "{taskId}")
        for resource in create_app(stack.settings).router.resources()
        if not isinstance(resource, web.StaticResource)
    }
    assert "/api/tasks/{taskId}/result" in routed
    assert set(spec["paths"]) == routed
    page = requests.get(f"{stack.api}/docs", timeout=10)
    assert page.status_code == 200
    assert "swagger-ui-bundle.js" in page.text
    asset = requests.get(f"{stack.api}/docs/static/swagger-ui-bundle.js", timeout=10)
    assert asset.status_code == 200
    assert len(asset.content) > 100_000


def test_fuzzing_the_api_finds_no_server_error(stack: RunningStack, tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is in requirements-dev.txt"
    client = ApiClient(stack.api, stack.settings)
    run = subprocess.run(
        [
            cli, "run", f"{stack.api}/openapi.json",
            "-H", f"Authorization: {client.headers['Authorization']}",
            "--checks", "not_a_server_error",
            "--max-examples", "25",
            "--seed", "20261123",
            "--report-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    summary = run.stdout[-3000:]
    assert run.returncode == 0, summary
    assert "generated" in summary
