"""Schema-driven fuzzing: schemathesis generates requests for every operation in /openapi.json
(examples, coverage, fuzzing and stateful phases) against the running API and checks every answer
against the document."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import requests
from aiohttp import web

from backend.app import create_app
from tests.e2e.conftest import ApiClient, RunningStack

pytestmark = pytest.mark.e2e

CONFIG = Path(__file__).with_name("schemathesis.toml")


def _camel_params(path: str) -> str:
    """The router's {task_id} is the document's {taskId}."""
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)


def test_openapi_document_lists_every_route(stack: RunningStack) -> None:
    spec = requests.get(f"{stack.api}/openapi.json", timeout=10).json()
    assert spec["openapi"].startswith("3.")
    # Against the router itself, so a route added without documentation fails here.
    routed = {
        _camel_params(resource.canonical)
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


def _operations(spec: dict[str, Any]) -> set[str]:
    methods = {"get", "post", "put", "patch", "delete"}
    return {f"{m.upper()} {path}" for path, item in spec["paths"].items() for m in item if m in methods}


def test_fuzzed_answers_match_the_documented_schemas(stack: RunningStack, tmp_path: Path) -> None:
    """Every schemathesis check: no 5xx, and each answer's status, headers, content type and body
    match what /openapi.json says; schema-valid requests are accepted and invalid ones refused
    (the few refusals no schema can express are allowed in schemathesis.toml, with reasons)."""
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is in requirements-dev.txt"
    client = ApiClient(stack.api, stack.settings)
    junit = tmp_path / "junit.xml"
    run = subprocess.run(
        [
            cli, "--config-file", str(CONFIG), "run", f"{stack.api}/openapi.json",
            "-H", f"Authorization: {client.headers['Authorization']}",
            "--checks", "all",
            "--max-examples", "25",
            "--seed", "20261123",
            "--report", "junit", "--report-junit-path", str(junit),
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    summary = run.stdout[-6000:]
    assert run.returncode == 0, summary
    # The report, not the console text, says what ran: every documented operation (but the
    # document itself, which schemathesis reads rather than tests) was exercised and passed.
    suite = ElementTree.parse(junit).getroot()
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    spec = requests.get(f"{stack.api}/openapi.json", timeout=10).json()
    assert _operations(spec) - {"GET /openapi.json"} <= set(cases), sorted(cases)
    assert "Stateful tests" in cases  # the links from an upload to its task's routes were followed
    for name, case in cases.items():
        assert [child.tag for child in case] == [], f"{name}: failed, errored or skipped"
